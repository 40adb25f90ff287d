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
from scipy.optimize import minimize
from scipy.special import expit

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


def lc_bootstrap_ci(
    outcomes: Sequence[float], length_diffs: Sequence[float], *, seed: int, n_boot: int = N_LC_BOOTSTRAP,
    l2: float = L2_SLOPE,
) -> tuple[float, float]:
    """95 % percentile CI of the LC win rate, resampling dialogues and refitting (standardisation included).

    Indices are drawn as in :func:`harness.score.stats.bootstrap_ci` (``default_rng(seed)``, one
    ``(n_boot, n)`` draw); every refit starts from the full-data fit.
    """
    y = np.asarray(outcomes, dtype=float)
    d = np.asarray(length_diffs, dtype=float)
    if y.size == 0:
        return math.nan, math.nan
    _, beta = _lc(y, length_feature(d), l2=l2, start=None)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, y.size, size=(n_boot, y.size))
    values = [_lc(y[i], length_feature(d[i]), l2=l2, start=beta)[0] for i in idx]
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)
