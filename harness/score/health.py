"""Judge health of a run: can the judge tell replies apart, or is it answering by position or not at all?"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from harness.core.records import JudgeProbe, Judgment, RubricScore, RunHealth
from harness.score.stats import mean_or_nan, position_flip

#: Below this share of probe orders won by the caring reply, the judge fails the sanity probe.
MIN_PROBE_ACCURACY = 0.75
#: At or above this |position bias|, the judge answers by position rather than by content.
MAX_POSITION_BIAS = 0.5
#: At or above this share of read verdicts on the tie label, the judge is not choosing at all.
MAX_TIE_LABEL_RATE = 0.9
#: The one-line warning every front end shows for an unhealthy judge (followed by the problem).
UNHEALTHY = "this judge cannot tell replies apart"


def label_masses(judgments: Iterable[Judgment]) -> list[float]:
    """The label mass of every verdict that reports one (logits mode)."""
    return [v.label_mass for j in judgments for v in j.verdicts if v.label_mass is not None]


def mass_summary(masses: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, min) of label masses, or (None, None) when there are none (generate mode)."""
    return (float(np.mean(masses)), float(np.min(masses))) if masses else (None, None)


def probe_accuracy(probe: Sequence[JudgeProbe]) -> float | None:
    """Share of probe orders in which the caring reply won; an unread or tie verdict counts as a miss."""
    verdicts = [v for p in probe for v in p.verdicts]
    return sum(v.winner == "candidate" for v in verdicts) / len(verdicts) if verdicts else None


def judge_problem(*, probe_accuracy: float | None, position_bias: float | None, tie_rate: float | None) -> str | None:
    """Why the judge cannot tell replies apart (every failed check, '; '-joined), or None when it can."""
    out = []
    if probe_accuracy is not None and probe_accuracy < MIN_PROBE_ACCURACY:
        out.append(f"it preferred the caring reply in {probe_accuracy:.0%} of the sanity probe's orders (needs "
                   f"{MIN_PROBE_ACCURACY:.0%})")
    if position_bias is not None and abs(position_bias) >= MAX_POSITION_BIAS:
        which = "first" if position_bias > 0 else "second"
        out.append(f"position bias {position_bias:+.2f}: it mostly picks the {which}-shown reply")
    if tie_rate is not None and tie_rate >= MAX_TIE_LABEL_RATE:
        out.append(f"{tie_rate:.0%} of its verdicts are the tie label")
    return "; ".join(out) or None


def run_health(judgments: Sequence[Judgment], rubric: Sequence[RubricScore], *, min_label_mass: float,
               probe: Sequence[JudgeProbe] = ()) -> RunHealth:
    """Parse rate, tie rate, flip rate, position bias and label mass over every pairwise verdict of the run.

    Position bias and the tie-label rate come from the run's own verdicts, the probe accuracy from ``probe``
    only (its pairs are not the run's dialogues); together they decide ``judge_ok``.
    """
    verdicts = [v for j in judgments for v in j.verdicts]
    read = [v for v in verdicts if v.winner is not None]
    decisive = [v for v in read if v.winner != "tie"]
    # a verdict for the first-shown reply: the candidate when it was first, the reference when it was
    first_wins = [float((v.winner == "candidate") == (v.order == "cand_first")) for v in decisive]
    flips = [f for j in judgments if (f := position_flip(j)) is not None]
    masses = label_masses(judgments)
    mean_mass, min_mass = mass_summary(masses)
    dims = [s for r in rubric for s in r.scores.values()]
    tie_rate = sum(v.winner == "tie" for v in read) / len(read) if read else None
    bias = 2 * mean_or_nan(first_wins) - 1 if first_wins else None
    accuracy = probe_accuracy(probe)
    problem = judge_problem(probe_accuracy=accuracy, position_bias=bias, tie_rate=tie_rate)
    return RunHealth(
        n_verdicts=len(verdicts),
        parse_rate=len(read) / len(verdicts) if verdicts else None,
        tie_rate=tie_rate,
        position_flip_rate=mean_or_nan([float(f) for f in flips]) if flips else None,
        position_bias=bias,
        label_mass_mean=mean_mass,
        label_mass_min=min_mass,
        n_low_label_mass=sum(m < min_label_mass for m in masses),
        rubric_parse_rate=sum(s is not None for s in dims) / len(dims) if dims else None,
        probe_accuracy=accuracy,
        probe_n=len(probe),
        judge_ok=problem is None,
        judge_problem=problem,
    )
