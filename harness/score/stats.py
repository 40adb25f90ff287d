"""Statistics of judgments, exactly as the design defines them.

- win rate = (wins + ½·ties) / scored dialogues; also per order; seeded 95 % percentile bootstrap CI that
  resamples dialogues; tie rate; position-flip rate; n_scored / n_unscored; mean reply length of each side.
- continuous preference (logits mode) = mean over dialogues of the mean over orders of P(candidate preferred).
- length-controlled win rate (:mod:`harness.score.lc`): logistic model of the same per-dialogue outcomes on
  tanh(standardised length difference), predicted at zero length difference, with a bootstrap CI; beside the raw.
- rubric: mean per dimension with a bootstrap CI.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.core.prompts import DIMENSIONS
from harness.core.records import Judgment, RubricScore
from harness.score.lc import N_LC_BOOTSTRAP, lc_bootstrap_ci, length_controlled_win_rate
from harness.score.resample import resample_counts

N_BOOTSTRAP = 2000
OUTCOME_SCORE = {"candidate": 1.0, "tie": 0.5, "reference": 0.0}


def position_flip(judgment: Judgment) -> bool | None:
    """Whether the two orders named different winners; None when an order is unscored."""
    winners = [v.winner for v in judgment.verdicts]
    if any(w is None for w in winners):
        return None
    return len(set(winners)) > 1


def bootstrap_ci(values: Sequence[float], *, seed: int, n_boot: int = N_BOOTSTRAP) -> tuple[float, float]:
    """95 % percentile bootstrap CI of the mean of ``values`` (NaN, NaN for no values)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    means = resample_counts(seed, arr.size, n_boot) @ arr / arr.size  # every resample's mean, no gather
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def mean_or_nan(values: Sequence[float]) -> float:
    """The mean, or NaN for no values."""
    return float(np.mean(values)) if len(values) else math.nan


def comparison_stats(judgments: Sequence[Judgment], *, seed: int) -> dict[str, Any]:
    """Every statistic of one comparison (candidate vs one reference)."""
    scored = [j for j in judgments if j.outcome is not None]
    scores = [OUTCOME_SCORE[j.outcome] for j in scored if j.outcome is not None]
    n_scored = len(scored)
    ci_low, ci_high = bootstrap_ci(scores, seed=seed)
    diffs = [float(j.candidate_words - j.reference_words) for j in scored]
    lc_low, lc_high = lc_bootstrap_ci(scores, diffs, seed=seed)
    per_order: dict[str, list[float]] = {"cand_first": [], "ref_first": []}
    flips = both = 0
    for j in judgments:
        for v in j.verdicts:
            if v.winner is not None:
                per_order[v.order].append(OUTCOME_SCORE[v.winner])
        flip = position_flip(j)
        if flip is not None:
            both += 1
            flips += flip
    stats: dict[str, Any] = {
        "win_rate": mean_or_nan(scores),
        "ci_low": ci_low,
        "ci_high": ci_high,
        "win_rate_cand_first": mean_or_nan(per_order["cand_first"]),
        "win_rate_ref_first": mean_or_nan(per_order["ref_first"]),
        "wins": sum(1 for j in scored if j.outcome == "candidate"),
        "losses": sum(1 for j in scored if j.outcome == "reference"),
        "ties": sum(1 for j in scored if j.outcome == "tie"),
        "tie_rate": (sum(1 for j in scored if j.outcome == "tie") / n_scored) if n_scored else math.nan,
        "position_flip_rate": flips / both if both else math.nan,
        "n_scored": n_scored,
        "n_unscored": len(judgments) - n_scored,
        "parse_rate": n_scored / len(judgments) if judgments else math.nan,
        "lc_win_rate": length_controlled_win_rate(scores, diffs),
        "lc_ci_low": lc_low,
        "lc_ci_high": lc_high,
        "lc_n_bootstrap": N_LC_BOOTSTRAP,
        "mean_words_candidate": mean_or_nan([j.candidate_words for j in judgments]),
        "mean_words_reference": mean_or_nan([j.reference_words for j in judgments]),
        "flags": _count_flags(j.flags for j in judgments),
        "seed": seed,
        "n_bootstrap": N_BOOTSTRAP,
    }
    continuous = [
        float(np.mean([v.p_candidate for v in j.verdicts]))
        for j in judgments
        if j.verdicts and all(v.p_candidate is not None for v in j.verdicts)
    ]
    if continuous:
        low, high = bootstrap_ci(continuous, seed=seed)
        stats.update(preference=mean_or_nan(continuous), preference_ci_low=low, preference_ci_high=high)
    return stats


def rubric_stats(scores: Sequence[RubricScore], *, seed: int) -> dict[str, dict[str, Any]]:
    """Mean and bootstrap CI per dimension for one system's responses."""
    out: dict[str, dict[str, Any]] = {}
    for dim in DIMENSIONS:
        values = [s.scores[dim] for s in scores if s.scores.get(dim) is not None]
        vals = [float(v) for v in values if v is not None]
        low, high = bootstrap_ci(vals, seed=seed)
        out[dim] = {
            "mean": mean_or_nan(vals),
            "ci_low": low,
            "ci_high": high,
            "n_scored": len(vals),
            "n_unscored": len(scores) - len(vals),
        }
    return out


def _count_flags(flag_sets: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for flags in flag_sets:
        for f in flags:
            counts[f] = counts.get(f, 0) + 1
    return dict(sorted(counts.items()))
