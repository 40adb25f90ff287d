"""Style-controlled Bradley–Terry ratings: Chatbot Arena's style control on the board's battles.

The raw fit (:mod:`leaderboard.ratings`) explains each battle by the two systems' ratings alone. The controlled fit
adds the battle's style differences as covariates shared by every system:

    P(a beats b) = σ(θ_a − θ_b + Σ_f β_f · z_f),    z_f = d_f / rms(d_f),

where ``d_f`` is the normalised difference of feature ``f`` between a's and b's replies to the battle's dialogue —
relative for counts, ``(a − b) / (a + b)`` (0 when both are 0; Arena's length term), plain ``a − b`` for the reading
grade — and ``rms`` its root mean square over all the board's battles, so each β is "log-odds per SD of the
difference" whatever the unit. The θ are the style-controlled ratings: what a system wins with its style made equal
to its opponent's. β, shown in rating points, says what the judge pays for style ("+1 SD of relative length is
worth N points"). The same small L2 penalty as the raw fit is on θ and β; θ starts from the raw fit, and the joint
maximum likelihood is found by damped Newton with the exact Hessian (a feature that never varies gets β = 0).
With no style difference anywhere (every z = 0) the controlled ratings are the raw ones.

CIs: the raw fit's own dialogue resamples, each refitted exactly (:mod:`leaderboard.ratings`), plus what style
control changes in that resample, from a *score* bootstrap (Kline & Santos 2012): one Newton step from the full-data
fit, φ* = φ̂ − H⁻¹ Σ_d (c_d − 1) g_d (g_d: dialogue d's gradient contribution, c_d its draw count), for the
controlled and for the raw model:  θ*_controlled = θ*_raw (exact) + (θ̂_controlled − θ̂_raw) − (step_controlled −
step_raw).  Refitting the controlled model exactly for 1,000 systems × 250 dialogues × 1,000 resamples would cost
~10⁹ battle evaluations per Newton step; this costs one (resamples × dialogues) product and one solve per model,
keeps the raw refits' exactness for the nonlinear part (a score step alone is off by up to ~10 % of a CI's width
at 80 % win rates), and with no style difference gives the raw CIs exactly. A system unrated in a resample of the
raw fit is unrated in it here. Ranks and rank ranges as in the raw fit.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from scipy.linalg import cho_factor, cho_solve
from scipy.special import expit

from leaderboard.ratings import (
    L2,
    Battle,
    Design,
    Rating,
    RawFit,
    check_scale,
    draw_counts,
    fit_raw,
    ranked_mask,
    ratings_of,
)

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

CI_METHOD = "raw dialogue-bootstrap refits + score-bootstrap style correction"
_MAX_NEWTON = 100


@dataclass(frozen=True)
class Coefficient:
    """What the judge pays for one style feature: rating points per +1 SD of the normalised difference."""

    feature: str
    points: float
    ci_low: float
    ci_high: float
    varies: bool
    """False when the feature's difference is 0 in every battle: nothing to control, β is 0."""


@dataclass(frozen=True)
class StyleFit:
    """The style-controlled ratings and the fitted style coefficients."""

    ratings: dict[str, Rating]
    coefficients: tuple[Coefficient, ...]
    scale: dict[str, float]
    """Feature → the root mean square of its normalised difference (what "1 SD" is)."""


def fit_style_ratings(
    battles: Sequence[Battle], differences: Array, features: Sequence[str], *, anchor: str,
    anchor_value: float = 1000.0, scale: float = 400.0, n_boot: int = 1000, seed: int = 0,
    ranked: Collection[str] | None = None, raw: RawFit | None = None,
) -> StyleFit:
    """Fit style-controlled Bradley–Terry ratings (see the module docstring).

    Args:
        battles: As for :func:`leaderboard.ratings.fit_ratings`.
        differences: (battles × features) normalised style differences, a's reply minus b's
            (:func:`style_difference`), row k for ``battles[k]``.
        features: The feature names of the columns.
        anchor: As for :func:`~leaderboard.ratings.fit_ratings`.
        anchor_value: As there.
        scale: As there.
        n_boot: As there.
        seed: As there: the same seed gives the same dialogue resamples as the raw fit.
        ranked: As there.
        raw: The raw fit of the same battles (:func:`leaderboard.ratings.fit_raw`, same ``n_boot`` and ``seed``),
            when the caller has it; else it is fitted here.

    Raises:
        ValueError: what :func:`~leaderboard.ratings.fit_ratings` refuses; ``differences`` of the wrong shape or
            not finite.
    """
    x = np.asarray(differences, dtype=np.float64)
    if x.shape != (len(battles), len(features)):
        raise ValueError(f"style differences have shape {x.shape}; need one row per battle and one column per "
                         f"feature: ({len(battles)}, {len(features)})")
    if not np.isfinite(x).all():
        raise ValueError("style differences hold NaN or infinity: every battle needs both replies' features")
    check_scale(scale, n_boot)
    if raw is None:
        raw = fit_raw(battles, anchor=anchor, n_boot=n_boot, seed=seed)
    elif (raw.boot is None) != (n_boot == 0) or (raw.boot is not None and len(raw.boot) != n_boot):
        raise ValueError(f"the raw fit given has {0 if raw.boot is None else len(raw.boot)} resamples, not {n_boot}")
    design, n = raw.design, raw.design.n_free
    rows = _Rows.of(battles, design, x)
    phi = _newton(rows, np.concatenate([raw.theta, np.zeros(x.shape[1])]))
    theta = np.append(phi[:n], 0.0)
    points = scale / math.log(10.0)
    beta = points * phi[n:]
    boot = b_low = b_high = None
    if raw.boot is not None:
        counts = draw_counts(n_boot, design.games.shape[0], seed)
        step = _score_steps(rows, phi, counts)
        step_raw = _score_steps(rows.without_style(), raw.theta, counts)
        boot = raw.boot.copy()
        boot[:, :n] += (phi[:n] - raw.theta) - (step[:, :n] - step_raw)
        b_low, b_high = np.percentile(points * (phi[n:] - step[:, n:]), [2.5, 97.5], axis=0)
    ratings = ratings_of(design, theta, boot, anchor_value=anchor_value, scale=scale,
                         mask=ranked_mask(design.models, ranked))
    coefficients = tuple(
        Coefficient(feature=f, points=float(beta[k]), ci_low=float(beta[k] if b_low is None else b_low[k]),
                    ci_high=float(beta[k] if b_high is None else b_high[k]), varies=bool(rows.rms[k] > 0))
        for k, f in enumerate(features))
    return StyleFit(ratings=ratings, coefficients=coefficients,
                    scale={f: float(rows.rms[k]) for k, f in enumerate(features)})


@dataclass(frozen=True)
class _Rows:
    """The battles one by one: slots (anchor = ``n``, held at 0), dialogue index, score and scaled covariates."""

    left: IntArray
    right: IntArray
    dialogue: IntArray
    score: Array
    z: Array
    rms: Array
    n: int
    """Number of free systems."""

    @classmethod
    def of(cls, battles: Sequence[Battle], design: Design, x: Array) -> _Rows:
        slot = {name: k for k, name in enumerate(design.models)}
        dialogues = {d: k for k, d in enumerate(sorted({bt.dialogue_id for bt in battles}))}
        rms = np.sqrt((x ** 2).mean(axis=0)) if len(x) else np.zeros(x.shape[1])
        z = np.divide(x, rms, out=np.zeros_like(x), where=rms > 0)
        return cls(left=np.array([slot[bt.a] for bt in battles], dtype=np.intp),
                   right=np.array([slot[bt.b] for bt in battles], dtype=np.intp),
                   dialogue=np.array([dialogues[bt.dialogue_id] for bt in battles], dtype=np.intp),
                   score=np.array([bt.score_a for bt in battles], dtype=np.float64), z=z, rms=rms,
                   n=design.n_free)

    def without_style(self) -> _Rows:
        return replace(self, z=self.z[:, :0], rms=self.rms[:0])

    def margin(self, phi: Array) -> Array:
        theta = np.append(phi[:self.n], 0.0)
        return np.asarray(theta[self.left] - theta[self.right] + self.z @ phi[self.n:], dtype=np.float64)

    def loss(self, phi: Array) -> float:
        m = self.margin(phi)
        return float(np.logaddexp(0.0, m).sum() - self.score @ m + 0.5 * L2 * phi @ phi)

    def gradient(self, residual: Array, phi: Array) -> Array:
        size = self.n + 1
        g_theta = np.bincount(self.left, residual, size) - np.bincount(self.right, residual, size)
        return np.concatenate([g_theta[:self.n], self.z.T @ residual]) + L2 * phi

    def hessian(self, weight: Array) -> Array:
        size, n, k = self.n + 1, self.n, self.z.shape[1]
        flat = np.bincount(np.concatenate([self.left * size + self.left, self.right * size + self.right]),
                           np.concatenate([weight, weight]), size * size)
        flat -= np.bincount(np.concatenate([self.left * size + self.right, self.right * size + self.left]),
                            np.concatenate([weight, weight]), size * size)
        h = np.zeros((n + k, n + k))
        h[:n, :n] = flat.reshape(size, size)[:n, :n]
        wz = self.z * weight[:, None]
        cross = np.stack([np.bincount(self.left, wz[:, f], size) - np.bincount(self.right, wz[:, f], size)
                          for f in range(k)], axis=1) if k else np.zeros((size, 0))
        h[:n, n:] = cross[:n]
        h[n:, :n] = cross[:n].T
        h[n:, n:] = self.z.T @ wz
        h[np.diag_indices_from(h)] += L2
        return h


def _newton(rows: _Rows, phi: Array) -> Array:
    """Penalised maximum likelihood of (θ, β) by damped Newton with a backtracking line search."""
    loss = rows.loss(phi)
    for _ in range(_MAX_NEWTON):
        p = expit(rows.margin(phi))
        grad = rows.gradient(p - rows.score, phi)
        step = -cho_solve(cho_factor(rows.hessian(p * (1.0 - p))), grad)
        t = 1.0
        while True:
            trial = phi + t * step
            trial_loss = rows.loss(trial)
            if trial_loss <= loss + 1e-4 * t * float(grad @ step) or t < 1e-10:
                break
            t *= 0.5
        phi, loss = trial, trial_loss
        if float(np.abs(t * step).max(initial=0.0)) < 1e-10:
            break
    return phi


def _score_steps(rows: _Rows, phi: Array, counts: Array) -> Array:
    """(resamples × parameters): H⁻¹ Σ_d (c_d − 1) g_d at ``phi``, the full fit (see the module docstring)."""
    n, k = rows.n, rows.z.shape[1]
    n_dialogues, size = counts.shape[1], rows.n + 1
    p = expit(rows.margin(phi))
    residual = p - rows.score
    per_dialogue = (np.bincount(rows.dialogue * size + rows.left, residual, n_dialogues * size)
                    - np.bincount(rows.dialogue * size + rows.right, residual, n_dialogues * size))
    g = np.empty((n_dialogues, n + k))
    g[:, :n] = per_dialogue.reshape(n_dialogues, size)[:, :n]
    for f in range(k):
        g[:, n + f] = np.bincount(rows.dialogue, residual * rows.z[:, f], n_dialogues)
    return np.asarray(cho_solve(cho_factor(rows.hessian(p * (1.0 - p))), ((counts - 1.0) @ g).T).T)
