"""Statistics of ``empathy check``: a paired non-inferiority gate of a CANDIDATE run against a BASELINE run.

Both runs were judged on the same dialogues by the same judge, so every comparison is paired by dialogue.

Paired metrics (:class:`PairedMetric`):

- Only dialogues present in both runs count (the intersection of the two dicts; n = its size; an empty
  intersection is a metric without information, below). Dialogues are taken in sorted id order, so dict order
  never matters.
- Δ = mean(candidate) − mean(baseline) (``"mean"``), or LC(candidate) − LC(baseline) (``"lc"``): the
  length-controlled win rate (:func:`harness.score.lc.length_controlled_win_rate`) of each run, fitted on its
  per-dialogue outcomes and its own length differences (``*_len``: candidate − reference words).
- Bootstrap: ``n_boot`` resamples of the dialogues, drawn once from ``np.random.default_rng(seed)`` as one
  ``(n_boot, n)`` index array and applied to both runs (paired); ``"lc"`` refits both models on every
  resample. Each metric draws from a fresh generator, so its resamples do not depend on the other metrics.
- Small-sample widening: the percentile bootstrap of a mean is too narrow at small n — its SD is the plug-in
  sd·√((n − 1)/n)/√n, and its tails are normal where a paired t-test's are t_{n−1}. Measured over 3000 null
  comparisons of normal per-dialogue differences (margin 0, α = 5 %), it reported a regression in 7.5 % at
  n = 10, 5.9 % at n = 20, and 8.1 % at n = 20 with three metrics under Holm. Every resampled Δ* is therefore
  moved away from Δ by κ = √(n/(n − 1))·t_{n−1, 1−α/m}/z_{1−α/m} (n: the dialogues resampled, m: the gated
  metrics): Δ* ← Δ + κ·(Δ* − Δ). For normal differences that makes the test at Holm's first (smallest) level
  α/m the paired t-test, and the larger levels of later steps slightly conservative; the same figures became
  5.5 %, 5.1 % and 5.3 %. κ → 1 as n grows (1.08 at n = 20 and α/m = 0.05, 1.007 at n = 200); resamples equal
  to Δ do not move, so a difference that never varies stays decided; the order of Δ* is kept, so the CI and
  the p-values below stay exactly consistent. Applied alike to ``"lc"`` and the head to head (n: the dialogues
  resampled), where it is the same small-sample heuristic. Limitation: a widening does not correct skewness —
  with strongly skewed differences (exponential) the null regression share at n = 20 is still about 10 %
  (11 % before); 0/1 outcomes (win rates) were not liberal (4.6 % at n = 20, before and after).
- One-sided bootstrap p-values with the (k + 1) / (n_boot + 1) convention (never 0), on the widened Δ*:
  p_regression = share of Δ* ≥ −margin (small → a drop beyond the margin is real) and
  p_pass = share of Δ* ≤ −margin (small → non-inferior).
- sd: the sample SD of the per-dialogue difference (``"mean"``); for ``"lc"``, which has no per-dialogue
  difference, the SD a paired mean with the same precision would have: the bootstrap SD of Δ* (before
  widening) times √n·√(n/(n − 1)).

Head to head (:class:`HeadToHead`): the candidate's win rate against the baseline (ties ½) with delta = win rate
− 0.5, bootstrapped over dialogues exactly as above (so it is a regression when the candidate loses to the
baseline beyond the margin); beside it the exact two-sided sign test on decisive dialogues
(:func:`scipy.stats.binomtest`), the wins / losses / ties, and n = decisive dialogues.

Decision (:func:`evaluate_gate`):

- Holm's step-down procedure over ALL gated metrics (paired and head to head), separately for the family of
  p_regression and the family of p_pass: "regression" when the Holm-adjusted p_regression < α, "pass" when the
  Holm-adjusted p_pass < α, else "inconclusive" (both cannot happen: p_regression + p_pass > 1).
- α_i, the Holm step level that applied to a metric: α / (m − j + 1) at the step j where the metric was rejected
  (tied p-values share the first step of their tie), or, for a metric not rejected, at the step where the
  procedure stopped. The verdict's level is that of the regression family for a regression, of the pass family
  for a pass, and the smaller of the two when inconclusive.
- The CI is the percentile interval of the widened Δ* at confidence 1 − 2·α_i, taken as order statistics chosen
  with the same integer arithmetic as the p-values, so that exactly: CI entirely below −margin ⇔ regression, CI
  entirely above −margin ⇔ pass. This needs m / (n_boot + 1) < α; a smaller ``n_boot`` is an error
  (:func:`harness.gate.power.min_n_boot` gives the smallest that works).
- Power (paired metrics), for the non-inferiority test as decided here: a true drop d is flagged as a
  regression with 80 % power when d ≥ margin + (c + z_{0.8})·sd/√n, where c = z_{1−α_i}·t_{n−1, 1−α/m}/z_{1−α/m}
  is the test's critical value in standard errors (α_i of the regression family; the ratio is the widening's).
  mde is that smallest flagged drop at this n — never below the margin, since a drop within the margin is not
  a regression. n_needed is the smallest n at which a drop of 2·margin (margin + ``DEFAULT_DROP`` when the
  margin is 0) is flagged with 80 % power: the smallest n with (c(n) + z_{0.8})·sd/√n ≤ margin (resp.
  ``DEFAULT_DROP``), found by :func:`harness.gate.power.n_to_flag`.
- Degenerate inputs: identical runs give Δ* ≡ 0 and CI [0, 0] — "pass" when margin > 0 (a zero drop is
  non-inferior), "inconclusive" when margin = 0.
- No information (:func:`no_information`): a metric with no dialogue scored in both runs, a win rate (values
  that are outcomes 1 / ½ / 0) whose every common dialogue is a tie in both runs, or a head to head without a
  decisive dialogue among those whose replies differ (W/L/T 0/0/n; identical replies tie by fact) measures nothing — its CI would be [0, 0] because the judge never chose, not
  because the systems are equal. It is not bootstrapped; it stays in both Holm families with p = 1 (so the others
  are corrected as if it were tested) and is "inconclusive" with the ``reason``; the gate never passes on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtri

from harness.gate.metrics import HeadToHead, PairedMetric, no_information, uninformative_verdict
from harness.gate.models import MetricOutcome, MetricVerdict
from harness.gate.power import DEFAULT_DROP, POWER, critical, min_n_boot, n_to_flag, widening
from harness.score.lc import lc_batch, length_controlled_win_rate

Array = NDArray[np.float64]
__all__ = ["HeadToHead", "PairedMetric", "evaluate_gate", "no_information"]

@dataclass(frozen=True)
class _Boot:
    """What a metric's bootstrap yields, before the multiple-testing decision."""

    name: str
    kind: Literal["paired", "head_to_head"]
    margin: float
    baseline: float | None
    candidate: float | None
    delta: float
    deltas: Array  # Δ* of every resample, sorted ascending
    n: int
    units: int  # dialogues resampled (head to head: decisive and tied)
    sd: float | None = None
    sign_test_p: float | None = None
    wins: int | None = None
    losses: int | None = None
    ties: int | None = None


def evaluate_gate(
    metrics: Sequence[PairedMetric], h2h: HeadToHead | None, *, alpha: float = 0.05, n_boot: int = 2000,
    seed: int = 0,
) -> list[MetricVerdict]:
    """Decide pass / regression / inconclusive for every metric, Holm-corrected across all of them.

    Args:
        metrics: The paired metrics to gate.
        h2h: The head-to-head comparison, or None when the runs were not judged against each other.
        alpha: Family-wise error rate of each one-sided family (regression, pass), in (0, 0.5).
        n_boot: Bootstrap resamples per metric; must be at least :func:`~harness.gate.power.min_n_boot` of the m gated metrics.
        seed: Seed of every metric's resampling.

    Returns:
        One verdict per metric, in the order given, the head to head last.

    Raises:
        ValueError: On an invalid argument, a margin < 0, a head to head without a scored dialogue, or ``"lc"``
            without lengths for its dialogues. (A metric without common dialogues is inconclusive, see
            :func:`no_information`.)
    """
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha={alpha} must lie in (0, 0.5)")
    m = len(metrics) + (h2h is not None)
    if m == 0:
        return []
    if not m / (n_boot + 1) < alpha:
        raise ValueError(f"n_boot={n_boot} is too small to reach Holm's smallest level alpha/{m} = {alpha / m:.2g} "
                         f"for {m} metrics — use n_boot ≥ {min_n_boot(m, alpha)}")
    items: list[PairedMetric | HeadToHead] = [*metrics, *([h2h] if h2h is not None else [])]
    reasons = [no_information(x) for x in items]
    first_level = alpha / m
    boots = [None if why else _widen(_boot(x, n_boot=n_boot, seed=seed), first_level)
             for x, why in zip(items, reasons, strict=True)]
    # a metric without information is not tested: p = 1 in both families keeps the others' correction honest
    p_reg = np.array([1.0 if b is None else _p_value(int(np.count_nonzero(b.deltas >= -b.margin)), n_boot)
                      for b in boots])
    p_pass = np.array([1.0 if b is None else _p_value(int(np.count_nonzero(b.deltas <= -b.margin)), n_boot)
                       for b in boots])
    reg, reg_factor = _holm(p_reg, alpha)
    ok, pass_factor = _holm(p_pass, alpha)
    verdicts = []
    for i, (item, b, why) in enumerate(zip(items, boots, reasons, strict=True)):
        if b is None:
            factor = int(max(reg_factor[i], pass_factor[i]))
            verdicts.append(uninformative_verdict(item, str(why), confidence=1 - 2 * alpha / factor))
            continue
        outcome: MetricOutcome = "regression" if reg[i] else "pass" if ok[i] else "inconclusive"
        # the CI's level: the step that decided the metric; both families' widest when undecided
        factor = reg_factor[i] if reg[i] else pass_factor[i] if ok[i] else max(reg_factor[i], pass_factor[i])
        verdicts.append(_verdict(b, outcome=outcome, factor=int(factor), reg_factor=int(reg_factor[i]),
                                 p_reg=float(p_reg[i]), p_pass=float(p_pass[i]), alpha=alpha, first_level=first_level))
    return verdicts


def _boot(item: PairedMetric | HeadToHead, *, n_boot: int, seed: int) -> _Boot:
    if isinstance(item, HeadToHead):
        return _h2h_boot(item, n_boot=n_boot, seed=seed)
    return _paired_boot(item, n_boot=n_boot, seed=seed)


def _common_ids(metric: PairedMetric) -> list[str]:
    return sorted(metric.baseline.keys() & metric.candidate.keys())


def _paired_boot(metric: PairedMetric, *, n_boot: int, seed: int) -> _Boot:
    ids = _common_ids(metric)
    b = np.array([metric.baseline[i] for i in ids], dtype=float)
    c = np.array([metric.candidate[i] for i in ids], dtype=float)
    n = len(ids)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    if metric.statistic == "mean":
        diff = c - b
        base, cand = float(b.mean()), float(c.mean())
        deltas = diff[idx].mean(axis=1)
        sd = float(diff.std(ddof=1)) if n > 1 else None
    else:
        b_len, c_len = _lengths(metric, ids, "baseline"), _lengths(metric, ids, "candidate")
        base, cand = _lc(b, b_len), _lc(c, c_len)
        deltas = lc_batch(c[idx], c_len[idx]) - lc_batch(b[idx], b_len[idx])  # every resample refitted at once
        sd = float(deltas.std(ddof=1) * math.sqrt(n) * math.sqrt(n / (n - 1))) if n_boot > 1 and n > 1 else None
    return _Boot(name=metric.name, kind="paired", margin=metric.margin, baseline=base, candidate=cand,
                 delta=cand - base, deltas=np.sort(deltas), n=n, units=n, sd=sd)


def _lc(outcomes: Array, length_diffs: Array) -> float:
    return length_controlled_win_rate(outcomes.tolist(), length_diffs.tolist())


def _lengths(metric: PairedMetric, ids: list[str], run: Literal["baseline", "candidate"]) -> Array:
    lengths = metric.baseline_len if run == "baseline" else metric.candidate_len
    missing = [i for i in ids if lengths is None or i not in lengths]
    if lengths is None or missing:
        raise ValueError(f"metric '{metric.name}' (statistic 'lc'): {run}_len lacks the length difference of "
                         f"{len(missing)} common dialogue(s), e.g. {missing[:3]} — pass one per scored dialogue")
    return np.array([lengths[i] for i in ids], dtype=float)


def _h2h_boot(h2h: HeadToHead, *, n_boot: int, seed: int) -> _Boot:
    y = np.array([h2h.outcomes[i] for i in sorted(h2h.outcomes)], dtype=float)
    if np.any((y < 0) | (y > 1)):
        raise ValueError(f"metric '{h2h.name}': outcomes must lie in [0, 1] (1 win, ½ tie, 0 loss), "
                         f"got {sorted(set(y[(y < 0) | (y > 1)].tolist()))[:3]}")
    wins, losses = int(np.count_nonzero(y > 0.5)), int(np.count_nonzero(y < 0.5))
    idx = np.random.default_rng(seed).integers(0, y.size, size=(n_boot, y.size))
    win_rate = float(y.mean())
    sign_p = None
    if wins + losses:
        from scipy.stats import binomtest  # (only here: importing scipy.stats costs every command ~0.3 s)

        sign_p = float(binomtest(wins, wins + losses, 0.5).pvalue)
    return _Boot(name=h2h.name, kind="head_to_head", margin=h2h.margin, baseline=None, candidate=None,
                 delta=win_rate - 0.5, deltas=np.sort(y[idx].mean(axis=1) - 0.5), n=wins + losses, units=int(y.size),
                 wins=wins, losses=losses, ties=int(y.size) - wins - losses,
                 sign_test_p=sign_p)


def _widen(b: _Boot, level: float) -> _Boot:
    """Δ* ← Δ + κ·(Δ* − Δ) with κ = :func:`widening` of the resampled dialogues at ``level`` (order is kept)."""
    kappa = widening(b.units, level)
    if kappa == 1.0:
        return b
    return replace(b, deltas=b.delta + kappa * (b.deltas - b.delta))


def _p_value(k: int, n_boot: int) -> float:
    """Bootstrap p-value of k resamples at least as extreme as the null boundary."""
    return (k + 1) / (n_boot + 1)


def _holm(p: Array, alpha: float) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """Holm's step-down: which hypotheses are rejected, and the divisor of the step level that applied to each.

    A rejected hypothesis gets m − j + 1 of the first step j of its tie; one not rejected, that of the step where
    the procedure stopped. So p_i·divisor_i < alpha exactly when hypothesis i is rejected.
    """
    m = p.size
    order = np.argsort(p, kind="stable")
    steps = np.arange(m, 0, -1)  # m − j + 1 for j = 1..m
    adjusted = np.maximum.accumulate(steps * p[order])
    rejected_sorted = adjusted < alpha
    first_of_tie = np.searchsorted(p[order], p[order], side="left")
    stop = int(np.argmin(rejected_sorted)) if not rejected_sorted.all() else m
    step_index = np.where(rejected_sorted, first_of_tie, stop)
    rejected, divisor = np.empty(m, dtype=bool), np.empty(m, dtype=np.int64)
    rejected[order], divisor[order] = rejected_sorted, steps[np.minimum(step_index, m - 1)]
    return rejected, divisor


def _tail_count(divisor: int, alpha: float, n_boot: int) -> int:
    """Largest k whose p-value (k + 1)/(n_boot + 1) passes divisor·p < alpha: the CI's order statistic."""
    k = np.arange(n_boot + 1)
    return int(np.count_nonzero(divisor * ((k + 1) / (n_boot + 1)) < alpha)) - 1


def _verdict(b: _Boot, *, outcome: MetricOutcome, factor: int, reg_factor: int, p_reg: float, p_pass: float,
             alpha: float, first_level: float) -> MetricVerdict:
    n_boot = b.deltas.size
    k = _tail_count(factor, alpha, n_boot)
    mde = n_needed = None
    if b.kind == "paired" and b.sd is not None and b.n > 1:
        level = alpha / reg_factor
        mde = b.margin + float((critical(b.n, level, first_level) + ndtri(POWER)) * b.sd / math.sqrt(b.n))
        n_needed = n_to_flag(b.sd, b.margin if b.margin > 0 else DEFAULT_DROP, level=level, first_level=first_level)
    return MetricVerdict(
        name=b.name, kind=b.kind, baseline=b.baseline, candidate=b.candidate, delta=b.delta,
        ci_low=float(b.deltas[k]), ci_high=float(b.deltas[n_boot - 1 - k]), confidence=1 - 2 * alpha / factor,
        margin=b.margin, p_regression=p_reg, p_pass=p_pass, outcome=outcome, n=b.n, sd=b.sd, mde=mde,
        n_needed=n_needed, sign_test_p=b.sign_test_p, wins=b.wins, losses=b.losses, ties=b.ties,
    )
