"""Per-sample numbers, as lm-eval averages them (``process_results``): one definition for both front ends."""

from __future__ import annotations

from harness.core.prompts import DIMENSIONS
from harness.core.records import Judgment, RubricScore
from harness.score.stats import OUTCOME_SCORE, position_flip


def reply_metrics(reply: str) -> dict[str, float]:
    """Numbers of one generated reply: its length in words and whether it is empty."""
    return {"words": float(len(reply.split())), "empty": float(not reply.strip())}


def judgment_metrics(judgment: Judgment, *, order_free: bool = False) -> dict[str, float]:
    """The numbers one pairwise judgment contributes (unscored ones omit win_rate and tie).

    ``order_free``: the judge's verdicts cannot depend on the order, so ``position_flip`` is omitted (n/a), never 0.
    """
    out: dict[str, float] = {"scored": float(judgment.outcome is not None)}
    if judgment.outcome is not None:
        out["win_rate"] = OUTCOME_SCORE[judgment.outcome]
        out["tie"] = float(judgment.outcome == "tie")
        if not order_free:
            out["position_flip"] = float(bool(position_flip(judgment)))
    probs = [v.p_candidate for v in judgment.verdicts]
    if probs and all(p is not None for p in probs):
        out["preference"] = sum(p for p in probs if p is not None) / len(probs)
    return out


def rubric_metrics(score: RubricScore) -> dict[str, float]:
    """The numbers one rubric score contributes (unscored dimensions are omitted)."""
    return {dim: float(v) for dim in DIMENSIONS if (v := score.scores.get(dim)) is not None}
