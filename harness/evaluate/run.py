"""``empathy eval``: generate (lm-eval, then free the model) → judge → statistics → results files.

The candidate and the judge never share memory: the candidate's replies are generated and its model freed
before the judge loads (and the judge loads only if some answer is not already cached).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from harness import __version__
from harness.core.errors import HarnessError
from harness.core.io import write_json, write_jsonl
from harness.core.prompts import load_generation_prompt
from harness.core.records import (
    Decoding,
    Dialogue,
    Generation,
    Judgment,
    ReferenceManifest,
    ReferenceSet,
    RubricScore,
)
from harness.core.settings import JudgeSettings
from harness.core.ui import console
from harness.data.references import check_compatible, load_reference, save_reference
from harness.generate.replies import ModelSpec, generate, resolve_chat_template
from harness.judge.judge import Judge, PairItem, RubricItem, open_judge
from harness.lmeval.tasks import (
    default_decoding,
    gen_results,
    judgment_metrics,
    rubric_metrics,
    select_dialogues,
)
from harness.score.stats import comparison_stats, rubric_stats


@dataclass
class EvalConfig:
    """Everything one ``empathy eval`` run needs."""

    candidate: ModelSpec
    judge: JudgeSettings
    output: Path
    references: dict[str, Path] = field(default_factory=dict)
    """Reference set files by name (``--reference base=FILE``)."""
    build_references: dict[str, ModelSpec] = field(default_factory=dict)
    """Reference systems to build or reuse on the fly (``--base-model``, ``--direct-model``)."""
    refs_dir: Path = Path(".")
    dataset: str = "bundled"
    limit: int | None = None
    seed: int = 1234


def run_dialogues(dataset: str, limit: int | None) -> tuple[list[Dialogue], str]:
    """The run's dialogues (first ``limit`` of the stable order) and the dataset hash."""
    dialogues, digest = select_dialogues(dataset)
    if limit is not None:
        if limit < 1:
            raise HarnessError(f"--limit must be at least 1 (got {limit})")
        dialogues = dialogues[:limit]
    return dialogues, digest


def build_reference(
    spec: ModelSpec, name: str, dialogues: Sequence[Dialogue], *, dataset: str, digest: str
) -> ReferenceSet:
    """Generate a reference set with the same code path as candidates."""
    decoding = default_decoding()
    spec = resolve_chat_template(spec)
    gens = generate(spec, dialogues, dataset=dataset, decoding=decoding, system=name)
    manifest = ReferenceManifest(
        name=name,
        model=spec.model,
        model_revision=spec.revision,
        backend=spec.backend,
        decoding=decoding,
        prompt_hash=load_generation_prompt().hash,
        dataset_hash=digest,
        dataset=dataset,
        chat_template=bool(spec.chat_template),
        n=len(gens),
        created_at=_now(),
        harness_version=__version__,
    )
    return ReferenceSet(manifest=manifest, generations={g.dialogue_id: g for g in gens})


def reference_cache_path(refs_dir: Path, spec: ModelSpec, name: str, digest: str, decoding: Decoding) -> Path:
    """Where an on-the-fly reference set for ``spec`` is kept, keyed by everything that shapes its replies."""
    key = json.dumps(
        [spec.model, spec.revision, spec.backend, spec.chat_template, load_generation_prompt().hash, digest,
         decoding.model_dump()],
        sort_keys=True,
    )
    return refs_dir / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def ensure_reference(
    spec: ModelSpec, name: str, dialogues: Sequence[Dialogue], *, dataset: str, digest: str, refs_dir: Path
) -> tuple[ReferenceSet, Path, bool]:
    """Reuse a matching reference set from ``refs_dir`` or build (and keep) one; returns (set, path, reused)."""
    path = reference_cache_path(refs_dir, spec, name, digest, default_decoding())
    if path.is_file():
        ref = load_reference(path, name=name)
        if all(d.id in ref.generations for d in dialogues):
            return ref, path, True
    console.print(f"[bold]building reference set {name!r}[/] from {spec.model} ({len(dialogues)} dialogues)")
    ref = build_reference(spec, name, dialogues, dataset=dataset, digest=digest)
    save_reference(path, ref)
    return ref, path, False


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def lm_eval_view(
    judgments: dict[str, list[Judgment]], rubric: Sequence[RubricScore], gens: Sequence[Generation]
) -> dict[str, dict[str, Any]]:
    """The same per-task metrics lm-eval reports for the empathy tasks (mean and its standard error)."""
    per_task: dict[str, dict[str, list[float]]] = {}
    for name, js in judgments.items():
        task = per_task.setdefault(f"empathy_winrate_{name}", {})
        for j in js:
            for k, v in judgment_metrics(j).items():
                task.setdefault(f"{k},judge", []).append(v)
    rub = per_task.setdefault("empathy_rubric", {})
    for s in rubric:
        for k, v in rubric_metrics(s).items():
            rub.setdefault(f"{k},judge", []).append(v)
    gen = per_task.setdefault("empathy_gen", {})
    for g in gens:
        for k, v in gen_results({}, [g.response]).items():
            gen.setdefault(f"{k},reply", []).append(v)
    out: dict[str, dict[str, Any]] = {}
    for task_name, metrics in per_task.items():
        row: dict[str, Any] = {"alias": task_name}
        for key, values in metrics.items():
            metric, filt = key.split(",", 1)
            n = len(values)
            mean = sum(values) / n
            var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else math.nan
            row[key] = mean
            row[f"{metric}_stderr,{filt}"] = math.sqrt(var / n) if n > 1 else "N/A"
        out[task_name] = row
    return out


def _judge_comparisons(
    judge: Judge, candidate: str, gens: Sequence[Generation], refs: dict[str, ReferenceSet],
    dialogues: Sequence[Dialogue],
) -> dict[str, list[Judgment]]:
    by_id = {g.dialogue_id: g for g in gens}
    out = {}
    for name, ref in refs.items():
        items = [
            PairItem(
                dialogue=d,
                comparison=f"vs_{name}",
                candidate=candidate,
                reference=name,
                candidate_response=by_id[d.id].response,
                reference_response=ref.generations[d.id].response,
            )
            for d in dialogues
        ]
        out[f"vs_{name}"] = judge.judge_pairs(items)
    return out


def _rubric(
    judge: Judge, candidate: str, gens: Sequence[Generation], refs: dict[str, ReferenceSet],
    dialogues: Sequence[Dialogue],
) -> list[RubricScore]:
    items = [RubricItem(dialogue=d, system=candidate, response=g.response) for d, g in zip(dialogues, gens, strict=True)]
    for name, ref in refs.items():
        items += [RubricItem(dialogue=d, system=name, response=ref.generations[d.id].response) for d in dialogues]
    return judge.score_rubric(items)


def run_eval(cfg: EvalConfig) -> dict[str, Any]:
    """Run one evaluation and write results.json, judgments.jsonl, rubric.jsonl, generations.jsonl, manifest.json."""
    t0 = time.perf_counter()
    dialogues, digest = run_dialogues(cfg.dataset, cfg.limit)
    prompt_hash = load_generation_prompt().hash
    decoding = default_decoding()
    refs: dict[str, ReferenceSet] = {}
    ref_paths: dict[str, str] = {}
    reused: dict[str, bool] = {}
    for name, path in cfg.references.items():
        ref = load_reference(path, name=name)
        check_compatible(ref, name=name, path=path, prompt_hash=prompt_hash, dataset_hash=digest,
                         decoding=decoding, dialogues=dialogues)
        refs[name], ref_paths[name] = ref, str(path)
    for name, spec in cfg.build_references.items():
        if name in refs:
            raise HarnessError(f"reference {name!r} given twice (as a file and as a model); keep one")
        refs[name], path, reused[name] = ensure_reference(
            spec, name, dialogues, dataset=cfg.dataset, digest=digest, refs_dir=cfg.refs_dir
        )
        ref_paths[name] = str(path)
    if not refs:
        raise HarnessError(
            "no reference set: pass --reference base=FILE (build it with 'empathy refs build --model MODEL --name "
            "base --output FILE') or --base-model MODEL to build it on the fly"
        )

    judge = open_judge(cfg.judge)
    try:
        judge.resolve_mode()  # an HTTP judge in logits mode is probed now: an unreachable server fails fast
        t_gen = time.perf_counter()
        candidate = cfg.candidate.model
        candidate_spec = resolve_chat_template(cfg.candidate)
        console.print(f"[bold]phase 1/3[/]: generating {len(dialogues)} replies with {candidate}")
        gens = generate(candidate_spec, dialogues, dataset=cfg.dataset, decoding=decoding, system=candidate)

        t_judge = time.perf_counter()
        console.print(f"[bold]phase 2/3[/]: judging with {cfg.judge.model} ({judge.mode} mode)")
        judgments = _judge_comparisons(judge, candidate, gens, refs, dialogues)
        rubric_scores = _rubric(judge, candidate, gens, refs, dialogues)
    finally:
        judge.backend.close()
        judge.cache.close()

    t_stats = time.perf_counter()
    comparisons = {name: {**comparison_stats(js, seed=cfg.seed), "reference_model": refs[name[3:]].manifest.model}
                   for name, js in judgments.items()}
    rubric = {s: rubric_stats([r for r in rubric_scores if r.system == s], seed=cfg.seed)
              for s in [candidate, *refs]}
    result = {
        "schema_version": 1,
        "model": candidate,
        **comparisons,
        "rubric": rubric[candidate],
        "rubric_references": {name: rubric[name] for name in refs},
        "results": lm_eval_view(judgments, [r for r in rubric_scores if r.system == candidate], gens),
        "versions": {t: 1.0 for t in ("empathy_gen", "empathy_rubric", *(f"empathy_winrate_{n}" for n in judgments))},
        "configs": {"generation": {"prompt_version": load_generation_prompt().version, "prompt_hash": prompt_hash,
                                   "decoding": decoding.model_dump()}},
        "judge": judge.identity.model_dump(),
        "warnings": _warnings(comparisons) + _judge_warnings(judge, candidate,
                                                             {n: r.manifest.model for n, r in refs.items()}),
        "provenance": _provenance(cfg, digest, prompt_hash, judge, dialogues),
    }
    manifest = {
        "created_at": _now(),
        "harness_version": __version__,
        "candidate": {"model": candidate, "revision": cfg.candidate.revision, "backend": cfg.candidate.backend,
                      "chat_template": candidate_spec.chat_template},
        "references": {n: {"path": ref_paths[n], "reused": reused.get(n, True),
                           **refs[n].manifest.model_dump(mode="json")} for n in refs},
        "judge": {**judge.identity.model_dump(), "cache": str(cfg.judge.cache_path()), **judge.cache.stats(),
                  "model_calls": judge.calls, "model_loaded": judge.calls > 0, **_backend_stats(judge)},
        "dataset": {"spec": cfg.dataset, "hash": digest, "n": len(dialogues), "ids": [d.id for d in dialogues]},
        "timings_s": {"references": round(t_gen - t0, 2), "generate": round(t_judge - t_gen, 2),
                      "judge": round(t_stats - t_judge, 2), "total": round(time.perf_counter() - t0, 2)},
        "software": _software(),
    }
    out = cfg.output
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "generations.jsonl", gens)
    write_jsonl(out / "judgments.jsonl", [j for js in judgments.values() for j in js])
    write_jsonl(out / "rubric.jsonl", rubric_scores)
    write_json(out / "manifest.json", manifest)
    write_json(out / "results.json", result)  # last: its presence means the run completed
    return result


def _judge_warnings(judge: Judge, candidate: str, references: dict[str, str]) -> list[str]:
    from harness.llm.family import family_overlap_warning

    out = [judge.mode_note] if judge.mode_note else []
    others = {"candidate": candidate, **{f"reference {n!r}": m for n, m in references.items()}}
    return out + family_overlap_warning(judge.backend.model_id, others)


def _backend_stats(judge: Judge) -> dict[str, Any]:
    stats_of = getattr(judge.backend, "stats", None)
    stats = stats_of() if callable(stats_of) else {}
    return {"http": stats} if stats else {}


def _warnings(comparisons: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for name, s in comparisons.items():
        if s["n_unscored"]:
            out.append(f"{name}: {s['n_unscored']} dialogues unscored (judge reply unreadable); parse rate "
                       f"{s['parse_rate']:.1%}")
        flip = s["position_flip_rate"]
        if isinstance(flip, float) and not math.isnan(flip) and flip > 0.3:
            out.append(f"{name}: position-flip rate {flip:.0%} — the judge often changes its mind with the order")
    return out


def _provenance(cfg: EvalConfig, digest: str, prompt_hash: str, judge: Judge, dialogues: Sequence[Dialogue]) -> dict[str, Any]:
    p = load_generation_prompt()
    return {
        "harness_version": __version__,
        "model": cfg.candidate.model,
        "model_revision": cfg.candidate.revision,
        "dataset": cfg.dataset,
        "dataset_hash": digest,
        "n_dialogues": len(dialogues),
        "prompt_hashes": {"generation": prompt_hash, "pairwise": _config_hash(judge.pairwise),
                          "rubric": _config_hash(judge.rubric)},
        "judge_prompt_versions": {"pairwise": judge.pairwise.version, "rubric": judge.rubric.version},
        "generation_prompt_version": p.version,
        "seed": cfg.seed,
        "time": _now(),
    }


def _config_hash(config: BaseModel) -> str:
    return hashlib.sha256(config.model_dump_json().encode("utf-8")).hexdigest()[:16]


def _software() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("lm_eval", "transformers", "torch", "peft", "trl", "datasets"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out
