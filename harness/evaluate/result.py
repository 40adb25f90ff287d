"""From judgments to a typed :class:`~harness.core.records.RunResult` — the same code for both front ends."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness import __version__
from harness.core.io import strict_json
from harness.core.prompts import load_generation_prompt
from harness.core.records import (
    ComparisonStats,
    Decoding,
    Dialogue,
    DimensionStats,
    Generation,
    JudgeFingerprint,
    JudgeProbe,
    Judgment,
    Provenance,
    RubricScore,
    RunHealth,
    RunResult,
    SystemInfo,
)
from harness.core.style_record import StyleRow
from harness.data.selection import ids_hash
from harness.evaluate.references import now
from harness.llm.family import family_overlap_warning
from harness.score.health import UNHEALTHY, label_masses, mass_summary, order_free_judge, run_health
from harness.score.metrics import judgment_metrics, reply_metrics, rubric_metrics
from harness.score.stats import comparison_stats, rubric_stats
from harness.score.style import run_style


@dataclass(frozen=True)
class RunInputs:
    """What a run was made of: dataset, dialogues, systems, decoding, judge."""

    front_end: str
    dataset: str
    dataset_hash: str
    dialogues: Sequence[Dialogue]
    candidate: SystemInfo
    references: dict[str, SystemInfo]
    decoding: Decoding
    judge: JudgeFingerprint
    seed: int


def lm_eval_view(
    judgments: dict[str, list[Judgment]], rubric: Sequence[RubricScore], gens: Sequence[Generation],
    order_free: bool = False,
) -> dict[str, dict[str, float | str | None]]:
    """The same per-task metrics lm-eval reports for the empathy tasks (mean and its standard error).

    ``order_free``: the judge's verdicts cannot depend on the order, so ``position_flip`` is left out (n/a, not 0).
    """
    per_task: dict[str, dict[str, list[float]]] = {}
    for name, js in judgments.items():
        task = per_task.setdefault(f"empathy_winrate_{name}", {})
        for j in js:
            for k, v in judgment_metrics(j, order_free=order_free).items():
                task.setdefault(f"{k},judge", []).append(v)
    rub = per_task.setdefault("empathy_rubric", {})
    for s in rubric:
        for k, v in rubric_metrics(s).items():
            rub.setdefault(f"{k},judge", []).append(v)
    gen = per_task.setdefault("empathy_gen", {})
    for g in gens:
        for k, v in reply_metrics(g.response).items():
            gen.setdefault(f"{k},reply", []).append(v)
    out: dict[str, dict[str, float | str | None]] = {}
    for task_name, metrics in per_task.items():
        row: dict[str, float | str | None] = {"alias": task_name}
        for key, values in metrics.items():
            metric, filt = key.split(",", 1)
            n = len(values)
            mean = sum(values) / n
            var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else math.nan
            row[key] = mean
            row[f"{metric}_stderr,{filt}"] = math.sqrt(var / n) if n > 1 else "N/A"
        out[task_name] = row
    return out


def _comparison(name: str, js: Sequence[Judgment], references: dict[str, SystemInfo], seed: int,
                order_free: bool = False) -> ComparisonStats:
    ref = name.removeprefix("vs_")
    mean_mass, min_mass = mass_summary(label_masses(js))
    stats = strict_json(comparison_stats(js, seed=seed))
    if order_free:  # both orders got one verdict by construction: no flip was measured
        stats["position_flip_rate"] = None
    return ComparisonStats(**stats, label_mass_mean=mean_mass, label_mass_min=min_mass, reference=ref,
                           reference_model=references[ref].model)


def _dimensions(scores: Sequence[RubricScore], seed: int) -> dict[str, DimensionStats]:
    return {dim: DimensionStats(**strict_json(s)) for dim, s in rubric_stats(scores, seed=seed).items()}


def computed_parts(
    judgments: dict[str, list[Judgment]], rubric_scores: Sequence[RubricScore], gens: Sequence[Generation],
    references: dict[str, SystemInfo], min_label_mass: float, seed: int, probe: Sequence[JudgeProbe] = (),
    order_free: bool = False, style: Sequence[StyleRow] | None = None,
) -> dict[str, Any]:
    """Every number of a RunResult that follows from the verdicts — the loader recomputes these to check a run.

    ``probe``: the judge's sanity-probe verdicts (``probe.jsonl``), which decide ``health.judge_ok`` with the rest.
    ``order_free``: the judge is order-free (:func:`~harness.score.health.order_free_judge`): position bias and
    flip rates are None ("n/a: order-free judge"), never a measured 0. ``style``: the run's ``style.jsonl`` rows
    (None: the run has no style profile — schema 2), summarised into ``style``.
    """
    comparisons = {name: _comparison(name, js, references, seed, order_free) for name, js in judgments.items()}
    candidate_scores = [r for r in rubric_scores if r.system == "candidate"]
    reference_systems = sorted({r.system for r in rubric_scores} - {"candidate"})
    return {
        "comparisons": comparisons,
        "vs_base": comparisons.get("vs_base"),
        "vs_direct": comparisons.get("vs_direct"),
        "rubric": _dimensions(candidate_scores, seed),
        "rubric_references": {n: _dimensions([r for r in rubric_scores if r.system == n], seed)
                              for n in reference_systems},
        "health": run_health([j for js in judgments.values() for j in js], candidate_scores,
                             min_label_mass=min_label_mass, probe=probe, order_free=order_free),
        "results": strict_json(lm_eval_view(judgments, candidate_scores, gens, order_free)),
        **({} if style is None else {"style": run_style(style, list(judgments), seed=seed)}),
    }


def rubric_warnings(rubric: dict[str, DimensionStats], health: RunHealth) -> list[str]:
    """The rubric's own health: every score unscored is a warning of its own, a partly unscored rubric a note."""
    total = sum(d.n_scored + d.n_unscored for d in rubric.values())
    unscored = sum(d.n_unscored for d in rubric.values())
    if not total or not unscored:
        return []
    if unscored == total:
        return [f"rubric: all {total} scores are unscored (rubric parse rate 0%) — the judge's rubric answers could "
                "not be read, so the rubric says nothing about this model (see rubric.jsonl for each reason)"]
    return [f"rubric: {unscored} of {total} scores unscored (rubric parse rate {health.rubric_parse_rate:.1%}; see "
            "rubric.jsonl for each reason)"]


def _warnings(comparisons: dict[str, ComparisonStats], rubric: dict[str, DimensionStats], health: RunHealth,
              inputs: RunInputs) -> list[str]:
    # the judge's health first: when it fails, no number below it means anything
    out = [] if health.judge_ok else [f"{UNHEALTHY}: {health.judge_problem}"]
    for name, s in comparisons.items():
        if s.n_unscored:
            out.append(f"{name}: {s.n_unscored} dialogues unscored (see judgments.jsonl for each reason); parse rate "
                       f"{s.parse_rate:.1%}")
        if s.position_flip_rate is not None and s.position_flip_rate > 0.3:
            out.append(f"{name}: position-flip rate {s.position_flip_rate:.0%} — the judge often changes its mind "
                       "with the order")
    out += rubric_warnings(rubric, health)
    if inputs.judge.mode_note:
        out.append(inputs.judge.mode_note)
    others = {"candidate": inputs.candidate.model.name,
              **{f"reference {n!r}": r.model.name for n, r in inputs.references.items()}}
    return out + family_overlap_warning(inputs.judge.model.name, others)


def assemble_result(
    model: str, judgments: dict[str, list[Judgment]], rubric_scores: Sequence[RubricScore],
    gens: Sequence[Generation], inputs: RunInputs, probe: Sequence[JudgeProbe] = (),
    style: Sequence[StyleRow] | None = None,
) -> RunResult:
    """Every statistic of a run, typed, with the fingerprints of what produced it.

    ``probe``: the judge's sanity-probe verdicts; ``style``: the replies' style rows (:mod:`harness.score.style`).
    """
    parts = computed_parts(judgments, rubric_scores, gens, inputs.references, inputs.judge.min_label_mass,
                           inputs.seed, probe, order_free=order_free_judge(inputs.judge), style=style)
    prompt = load_generation_prompt()
    return RunResult(
        model=model,
        **parts,
        judge=inputs.judge,
        versions={t: 1.0 for t in ("empathy_gen", "empathy_rubric", *(f"empathy_winrate_{n}" for n in judgments))},
        warnings=_warnings(parts["comparisons"], parts["rubric"], parts["health"], inputs),
        provenance=Provenance(
            harness_version=__version__, front_end=inputs.front_end,  # type: ignore[arg-type]
            dataset=inputs.dataset, dataset_hash=inputs.dataset_hash, n_dialogues=len(inputs.dialogues),
            dialogue_ids_hash=ids_hash([d.id for d in inputs.dialogues]), generation_prompt_version=prompt.version,
            generation_prompt_hash=prompt.hash, decoding=inputs.decoding,
            systems={"candidate": inputs.candidate, **inputs.references}, seed=inputs.seed, time=now(),
        ),
    )
