"""What ``empathy check`` gates: a metric measured on both runs, and the head to head.

And whether either carries information at all (see "No information" in :mod:`harness.gate.stats`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from harness.gate.models import MetricVerdict


@dataclass(frozen=True)
class PairedMetric:
    """One metric measured on both runs, per dialogue (scored dialogues only).

    Attributes:
        name: The metric's name in the verdict, e.g. ``win_rate:vs_base`` or ``rubric:cognitive``.
        baseline: Dialogue id → the baseline run's value.
        candidate: Dialogue id → the candidate run's value.
        margin: Non-inferiority margin (≥ 0): a drop smaller than this is not a regression.
        statistic: ``"mean"`` (Δ of means) or ``"lc"`` (Δ of length-controlled win rates; the values are
            outcomes 1 / ½ / 0 against a reference).
        baseline_len: For ``"lc"``: dialogue id → the baseline reply's length difference (reply − reference words).
        candidate_len: For ``"lc"``: the same for the candidate run.
        outcomes: The values are outcomes 1 / ½ / 0 against a reference (a win rate; always so for ``"lc"``):
            with no decisive dialogue in either run the metric carries no information.
    """

    name: str
    baseline: dict[str, float]
    candidate: dict[str, float]
    margin: float
    statistic: Literal["mean", "lc"] = "mean"
    baseline_len: dict[str, float] | None = None
    candidate_len: dict[str, float] | None = None
    outcomes: bool = False

    @property
    def of_outcomes(self) -> bool:
        """Whether the values are outcomes 1 / ½ / 0 (``outcomes``, or any ``"lc"`` metric)."""
        return self.outcomes or self.statistic == "lc"


@dataclass(frozen=True)
class HeadToHead:
    """The judge's direct comparison of the candidate with the baseline.

    Attributes:
        name: The verdict's name (``"head_to_head"``).
        outcomes: Dialogue id → 1 (candidate wins), ½ (tie), 0 (baseline wins), both orders combined.
        margin: Non-inferiority margin (≥ 0) on the win rate.
        same_replies: Dialogues where the candidate's reply is the baseline's, word for word: a tie there is a
            fact, not a judge that could not choose (see :func:`no_information`).
    """

    name: str
    outcomes: dict[str, float]
    margin: float
    same_replies: frozenset[str] = frozenset()



def no_information(item: PairedMetric | HeadToHead) -> str | None:
    """Why a metric carries no information (None: it does) — see the module's "No information".

    Raises:
        ValueError: On a margin that is negative or not finite, or a head to head without a scored dialogue.
    """
    if item.margin < 0 or not math.isfinite(item.margin):
        raise ValueError(f"metric '{item.name}': margin={item.margin} must be a finite number ≥ 0")
    if isinstance(item, HeadToHead):
        if not item.outcomes:
            raise ValueError(f"metric '{item.name}': no scored dialogue — was the head to head judged?")
        differing = [v for i, v in item.outcomes.items() if i not in item.same_replies]
        if differing and all(v == 0.5 for v in differing):
            return (f"no decisive dialogue: the judge tied all {len(differing)} dialogues of the head to head whose "
                    f"replies differ (W/L/T 0/0/{len(item.outcomes)})")
        return None
    ids = item.baseline.keys() & item.candidate.keys()
    if not ids:
        return (f"no dialogue is scored in both runs ({len(item.baseline)} baseline, {len(item.candidate)} "
                "candidate)")
    if item.of_outcomes and all(
            item.baseline[i] == 0.5 and item.candidate[i] == 0.5 for i in ids):
        return (f"no decisive dialogue: all {len(ids)} dialogues of both runs are ties (the two orders disagreed, "
                "or the judge said tie), so the judge never chose (a zero-width CI here is not evidence of equality)")
    return None


def _mean_of(values: dict[str, float], ids: set[str]) -> float | None:
    chosen = [values[i] for i in ids] if ids else list(values.values())
    return float(np.mean(chosen)) if chosen else None


def uninformative_verdict(item: PairedMetric | HeadToHead, reason: str, *, confidence: float) -> MetricVerdict:
    """The verdict of a metric without information: inconclusive, untested, its values where they exist."""
    if isinstance(item, HeadToHead):
        n = len(item.outcomes)
        return MetricVerdict(name=item.name, kind="head_to_head", baseline=None, candidate=None, delta=0.0,
                             ci_low=None, ci_high=None, confidence=confidence, margin=item.margin, p_regression=None,
                             p_pass=None, outcome="inconclusive", n=0, wins=0, losses=0, ties=n, reason=reason)
    ids = item.baseline.keys() & item.candidate.keys()
    base, cand = _mean_of(item.baseline, ids), _mean_of(item.candidate, ids)
    delta = cand - base if ids and base is not None and cand is not None else None
    return MetricVerdict(name=item.name, kind="paired", baseline=base, candidate=cand, delta=delta, ci_low=None,
                         ci_high=None, confidence=confidence, margin=item.margin, p_regression=None, p_pass=None,
                         outcome="inconclusive", n=len(ids), reason=reason)
