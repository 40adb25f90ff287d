"""Judge health of a run: can the judge tell replies apart, or is it answering by position or not at all?"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from harness.core.errors import HarnessError
from harness.core.records import JudgeFingerprint, JudgeProbe, Judgment, RubricScore, RunHealth
from harness.score.stats import mean_or_nan, position_flip

#: Below this share of probe orders won by the caring reply, the judge fails the sanity probe.
MIN_PROBE_ACCURACY = 0.75
#: At or above this |position bias|, the judge answers by position rather than by content.
MAX_POSITION_BIAS = 0.5
#: At or above this share of read verdicts on the tie label, the judge is not choosing at all.
MAX_TIE_LABEL_RATE = 0.9
#: Above this share of dialogues whose verdict changed with the order, the judge answers by order, not content.
MAX_FLIP_RATE = 0.6
#: The one-line warning every front end shows for an unhealthy judge (followed by the problem).
UNHEALTHY = "this judge cannot tell replies apart"
#: The opt-out every consumer of runs (gate, board, submission) takes for a judge that failed its health check.
ALLOW_FLAG = "--allow-unhealthy-judge"
#: What position bias and flip rate read for a judge that scores each reply alone (reward mode): not measured.
ORDER_FREE_NOTE = "n/a: order-free judge"
#: Judge modes whose verdict cannot depend on the order the replies are shown in.
ORDER_FREE_MODES = frozenset({"reward"})


def order_free_judge(judge: JudgeFingerprint) -> bool:
    """Whether the judge's verdicts are order-free by construction (its position bias is n/a, never a measured 0)."""
    return judge.mode in ORDER_FREE_MODES


def unhealthy_refusal(what: str, problem: str | None) -> str:
    """The error of a consumer that refuses a run (``what``) whose judge failed its health check."""
    return (f"{what}: {UNHEALTHY} ({problem or 'failed its health check'}) — its numbers are refused; fix the judge "
            f"(a larger model, --judge-mode, the probe in `empathy validate-judge`), or pass {ALLOW_FLAG} to use them "
            "anyway (tests and demos only: every report then says so on its first line)")


def health_rule(problem: str | None, *, allow: bool, what: str) -> str | None:
    """The one rule for a judge's health, where a run (or a judge) is about to be used.

    Args:
        problem: Why the judge cannot tell replies apart (``RunHealth.judge_problem``, or a probe's finding);
            None for a healthy judge.
        allow: The user (or the board's protocol) opted in with :data:`ALLOW_FLAG`.
        what: What is refused, for the error.

    Returns:
        None for a healthy judge; with the opt-out, the banner every report then starts with.

    Raises:
        HarnessError: an unhealthy judge without the opt-out (:func:`unhealthy_refusal`).
    """
    if problem is None:
        return None
    if not allow:
        raise HarnessError(unhealthy_refusal(what, problem))
    return unhealthy_banner(problem)


def unhealthy_banner(problem: str | None) -> str:
    """The first line of every report made with :data:`ALLOW_FLAG` over a judge that failed its health check."""
    return (f"UNHEALTHY JUDGE ({ALLOW_FLAG}): {UNHEALTHY} — {problem or 'it failed its health check'}; "
            "no number below measures empathy")


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


def judge_problem(*, probe_accuracy: float | None, position_bias: float | None, tie_rate: float | None,
                  label_mass: float | None = None, min_label_mass: float = 0.0,
                  flip_rate: float | None = None) -> str | None:
    """Why the judge cannot tell replies apart (every failed check, '; '-joined), or None when it can.

    The checks: the sanity probe, position bias, the tie-label share, the mean label mass (logits mode, against
    the judge's own ``min_label_mass``) and the position-flip rate (:data:`MAX_FLIP_RATE`). A check whose number is
    None (not measured — e.g. the position checks of an order-free judge) passes.
    """
    out = []
    if probe_accuracy is not None and probe_accuracy < MIN_PROBE_ACCURACY:
        out.append(f"it preferred the caring reply in {probe_accuracy:.0%} of the sanity probe's orders (needs "
                   f"{MIN_PROBE_ACCURACY:.0%})")
    if position_bias is not None and abs(position_bias) >= MAX_POSITION_BIAS:
        which = "first" if position_bias > 0 else "second"
        out.append(f"position bias {position_bias:+.2f}: it mostly picks the {which}-shown reply")
    if tie_rate is not None and tie_rate >= MAX_TIE_LABEL_RATE:
        out.append(f"{tie_rate:.0%} of its verdicts are the tie label")
    if label_mass is not None and label_mass < min_label_mass:
        out.append(f"mean label mass {label_mass:.2f} is below its floor {min_label_mass:g}: it was mostly not "
                   "answering with a label")
    if flip_rate is not None and flip_rate > MAX_FLIP_RATE:
        out.append(f"its verdict changed with the order in {flip_rate:.0%} of dialogues (ceiling "
                   f"{MAX_FLIP_RATE:.0%})")
    return "; ".join(out) or None


def run_health(judgments: Sequence[Judgment], rubric: Sequence[RubricScore], *, min_label_mass: float,
               probe: Sequence[JudgeProbe] = (), order_free: bool = False) -> RunHealth:
    """Parse rate, tie rate, flip rate, position bias and label mass over every pairwise verdict of the run.

    Position bias and the tie-label rate come from the run's own verdicts, the probe accuracy from ``probe``
    only (its pairs are not the run's dialogues); together they decide ``judge_ok``. ``order_free``
    (:func:`order_free_judge`): both orders got one verdict by construction, so position bias and flip rate are
    None with ``order_free`` set (:data:`ORDER_FREE_NOTE`) — not a measured 0 — and no position check applies.
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
    bias = 2 * mean_or_nan(first_wins) - 1 if first_wins and not order_free else None
    accuracy = probe_accuracy(probe)
    flip_rate = mean_or_nan([float(f) for f in flips]) if flips and not order_free else None
    problem = judge_problem(probe_accuracy=accuracy, position_bias=bias, tie_rate=tie_rate, label_mass=mean_mass,
                            min_label_mass=min_label_mass, flip_rate=flip_rate)
    return RunHealth(
        n_verdicts=len(verdicts),
        parse_rate=len(read) / len(verdicts) if verdicts else None,
        tie_rate=tie_rate,
        position_flip_rate=flip_rate,
        position_bias=bias,
        order_free=order_free,
        label_mass_mean=mean_mass,
        label_mass_min=min_mass,
        n_low_label_mass=sum(m < min_label_mass for m in masses),
        rubric_parse_rate=sum(s is not None for s in dims) / len(dims) if dims else None,
        probe_accuracy=accuracy,
        probe_n=len(probe),
        judge_ok=problem is None,
        judge_problem=problem,
    )
