"""``empathy check``: two runs (or two checkpoints) → a paired, non-inferiority verdict with an exit code.

The runs must be comparable — same dataset and dialogue ids, same generation prompt and decoding, same judge
fingerprint, the same reference systems and reference files (content hash) — and healthy (parse rate, flip rate,
label mass, rubric parse rate, unscored share within their floors; a judge that passed its health check, i.e.
``health.judge_ok``, unless ``allow_unhealthy_judge``), and every gated win rate and head to head must have
dialogues scored in both runs; otherwise the comparison is *invalid* (exit 3) and the fields that differ are
named. Then every gated metric is compared dialogue by dialogue (:mod:`harness.gate.stats`), with Holm across
metrics.

A metric that carries no information — every verdict tied (the zero-width CI of a judge that never chose), a head
to head with no decisive dialogue, a rubric dimension with no reply scored in both runs — is *inconclusive* and
the gate exits 4 whatever ``--fail-on-inconclusive`` says: it is never a pass. (A metric that is merely
undecided, its CI straddling the margin, passes the gate unless ``--fail-on-inconclusive``.)

The head to head (the candidate judged against ``vs_baseline`` replies) is gated only when those replies were the
baseline run's own system (same model fingerprint); otherwise it says nothing about this baseline and is dropped
with a warning. Options a user gives (α, ``n_boot``, margins, seed) are checked up front: a bad one is a
:class:`~harness.core.errors.HarnessError` (exit 2), never a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.core.errors import HarnessError, did_you_mean
from harness.evaluate.runs import Run
from harness.gate.metrics import HeadToHead, PairedMetric, no_information
from harness.gate.models import EXIT, GateVerdict, HealthCheck, MetricVerdict
from harness.gate.power import min_n_boot
from harness.gate.stats import evaluate_gate
from harness.gate.style_control import style_exit, style_report
from harness.score.health import unhealthy_banner, unhealthy_refusal
from harness.score.stats import OUTCOME_SCORE

#: The comparison a checkpoint check adds: the new model judged against the old one's replies, both orders.
HEAD_TO_HEAD = "vs_baseline"
DEFAULT_MARGINS = {"win_rate": 0.02, "lc_win_rate": 0.02, "rubric": 0.10, "head_to_head": 0.02}


@dataclass(frozen=True)
class Floors:
    """Run-health floors: a run outside them cannot support a verdict."""

    min_parse_rate: float = 0.9
    max_flip_rate: float = 0.6
    min_label_mass: float = 0.5
    max_unscored_share: float = 0.1
    min_rubric_parse_rate: float = 0.9


@dataclass(frozen=True)
class CheckOptions:
    """What to gate and how strictly."""

    metrics: Sequence[str] = ()
    """Metric names or families (``win_rate``, ``rubric:cognitive`` …); empty: all."""
    margins: dict[str, float] = field(default_factory=dict)
    """Per metric name or family (``*``: every metric); falls back to :data:`DEFAULT_MARGINS`."""
    alpha: float = 0.05
    floors: Floors = Floors()
    n_boot: int = 2000
    seed: int = 0
    fail_on_inconclusive: bool = False
    fail_on_style_only_win: bool = False
    """Exit 5 when the gate passes but a win disappears under style control (:mod:`harness.gate.style_control`)."""
    allow_unhealthy_judge: bool = False
    """Gate runs whose judge failed its health check (tests and demos): every report then says so first."""


def _margin_text(key: str, value: float) -> str:
    return f"--margin {value:g}" if key == "*" else f"--margin {key}={value:g}"


def option_errors(options: CheckOptions) -> None:
    """Refuse options no run can make sense of (before any run is read or made).

    Raises:
        HarnessError: α outside (0, 0.5), ``n_boot`` too small for even one metric, a negative seed, a margin
            that is negative or not finite, or a margin for a family that does not exist.
    """
    if not 0 < options.alpha < 0.5:
        raise HarnessError(f"--alpha {options.alpha:g} must lie in (0, 0.5): it is the family-wise error rate of "
                           "each one-sided family (e.g. 0.05)")
    least = min_n_boot(1, options.alpha)
    if options.n_boot < least:
        raise HarnessError(f"--n-boot {options.n_boot} is too small: at --alpha {options.alpha:g} even one gated "
                           f"metric needs n_boot ≥ {least}, and m metrics about m/alpha (default 2000)")
    if options.seed < 0:
        raise HarnessError(f"--seed {options.seed} must be ≥ 0")
    for key, value in options.margins.items():
        if not (math.isfinite(value) and value >= 0):
            raise HarnessError(f"{_margin_text(key, value)}: a margin must be a finite number ≥ 0 (the drop that "
                               "is not yet a regression, e.g. 0.02 for a win rate, 0.1 for a rubric mean)")
        family = key.split(":", 1)[0]
        if key != "*" and family not in DEFAULT_MARGINS:
            raise HarnessError(f"{_margin_text(key, value)}: no such metric family: "
                               f"{did_you_mean(family, DEFAULT_MARGINS)}")


def compatibility_problems(baseline: Run, candidate: Run) -> list[str]:
    """Fields in which the runs differ so that a paired comparison means nothing (empty: comparable)."""
    b, c = baseline.result, candidate.result
    out = []

    def differ(what: str, x: object, y: object) -> None:
        if x != y:
            out.append(f"{what}: baseline {x!r}, candidate {y!r}")

    differ("dataset hash", b.provenance.dataset_hash, c.provenance.dataset_hash)
    differ("dialogue ids (hash)", b.provenance.dialogue_ids_hash, c.provenance.dialogue_ids_hash)
    differ("generation prompt hash", b.provenance.generation_prompt_hash, c.provenance.generation_prompt_hash)
    differ("decoding", b.provenance.decoding.model_dump(mode="json"), c.provenance.decoding.model_dump(mode="json"))
    differ("judge fingerprint", b.judge.fingerprint, c.judge.fingerprint)
    shared = [n for n in b.comparisons if n in c.comparisons]
    if not shared:
        out.append(f"comparisons: none in common (baseline {sorted(b.comparisons)}, candidate {sorted(c.comparisons)})")
    for name in shared:
        differ(f"{name} reference model", b.comparisons[name].reference_model.fingerprint,
               c.comparisons[name].reference_model.fingerprint)
        # the same model may have written other replies (rebuilt, another --limit, edited): pin the file's content
        ref = c.comparisons[name].reference
        b_sys, c_sys = b.provenance.systems.get(ref), c.provenance.systems.get(ref)
        differ(f"{ref} reference file hash", b_sys.reference_file_hash if b_sys else None,
               c_sys.reference_file_hash if c_sys else None)
    return out


def head_to_head_warning(baseline: Run, candidate: Run) -> str | None:
    """Why the candidate's head to head cannot be gated against this baseline run (None: it can, or there is none).

    The head to head judges the candidate against the replies of the system it was given as ``baseline``; only
    when that system is the baseline run's own (same model fingerprint) is it a comparison with this baseline.
    """
    comparison = candidate.result.comparisons.get(HEAD_TO_HEAD)
    if comparison is None:
        return None
    judged = comparison.reference_model.fingerprint
    system = baseline.result.provenance.systems.get("candidate")
    baseline_fp = system.model.fingerprint if system else None
    if judged == baseline_fp:
        return None
    return (f"head to head not gated: the candidate was judged against the replies of {judged}, not of the "
            f"baseline run's system {baseline_fp} — it says nothing about this baseline")


def health_checks(run: Run, role: str, floors: Floors) -> list[HealthCheck]:
    """The run's health against the floors (label mass only where the judge reports it).

    An order-free judge (reward mode) has no flip rate to check: its verdict cannot change with the order.
    """
    h = run.result.health
    checks = [("parse_rate", h.parse_rate, floors.min_parse_rate, True)]
    if not h.order_free:
        checks.append(("position_flip_rate", h.position_flip_rate, floors.max_flip_rate, False))
    if h.label_mass_mean is not None:
        checks.append(("label_mass", h.label_mass_mean, floors.min_label_mass, True))
    if h.rubric_parse_rate is not None:  # (None: the run scored no rubric)
        checks.append(("rubric_parse_rate", h.rubric_parse_rate, floors.min_rubric_parse_rate, True))
    for name, s in run.result.comparisons.items():
        total = s.n_scored + s.n_unscored
        checks.append((f"unscored_share:{name}", s.n_unscored / total if total else None, floors.max_unscored_share,
                       False))
    out = []
    for name, value, floor, minimum in checks:
        ok = value is not None and (value >= floor if minimum else value <= floor)
        out.append(HealthCheck(run=role, name=name, value=value, floor=floor, ok=ok))  # type: ignore[arg-type]
    return out


def _outcomes(run: Run, comparison: str) -> tuple[dict[str, float], dict[str, float]]:
    """Per-dialogue outcome (scored only) and length difference of one comparison."""
    values, lengths = {}, {}
    for j in run.judgments:
        if j.comparison == comparison and j.outcome is not None:
            values[j.dialogue_id] = OUTCOME_SCORE[j.outcome]
            lengths[j.dialogue_id] = float(j.candidate_words - j.reference_words)
    return values, lengths


def _rubric(run: Run, dim: str) -> dict[str, float]:
    return {s.dialogue_id: float(v) for s in run.rubric
            if s.system == "candidate" and (v := s.scores.get(dim)) is not None}


def _margin(name: str, margins: dict[str, float]) -> float:
    family = name.split(":", 1)[0]
    return margins.get(name, margins.get(family, margins.get("*", DEFAULT_MARGINS[family])))


def _matches(name: str, wanted: str) -> bool:
    return name == wanted or name.split(":", 1)[0] == wanted


def gated_metrics(baseline: Run, candidate: Run, options: CheckOptions) -> tuple[list[PairedMetric], HeadToHead | None]:
    """Every metric both runs have, and the head to head when it can be gated.

    The head to head is included when the candidate run holds one judged against the baseline run's own system
    (see :func:`head_to_head_warning`).

    Raises:
        HarnessError: ``--metrics`` or a ``--margin`` names a metric (or family) that neither run pair has.
    """
    metrics: list[PairedMetric] = []
    for name in (n for n in baseline.result.comparisons if n in candidate.result.comparisons and n != HEAD_TO_HEAD):
        (bv, bl), (cv, cl) = _outcomes(baseline, name), _outcomes(candidate, name)
        metrics.append(PairedMetric(f"win_rate:{name}", bv, cv, _margin(f"win_rate:{name}", options.margins),
                                    outcomes=True))
        metrics.append(PairedMetric(f"lc_win_rate:{name}", bv, cv, _margin(f"lc_win_rate:{name}", options.margins),
                                    statistic="lc", baseline_len=bl, candidate_len=cl))
    for dim in (d for d in baseline.result.rubric if d in candidate.result.rubric and any(
            s.n_scored + s.n_unscored for s in (baseline.result.rubric[d], candidate.result.rubric[d]))):
        # (a rubric neither run asked for — a one-output reward judge has none — is no metric at all)
        metrics.append(PairedMetric(f"rubric:{dim}", _rubric(baseline, dim), _rubric(candidate, dim),
                                    _margin(f"rubric:{dim}", options.margins)))
    has_h2h = HEAD_TO_HEAD in candidate.result.comparisons
    h2h = None
    if has_h2h and head_to_head_warning(baseline, candidate) is None:
        outcomes, _ = _outcomes(candidate, HEAD_TO_HEAD)
        old = {g.dialogue_id: g.response for g in baseline.generations}
        same = frozenset(g.dialogue_id for g in candidate.generations if old.get(g.dialogue_id) == g.response)
        h2h = HeadToHead("head_to_head", outcomes, _margin("head_to_head", options.margins), same_replies=same)
    # names the runs have (the head to head even when it cannot be gated against this baseline: asking for it,
    # or setting its margin, is not a typo)
    known = [m.name for m in metrics] + (["head_to_head"] if has_h2h else [])
    choices = sorted({*known, *(n.split(":", 1)[0] for n in known)})
    for wanted in options.metrics:
        if not any(_matches(n, wanted) for n in known):
            raise HarnessError(f"--metrics {wanted!r}: no such metric in both runs: {did_you_mean(wanted, choices)}")
    for key, value in options.margins.items():
        if key != "*" and not any(_matches(n, key) for n in known):
            raise HarnessError(f"{_margin_text(key, value)}: no such metric or family in both runs: "
                               f"{did_you_mean(key, choices)}")
    if options.metrics:
        def keep(n: str) -> bool:
            return any(_matches(n, w) for w in options.metrics)

        metrics = [m for m in metrics if keep(m.name)]
        h2h = h2h if h2h and keep(h2h.name) else None
    return metrics, h2h


def pairing_problems(metrics: Sequence[PairedMetric], h2h: HeadToHead | None) -> list[str]:
    """Gated win rates with nothing to compare: no dialogue scored in both runs (or no scored head to head).

    (A rubric dimension with no reply scored in both runs is not a problem of the comparison but a metric without
    information: inconclusive, see :func:`harness.gate.stats.no_information`.)
    """
    out = [f"{m.name}: {no_information(m)}" for m in metrics
           if m.of_outcomes and not m.baseline.keys() & m.candidate.keys()]
    if h2h is not None and not h2h.outcomes:
        out.append(f"{h2h.name}: no dialogue of the head to head is scored")
    return out


def decide(metrics: Sequence[MetricVerdict], fail_on_inconclusive: bool) -> tuple[str, int, list[str]]:
    """The gate's outcome and exit code from the metric verdicts, and warnings.

    Regression (exit 1) wins; then a metric without information (``reason``) makes the gate inconclusive with
    exit 4 always; then an undecided metric: inconclusive with exit 4 under ``fail_on_inconclusive``, else 0.
    """
    outcomes = {m.outcome for m in metrics}
    blind = [m for m in metrics if m.reason]
    warnings: list[str] = []  # (inconclusive metrics are explained, with units, by the report itself)
    if blind and "regression" not in outcomes:
        warnings.append(f"{len(blind)} gated metric(s) carry no information ({', '.join(m.name for m in blind)}; "
                        "each one's reason is above): the gate cannot pass — exit 4, with or without "
                        "--fail-on-inconclusive")
    elif not blind and "inconclusive" in outcomes and not fail_on_inconclusive:
        warnings.append("some metrics are inconclusive: the gate passes; use --fail-on-inconclusive to fail instead")
    if "regression" in outcomes:
        return "regression", EXIT["regression"], warnings
    if "inconclusive" in outcomes:
        failing = fail_on_inconclusive or bool(blind)
        return "inconclusive", EXIT["inconclusive"] if failing else EXIT["pass"], warnings
    return "pass", EXIT["pass"], warnings


def judge_health(baseline: Run, candidate: Run, allow: bool) -> tuple[list[str], str | None]:
    """(problems, banner) of the runs' judge health: refused without ``allow``, else named on the first line."""
    sick = [(role, run) for role, run in (("baseline", baseline), ("candidate", candidate))
            if not run.result.health.judge_ok]
    if not sick:
        return [], None
    if not allow:
        return [unhealthy_refusal(f"{role} run {run.path}", run.result.health.judge_problem)
                for role, run in sick], None
    problems = {run.result.health.judge_problem for _, run in sick}
    if len(sick) == 2 and len(problems) == 1:  # the same judge, the same findings: say them once
        return [], unhealthy_banner(f"both runs: {problems.pop()}")
    return [], unhealthy_banner("; ".join(f"{role} run: {run.result.health.judge_problem}" for role, run in sick))


def check_runs(baseline: Run, candidate: Run, options: CheckOptions) -> GateVerdict:
    """The verdict of ``candidate`` against ``baseline``.

    Raises:
        HarnessError: On options that cannot be used (see :func:`option_errors`, :func:`gated_metrics`), or an
            ``n_boot`` too small for the number of gated metrics.
    """
    option_errors(options)
    r = candidate.result

    def verdict(outcome: str, code: int, **kw: object) -> GateVerdict:
        return GateVerdict.model_validate({
            "outcome": outcome, "exit_code": code, "baseline": str(baseline.path), "candidate": str(candidate.path),
            "judge": r.judge.fingerprint, "n_dialogues": r.provenance.n_dialogues, "alpha": options.alpha,
            "n_boot": options.n_boot, "seed": options.seed, "banner": banner, **kw})

    problems, banner = judge_health(baseline, candidate, options.allow_unhealthy_judge)
    problems += compatibility_problems(baseline, candidate)
    health = health_checks(baseline, "baseline", options.floors) + health_checks(candidate, "candidate",
                                                                                  options.floors)
    problems += [f"{h.run} {h.name} {h.value if h.value is None else round(h.value, 4)} breaks the floor "
                 f"{h.floor:g}" for h in health if not h.ok]
    metrics, h2h = gated_metrics(baseline, candidate, options)
    h2h_warning = head_to_head_warning(baseline, candidate)
    early = [h2h_warning] if h2h_warning else []
    problems += pairing_problems(metrics, h2h)
    if not problems:
        if not metrics and h2h is None:
            why = ": the head to head is not gated (see the warnings)" if h2h_warning else ""
            problems.append(f"no metric left to gate with --metrics {' '.join(options.metrics)}{why}")
    style = style_report(baseline, candidate, seed=options.seed, n_boot=options.n_boot)
    if problems:
        return verdict("invalid", EXIT["invalid"], health=health, problems=problems, warnings=early, **style)
    m = len(metrics) + (h2h is not None)
    if options.n_boot < (least := min_n_boot(m, options.alpha)):
        raise HarnessError(f"--n-boot {options.n_boot} is too small for {m} gated metrics at --alpha "
                           f"{options.alpha:g}: Holm's smallest level α/{m} needs n_boot ≥ {least}")
    verdicts = evaluate_gate(metrics, h2h, alpha=options.alpha, n_boot=options.n_boot, seed=options.seed)
    outcome, code, warnings = decide(verdicts, options.fail_on_inconclusive)
    outcome, code, warnings = style_exit(style, outcome, code, warnings, options.fail_on_style_only_win)
    return verdict(outcome, code, metrics=verdicts, health=health, warnings=early + warnings, **style)
