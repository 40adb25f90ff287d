"""Sample-size arithmetic of ``empathy check``: power, dialogues needed, bootstrap size, small-sample widening.

Normal-theory formulas for a paired mean difference with per-dialogue SD ``sd`` at n dialogues; the gate's test
(:mod:`harness.gate.stats`) behaves like a paired t-test, so its critical value carries the t/z ratio.
"""

from __future__ import annotations

import math

from scipy.special import ndtri, stdtrit  # norm.ppf and t.ppf of scipy.stats, without importing scipy.stats

DEFAULT_DROP = 0.02
"""When a metric's margin is 0, ``n_needed`` is sized for a drop of margin + this (a 2-point drop of a rate)."""
POWER = 0.8
"""Power of the ``mde`` and ``n_needed`` statements."""


def required_n(sd: float, drop: float, *, alpha: float, power: float = POWER) -> int | None:
    """Paired dialogues a one-sided level-α test needs to detect a mean drop of ``drop`` with ``power``.

    The normal-approximation formula n = ⌈((z_{1−α} + z_{power})·sd / drop)²⌉.

    Args:
        sd: Standard deviation of the per-dialogue difference.
        drop: The drop to detect (> 0).
        alpha: One-sided significance level, in (0, 1).
        power: Probability of detecting the drop, in (0, 1).

    Returns:
        The number of dialogues, or None when it cannot be estimated (sd not positive and finite, drop ≤ 0).
    """
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"required_n: alpha={alpha} and power={power} must both lie in (0, 1)")
    if not (math.isfinite(sd) and sd > 0 and math.isfinite(drop) and drop > 0):
        return None
    z = float(ndtri(1 - alpha) + ndtri(power))
    return max(1, math.ceil((z * sd / drop) ** 2))


def min_n_boot(m: int, alpha: float) -> int:
    """The smallest ``n_boot`` with which Holm's smallest level α/m can be reached: m / (n_boot + 1) < α.

    Args:
        m: The number of gated metrics (≥ 1).
        alpha: The family-wise error rate, in (0, 1).
    """
    n = max(0, math.floor(m / alpha) - 1)
    while not m / (n + 1) < alpha:  # exactly the test evaluate_gate makes (m / α may round either way)
        n += 1
    return n


def t_ratio(n: int, level: float) -> float:
    """t_{n−1, 1−level} / z_{1−level}: how much longer a t quantile with n − 1 degrees of freedom is (n ≥ 2)."""
    return float(stdtrit(n - 1, 1 - level) / ndtri(1 - level))


def widening(n: int, level: float) -> float:
    """κ = √(n/(n − 1))·t_{n−1, 1−level}/z_{1−level}, the factor resampled deviations are scaled by (1 when n < 2)."""
    return 1.0 if n < 2 else math.sqrt(n / (n - 1)) * t_ratio(n, level)


def critical(n: int, level: float, first_level: float) -> float:
    """The gate's critical value at the Holm level ``level``, in standard errors sd/√n.

    z_{1−level} times the widening's t/z ratio at Holm's first level ``first_level`` (see :mod:`harness.gate.stats`).
    """
    return float(ndtri(1 - level)) * t_ratio(n, first_level)


def n_to_flag(sd: float, gap: float, *, level: float, first_level: float) -> int | None:
    """Smallest n with (critical(n) + z_{0.8})·sd/√n ≤ gap: a true drop of margin + gap is flagged with 80 % power.

    Starts from the normal approximation :func:`required_n` and iterates: critical(n) falls as n grows, so the
    sequence rises to its fixed point in a few steps. None when not estimable (sd not positive, gap ≤ 0).
    """
    n = required_n(sd, gap, alpha=level)
    if n is None:
        return None
    n = max(n, 2)
    z_power = float(ndtri(POWER))
    for _ in range(100):
        needed = max(2, math.ceil(((critical(n, level, first_level) + z_power) * sd / gap) ** 2))
        if needed <= n:
            break
        n = needed
    return n
