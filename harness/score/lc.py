"""Length-controlled (LC) win rate: the raw win rate with the judge's length preference taken out.

The model is fitted on exactly what the raw win rate counts — one outcome per *scored* dialogue,
y = 1 (win), ½ (tie), 0 (loss) — so that with no length effect LC and raw agree:

    y ~ sigmoid(b0 + b1·x),   x = tanh(Δwords / sd(Δwords)),   Δwords = candidate − reference words,

fitted by maximum likelihood with fractional targets (AlpacaEval-2 style, simplified). LC = sigmoid(b0), the
prediction at zero length difference. A small L2 penalty on the slope — never on the intercept — keeps the fit
finite when the longer reply always wins; leaving the intercept free keeps the score equation
mean(sigmoid(b0 + b1·x)) = mean(y), so LC cannot drift from the raw rate for no reason. Degenerate data need no
fit and get the raw rate exactly: equal lengths throughout (x ≡ 0), or one outcome throughout (all wins, …).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit

from harness.score.resample import resample_indices

L2_SLOPE = 1e-3
"""L2 penalty on the slope, against the summed log-likelihood (a weak prior: negligible beside n ≥ 20)."""
N_LC_BOOTSTRAP = 1000
"""Resamples for the LC CI: each refits the model, so fewer than for a mean; about 0.25 s for 250 dialogues on 2 CPU cores (0.5 s when length separates the outcomes)."""

Array = NDArray[np.float64]


def length_feature(length_diffs: Sequence[float] | Array) -> Array:
    """tanh(Δ / sd(Δ)); all zeros when Δ does not vary (population sd, as the raw data are the population)."""
    d = np.asarray(length_diffs, dtype=float)
    sd = float(d.std()) if d.size else 0.0
    return np.tanh(d / sd) if sd > 0 else np.zeros_like(d)


def _objective(beta: Array, x: Array, y: Array, l2: float) -> tuple[float, Array]:
    z = beta[0] + beta[1] * x
    # -[y·log σ(z) + (1−y)·log(1−σ(z))] = softplus(z) − y·z, written so that no exp overflows
    loss = float(np.sum(np.logaddexp(0.0, z) - y * z)) + 0.5 * l2 * float(beta[1] ** 2)
    resid = expit(z) - y
    grad = np.array([resid.sum(), resid @ x + l2 * beta[1]])
    return loss, grad


def fit_length_model(
    outcomes: Sequence[float] | Array, x: Sequence[float] | Array, *, l2: float = L2_SLOPE,
    start: Sequence[float] | Array | None = None,
) -> tuple[float, float]:
    """Penalised maximum-likelihood (b0, b1) of y ~ sigmoid(b0 + b1·x) with fractional targets y ∈ [0, 1].

    Only call it on data that vary in both x and y (see :func:`length_controlled_win_rate`); otherwise the
    intercept is at ±infinity.
    """
    from scipy.optimize import minimize  # (here: importing scipy.optimize costs a command ~0.3 s)

    y = np.asarray(outcomes, dtype=float)
    xs = np.asarray(x, dtype=float)
    if start is None:
        m = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
        start = (math.log(m / (1 - m)), 0.0)
    res = minimize(_objective, np.asarray(start, dtype=float), args=(xs, y, l2), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-10, "ftol": 1e-14, "maxiter": 500})
    return float(res.x[0]), float(res.x[1])


def _lc(y: Array, x: Array, *, l2: float, start: Array | None) -> tuple[float, Array | None]:
    """LC and the fitted coefficients (None when no fit was needed)."""
    if y.size == 0:
        return math.nan, None
    if not np.any(x) or np.all(y == y[0]):
        return float(y.mean()), None
    beta = np.array(fit_length_model(y, x, l2=l2, start=start))
    return float(expit(beta[0])), beta


def length_controlled_win_rate(
    outcomes: Sequence[float], length_diffs: Sequence[float], *, l2: float = L2_SLOPE,
) -> float:
    """LC win rate of scored dialogues: ``outcomes`` 1 / ½ / 0 per dialogue, ``length_diffs`` cand − ref words."""
    y = np.asarray(outcomes, dtype=float)
    return _lc(y, length_feature(length_diffs), l2=l2, start=None)[0]


def lc_batch(outcomes: Array, length_diffs: Array, *, l2: float = L2_SLOPE, start: Array | None = None,
             tol: float = 1e-13, max_iter: int = 100) -> Array:
    """The LC win rate of every row of ``outcomes`` / ``length_diffs`` (shape ``(B, n)``), in one vectorised solve.

    Row by row the same as :func:`length_controlled_win_rate` (each row standardised on its own, the same
    degenerate rules), but the penalised two-parameter fit runs as a damped Newton iteration on all rows at once:
    the 2×2 Hessian is solved in closed form, a step that does not lower a row's loss is halved. It stops when every
    row's gradient is below ``tol`` × n (L-BFGS-B in :func:`fit_length_model` stops at 1e-10 in total), so the two
    agree far below the 1e-9 at which recomputed results are compared. ``start``: (b0, b1) for every row (e.g. the
    full-data fit of a bootstrap); default the same start as :func:`fit_length_model`.
    """
    y = np.atleast_2d(np.asarray(outcomes, dtype=float))
    d = np.atleast_2d(np.asarray(length_diffs, dtype=float))
    n_rows, n = y.shape
    if n == 0:
        return np.full(n_rows, math.nan)
    sd = d.std(axis=1, keepdims=True)
    x = np.divide(d, sd, out=np.zeros_like(d), where=sd > 0)
    x = np.tanh(x)
    out: Array = y.mean(axis=1)
    fit = np.any(x != 0, axis=1) & np.any(y != y[:, :1], axis=1)
    if not fit.any():
        return out
    y, x = y[fit], x[fit]
    if start is None:
        m = np.clip(y.mean(axis=1), 1e-6, 1 - 1e-6)
        b0, b1 = np.log(m / (1 - m)), np.zeros(len(y))
    else:
        b0, b1 = np.full(len(y), float(start[0])), np.full(len(y), float(start[1]))

    def loss(z: Array, yy: Array, c1: Array) -> Array:
        total: Array = np.sum(softplus(z) - yy * z, axis=1) + 0.5 * l2 * c1**2
        return total

    # the rows still iterating, compacted (x, y, z, coefficients) only when some converge: no copy per iteration
    rows = np.arange(len(y))
    c0, c1 = b0.copy(), b1.copy()
    z = _linear(c0, c1, x)
    for _ in range(max_iter):
        p = expit(z)
        r = p - y
        w = p * (1 - p)
        g0, g1 = r.sum(axis=1), np.einsum("ij,ij->i", r, x) + l2 * c1
        going = np.maximum(np.abs(g0), np.abs(g1)) > tol * n
        if not going.all():
            b0[rows], b1[rows] = c0, c1
            rows, x, y, z, w, g0, g1, c0, c1 = (a[going] for a in (rows, x, y, z, w, g0, g1, c0, c1))
            if rows.size == 0:
                break
        wx = w * x
        h00, h01, h11 = w.sum(axis=1), wx.sum(axis=1), np.einsum("ij,ij->i", wx, x) + l2
        det = h00 * h11 - h01 * h01
        safe = det > 1e-300
        s0 = np.where(safe, (h11 * g0 - h01 * g1) / np.where(safe, det, 1.0), g0)
        s1 = np.where(safe, (h00 * g1 - h01 * g0) / np.where(safe, det, 1.0), g1)
        # a short Newton step on this convex loss is taken as is; a long one (far from the optimum, or separation)
        # is halved until the row's loss does not rise
        long = np.flatnonzero(np.maximum(np.abs(s0), np.abs(s1)) > 0.25)
        if long.size:
            before = loss(z[long], y[long], c1[long])
            step = np.ones(long.size)
            for _ in range(60):
                zt = _linear(c0[long] - step * s0[long], c1[long] - step * s1[long], x[long])
                worse = (loss(zt, y[long], c1[long] - step * s1[long]) > before + 1e-12 * np.abs(before)) \
                    & (step > 1e-12)
                if not worse.any():
                    break
                step = np.where(worse, step / 2, step)
            s0[long] *= step
            s1[long] *= step
        c0 -= s0
        c1 -= s1
        z = _linear(c0, c1, x)
    else:
        b0[rows], b1[rows] = c0, c1
    out[fit] = expit(b0)
    return out


def softplus(z: Array) -> Array:
    """log(1 + e^z) without overflow; equal to ``np.logaddexp(0, z)`` and several times faster on large arrays."""
    out: Array = np.log1p(np.exp(-np.abs(z)))
    out += np.maximum(z, 0.0)
    return out


def _linear(c0: Array, c1: Array, x: Array) -> Array:
    """c0 + c1·x row by row, built in place (a fresh broadcast sum of a large array costs ~10× more)."""
    z = c1[:, None] * x
    z += c0[:, None]
    return z


def lc_bootstrap_ci(
    outcomes: Sequence[float], length_diffs: Sequence[float], *, seed: int, n_boot: int = N_LC_BOOTSTRAP,
    l2: float = L2_SLOPE,
) -> tuple[float, float]:
    """95 % percentile CI of the LC win rate, resampling dialogues and refitting (standardisation included).

    Indices are drawn as in :func:`harness.score.stats.bootstrap_ci` (``default_rng(seed)``, one
    ``(n_boot, n)`` draw); every refit starts from the full-data fit (:func:`lc_batch`).
    """
    y = np.asarray(outcomes, dtype=float)
    d = np.asarray(length_diffs, dtype=float)
    if y.size == 0:
        return math.nan, math.nan
    _, beta = _lc(y, length_feature(d), l2=l2, start=None)
    idx = resample_indices(seed, y.size, n_boot)
    values = lc_batch(y[idx], d[idx], l2=l2, start=beta)  # every resample refitted, in one vectorised solve
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)
