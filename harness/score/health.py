"""Judge health of a run: can the judge tell replies apart, or is it answering by position or not at all?"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from harness.core.records import Judgment, RubricScore, RunHealth
from harness.score.stats import mean_or_nan, position_flip


def label_masses(judgments: Iterable[Judgment]) -> list[float]:
    """The label mass of every verdict that reports one (logits mode)."""
    return [v.label_mass for j in judgments for v in j.verdicts if v.label_mass is not None]


def mass_summary(masses: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, min) of label masses, or (None, None) when there are none (generate mode)."""
    return (float(np.mean(masses)), float(np.min(masses))) if masses else (None, None)


def run_health(judgments: Sequence[Judgment], rubric: Sequence[RubricScore], *, min_label_mass: float) -> RunHealth:
    """Parse rate, tie rate, flip rate, position bias and label mass over every pairwise verdict of the run."""
    verdicts = [v for j in judgments for v in j.verdicts]
    read = [v for v in verdicts if v.winner is not None]
    decisive = [v for v in read if v.winner != "tie"]
    # a verdict for the first-shown reply: the candidate when it was first, the reference when it was
    first_wins = [float((v.winner == "candidate") == (v.order == "cand_first")) for v in decisive]
    flips = [f for j in judgments if (f := position_flip(j)) is not None]
    masses = label_masses(judgments)
    mean_mass, min_mass = mass_summary(masses)
    dims = [s for r in rubric for s in r.scores.values()]
    return RunHealth(
        n_verdicts=len(verdicts),
        parse_rate=len(read) / len(verdicts) if verdicts else None,
        tie_rate=sum(v.winner == "tie" for v in read) / len(read) if read else None,
        position_flip_rate=mean_or_nan([float(f) for f in flips]) if flips else None,
        position_bias=2 * mean_or_nan(first_wins) - 1 if first_wins else None,
        label_mass_mean=mean_mass,
        label_mass_min=min_mass,
        n_low_label_mass=sum(m < min_label_mass for m in masses),
        rubric_parse_rate=sum(s is not None for s in dims) / len(dims) if dims else None,
    )
