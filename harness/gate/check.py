"""``empathy check``: two runs (or two checkpoints) → a paired, non-inferiority verdict with an exit code.

The runs must be comparable — same dataset and dialogue ids, same generation prompt and decoding, same judge
fingerprint, the same reference systems — and healthy (parse rate, flip rate, label mass, unscored share within
their floors); otherwise the comparison is *invalid* (exit 3) and the fields that differ are named. Then every
gated metric is compared dialogue by dialogue (:mod:`harness.gate.stats`), with Holm across metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.core.errors import HarnessError, did_you_mean
from harness.evaluate.runs import Run
from harness.gate.models import EXIT, GateVerdict, HealthCheck, MetricVerdict
from harness.gate.stats import HeadToHead, PairedMetric, evaluate_gate
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


@dataclass(frozen=True)
class CheckOptions:
    """What to gate and how strictly."""

    metrics: Sequence[str] = ()
    """Metric names or families (``win_rate``, ``rubric:cognitive`` …); empty: all."""
    margins: dict[str, float] = field(default_factory=dict)
    """Per metric name or family; falls back to :data:`DEFAULT_MARGINS`."""
    alpha: float = 0.05
    floors: Floors = Floors()
    n_boot: int = 2000
    seed: int = 0
    fail_on_inconclusive: bool = False


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
    return out


def health_checks(run: Run, role: str, floors: Floors) -> list[HealthCheck]:
    """The run's health against the floors (label mass only where the judge reports it)."""
    h = run.result.health
    checks = [("parse_rate", h.parse_rate, floors.min_parse_rate, True),
              ("position_flip_rate", h.position_flip_rate, floors.max_flip_rate, False)]
    if h.label_mass_mean is not None:
        checks.append(("label_mass", h.label_mass_mean, floors.min_label_mass, True))
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


def gated_metrics(baseline: Run, candidate: Run, options: CheckOptions) -> tuple[list[PairedMetric], HeadToHead | None]:
    """Every metric both runs have (and the head-to-head comparison when the candidate run holds one)."""
    metrics: list[PairedMetric] = []
    for name in (n for n in baseline.result.comparisons if n in candidate.result.comparisons and n != HEAD_TO_HEAD):
        (bv, bl), (cv, cl) = _outcomes(baseline, name), _outcomes(candidate, name)
        metrics.append(PairedMetric(f"win_rate:{name}", bv, cv, _margin(f"win_rate:{name}", options.margins)))
        metrics.append(PairedMetric(f"lc_win_rate:{name}", bv, cv, _margin(f"lc_win_rate:{name}", options.margins),
                                    statistic="lc", baseline_len=bl, candidate_len=cl))
    for dim in (d for d in baseline.result.rubric if d in candidate.result.rubric):
        metrics.append(PairedMetric(f"rubric:{dim}", _rubric(baseline, dim), _rubric(candidate, dim),
                                    _margin(f"rubric:{dim}", options.margins)))
    h2h = None
    if HEAD_TO_HEAD in candidate.result.comparisons:
        outcomes, _ = _outcomes(candidate, HEAD_TO_HEAD)
        h2h = HeadToHead("head_to_head", outcomes, _margin("head_to_head", options.margins))
    known = [m.name for m in metrics] + (["head_to_head"] if h2h else [])
    for wanted in options.metrics:
        if not any(n == wanted or n.split(":", 1)[0] == wanted for n in known):
            raise HarnessError(f"--metrics {wanted!r}: no such metric in both runs: {did_you_mean(wanted, known)}")
    if options.metrics:
        def keep(n: str) -> bool:
            return any(n == w or n.split(":", 1)[0] == w for w in options.metrics)

        metrics = [m for m in metrics if keep(m.name)]
        h2h = h2h if h2h and keep(h2h.name) else None
    return metrics, h2h


def decide(metrics: Sequence[MetricVerdict], fail_on_inconclusive: bool) -> tuple[str, int, list[str]]:
    """The gate's outcome and exit code from the metric verdicts, and warnings."""
    outcomes = {m.outcome for m in metrics}
    warnings: list[str] = []  # (inconclusive metrics are explained, with units, by the report itself)
    if "inconclusive" in outcomes and not fail_on_inconclusive:
        warnings.append("some metrics are inconclusive: the gate passes; use --fail-on-inconclusive to fail instead")
    if "regression" in outcomes:
        return "regression", EXIT["regression"], warnings
    if "inconclusive" in outcomes:
        return "inconclusive", EXIT["inconclusive"] if fail_on_inconclusive else EXIT["pass"], warnings
    return "pass", EXIT["pass"], warnings


def check_runs(baseline: Run, candidate: Run, options: CheckOptions) -> GateVerdict:
    """The verdict of ``candidate`` against ``baseline``."""
    r = candidate.result

    def verdict(outcome: str, code: int, **kw: object) -> GateVerdict:
        return GateVerdict.model_validate({
            "outcome": outcome, "exit_code": code, "baseline": str(baseline.path), "candidate": str(candidate.path),
            "judge": r.judge.fingerprint, "n_dialogues": r.provenance.n_dialogues, "alpha": options.alpha,
            "n_boot": options.n_boot, "seed": options.seed, **kw})

    problems = compatibility_problems(baseline, candidate)
    health = health_checks(baseline, "baseline", options.floors) + health_checks(candidate, "candidate",
                                                                                  options.floors)
    problems += [f"{h.run} {h.name} {h.value if h.value is None else round(h.value, 4)} breaks the floor "
                 f"{h.floor:g}" for h in health if not h.ok]
    if problems:
        return verdict("invalid", EXIT["invalid"], health=health, problems=problems)
    metrics, h2h = gated_metrics(baseline, candidate, options)
    verdicts = evaluate_gate(metrics, h2h, alpha=options.alpha, n_boot=options.n_boot, seed=options.seed)
    outcome, code, warnings = decide(verdicts, options.fail_on_inconclusive)
    return verdict(outcome, code, metrics=verdicts, health=health, warnings=warnings)
