"""Bradley–Terry refits of many bootstrap resamples at once: damped Newton, batched over the resamples.

Every resample has the same pairs, only other per-pair totals (games, wins), so the refits are one array program
over (resamples × pairs) instead of one optimiser call per resample. The loss is :func:`leaderboard.ratings.
fit_pairs`' — Σ_p n_p softplus(m_p) − w_p m_p + L2/2 · |θ|², m_p = θ_left − θ_right, the anchor fixed at 0 — and
its Hessian is the pair-weighted graph Laplacian plus L2·I. Each Newton direction solves that system by conjugate
gradients with a Jacobi preconditioner (exact in one step for a board where every model meets only the anchor; a few
steps when they also meet a shared reference), applied to all resamples together; a backtracking line search per
resample keeps every step a descent. Models with no chain of battles to the anchor in a resample are held where
they start (the caller marks them unrated).

It stops when every model's gradient (the loss summed, not averaged) is below :data:`GTOL`, or below the rounding
floor of its own sums (:data:`ROUNDING` × the games it played) on very large boards, and reports the resamples that
did not converge. That is far tighter than where L-BFGS-B stops (a gradient of 1e-5 to 1, which moves a
"beyond measure" rating by tens of points), so the point fit is polished by the same solver
(:func:`polish`) before its resamples are drawn around it. Each CG solve is only as exact as the Newton step needs
(relative residual min(0.1, √‖g‖∞)).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.special import expit

if TYPE_CHECKING:
    from leaderboard.ratings import Design

Array = npt.NDArray[np.float64]

GTOL = 1e-9
ROUNDING = 1e-13
#: Resamples are refitted this many (resample × pair) cells at a time: a dozen arrays of that size live at once
#: (16 MB each), so a board of any size stays in memory.
CHUNK_CELLS = 2_000_000
MAX_NEWTON = 100


def bootstrap(design: Design, theta: Array, n_boot: int, seed: int) -> Array:
    """Log-odds ratings (n_boot × all models, anchor last = 0) refitted on dialogue resamples; NaN = unrated."""
    from leaderboard.ratings import L2, draw_counts, fit_pairs, unrated_slots

    n_dialogues, n_pairs = design.games.shape
    counts = draw_counts(n_boot, n_dialogues, seed)

    out = np.zeros((n_boot, design.n_free + 1))
    chunk = max(1, CHUNK_CELLS // max(n_pairs, 1))
    games_t, wins_t = design.games.T.tocsr(), design.wins.T.tocsr()
    for first in range(0, n_boot, chunk):
        block = counts[first:first + chunk].T
        games = np.asarray(games_t @ block).T  # (replicates × pairs)
        wins = np.asarray(wins_t @ block).T
        unrated = [unrated_slots(design, g) for g in games]
        frozen = np.zeros((games.shape[0], design.n_free), dtype=bool)
        for k, slots in enumerate(unrated):
            frozen[k, slots] = True
        refits, converged = refit(design.left, design.right, design.n_free, games, wins, theta, frozen, L2)
        for failed in np.flatnonzero(~converged):  # (none seen so far) the one-at-a-time optimiser as the fallback
            refits[failed] = fit_pairs(design, games[failed], wins[failed], theta)
        out[first:first + games.shape[0], :-1] = refits
        for k, slots in enumerate(unrated):
            out[first + k, slots] = np.nan
    return out


def polish(design: Design, theta: Array, l2: float) -> Array:
    """The full-data fit refined by :func:`refit` from ``theta`` (L-BFGS-B's): it and its resamples solved alike.

    ``theta`` itself if the refinement does not converge.
    """
    games, wins = design.games.sum(axis=0).A1, design.wins.sum(axis=0).A1
    frozen = np.zeros((1, design.n_free), dtype=bool)
    refined, converged = refit(design.left, design.right, design.n_free, games[None], wins[None], theta, frozen, l2)
    return refined[0] if converged[0] else theta


def refit(left: npt.NDArray[np.intp], right: npt.NDArray[np.intp], n_free: int, games: Array, wins: Array,
          start: Array, frozen: npt.NDArray[np.bool_], l2: float) -> tuple[Array, npt.NDArray[np.bool_]]:
    """Log-odds ratings (resamples × free models) from per-pair totals (resamples × pairs), and which converged.

    ``start`` (free models) is every resample's starting point; ``frozen`` (resamples × free models) marks models
    held at it.
    """
    n_pairs = len(left)
    signs = sparse.csr_matrix((np.r_[np.ones(n_pairs), -np.ones(n_pairs)],
                               (np.r_[np.arange(n_pairs), np.arange(n_pairs)], np.r_[left, right])),
                              shape=(n_pairs, n_free + 1))
    incidence = signs[:, :n_free].tocsc()  # pairs × free models (the anchor's column dropped)
    degree = abs(incidence)
    free = ~frozen
    theta = np.broadcast_to(start, (games.shape[0], n_free)).copy()
    done = np.zeros(games.shape[0], dtype=bool)
    active = np.arange(games.shape[0])  # the resamples still iterating: converged ones drop out
    tolerance = np.maximum(GTOL, ROUNDING * np.asarray((degree.T @ games.T).T))  # (resamples × models)
    for _ in range(MAX_NEWTON):
        th, g, w, fr = theta[active], games[active], wins[active], free[active]
        loss, grad, weight = _evaluate(th, g, w, left, right, incidence, fr, l2)
        converged = (np.abs(grad) < tolerance[active]).all(axis=1)
        done[active[converged]] = True
        keep = ~converged
        active = active[keep]
        if not len(active):
            break
        step = _cg(weight[keep], -grad[keep], incidence, degree, fr[keep], l2)
        theta[active] = _line_search(th[keep], step, grad[keep], loss[keep], g[keep], w[keep], left, right, l2)
    return theta, done


def _margin(theta: Array, left: npt.NDArray[np.intp], right: npt.NDArray[np.intp]) -> Array:
    full = np.concatenate([theta, np.zeros((theta.shape[0], 1))], axis=1)
    return np.asarray(full[:, left] - full[:, right])


def _loss(theta: Array, margin: Array, games: Array, wins: Array, l2: float) -> Array:
    return np.asarray((games * np.logaddexp(0.0, margin) - wins * margin).sum(axis=1)
                      + 0.5 * l2 * (theta * theta).sum(axis=1))


def _evaluate(theta: Array, games: Array, wins: Array, left: Any, right: Any, incidence: Any,
              free: npt.NDArray[np.bool_], l2: float) -> tuple[Array, Array, Array]:
    """The loss, the gradient (zero for held models) and each pair's Hessian weight n σ(m) (1 − σ(m))."""
    margin = _margin(theta, left, right)
    p = expit(margin)
    grad = np.asarray((incidence.T @ (games * p - wins).T).T) + l2 * theta
    return _loss(theta, margin, games, wins, l2), np.where(free, grad, 0.0), games * p * (1.0 - p)


def _cg(weight: Array, rhs: Array, incidence: Any, degree: Any, free: npt.NDArray[np.bool_], l2: float) -> Array:
    """Solve (Lᵀ diag(weight) L + l2·I) x = rhs per resample (rows), held models fixed at 0: preconditioned CG."""

    def hessian_times(v: Array) -> Array:
        return np.where(free, np.asarray((incidence.T @ (weight * np.asarray((incidence @ v.T).T)).T).T) + l2 * v, 0.0)

    inverse_diagonal = 1.0 / (np.asarray((degree.T @ weight.T).T) + l2)
    x = np.zeros_like(rhs)
    r = np.where(free, rhs, 0.0)
    z = inverse_diagonal * r
    p = z.copy()
    rz = (r * z).sum(axis=1)
    scale = np.sqrt((r * r).sum(axis=1))
    # inexact Newton: far from the optimum a rough direction will do; near it the solve tightens (superlinear)
    target = np.minimum(0.1, np.sqrt(np.abs(rhs).max(axis=1, initial=0.0))) * scale
    for _ in range(max(200, 2 * rhs.shape[1])):  # (a long chain of models needs up to one step per model)
        active = np.sqrt((r * r).sum(axis=1)) > np.maximum(target, 1e-300)
        if not active.any():
            break
        hp = hessian_times(p)
        alpha = np.where(active, rz / np.maximum((p * hp).sum(axis=1), 1e-300), 0.0)
        x += alpha[:, None] * p
        r -= alpha[:, None] * hp
        z = inverse_diagonal * r
        rz_next = (r * z).sum(axis=1)
        p = z + np.where(active, rz_next / np.maximum(rz, 1e-300), 0.0)[:, None] * p
        rz = rz_next
    return x


def _line_search(theta: Array, step: Array, grad: Array, before: Array, games: Array, wins: Array, left: Any,
                 right: Any, l2: float) -> Array:
    """θ + α·step per resample, α halved from 1 until the loss drops enough (Armijo, c = 1e-4).

    Near the optimum a Newton step changes the loss by less than its rounding: a rise within that is accepted.
    """
    noise = 1e-12 * (1.0 + np.abs(before))
    slope = (grad * step).sum(axis=1)
    alpha = np.ones(theta.shape[0])
    todo = np.arange(theta.shape[0])
    for _ in range(40):
        trial = theta[todo] + alpha[todo, None] * step[todo]
        loss = _loss(trial, _margin(trial, left, right), games[todo], wins[todo], l2)
        ok = (loss <= before[todo] + 1e-4 * alpha[todo] * slope[todo] + noise[todo]) | (alpha[todo] < 1e-10)
        theta[todo[ok]] = trial[ok]
        todo = todo[~ok]
        if not len(todo):
            break
        alpha[todo] *= 0.5
    return theta
