"""``empathy eval``: generate (lm-eval, then free the model) → judge → statistics → a run folder.

The candidate and the judge never share memory: the candidate's replies are generated and its model freed
before the judge loads (and the judge loads only if some answer is not already cached). Every model, the judge and
each reference set is identified by its fingerprint before anything is generated.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__
from harness.core.errors import HarnessError
from harness.core.io import file_hash
from harness.core.prompts import load_generation_prompt
from harness.core.records import (
    Dialogue,
    Generation,
    Judgment,
    ModelIdentity,
    ReferenceSet,
    RubricScore,
    RunResult,
    SystemInfo,
)
from harness.core.settings import JudgeSettings
from harness.core.ui import console
from harness.core.validity import JudgeValidity, judge_validity_for
from harness.data.references import check_compatible, load_reference
from harness.data.selection import run_dialogues
from harness.evaluate.references import ensure_reference, now, spec_identity
from harness.evaluate.result import RunInputs, assemble_result
from harness.evaluate.runs import start_run, write_run
from harness.generate.replies import (
    ModelSpec,
    default_decoding,
    generate,
    generation_dtype,
    resolve_chat_template,
)
from harness.judge.judge import Judge, PairItem, RubricItem, open_judge
from harness.judge.probe import run_probe
from harness.judge.reward import RubricUnavailable
from harness.score.style import load_counter, style_rows

#: The system name of the evaluated model in judgments and rubric scores (references go by their names).
CANDIDATE = "candidate"


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
    demo: bool = False
    """``empathy demo``: the result says so (its numbers are noise)."""
    declared: SystemInfo | None = None
    """With a ``replies`` candidate: the system that wrote those replies (re-judging a submitted run keeps its
    model identity; the replies file's own hash is in the manifest)."""
    overwrite: bool = True
    """False (``empathy eval`` without ``--overwrite``): refuse an output folder holding another model's run."""
    judge_validity: Path | None = None
    """``--judge-validity``: a validity.json of this judge (default: a reward model's own training.json, if any)."""


def model_parameters(identity: ModelIdentity) -> int | None:
    """The candidate's parameter count from its safetensors headers on this disk; None when not known here.

    A local folder, or the cached snapshot of a Hub commit. Recorded in the manifest: a board never reads a path
    a run names.
    """
    from harness.core.hub import local_snapshot
    from harness.core.io import safetensors_parameters

    folder = Path(identity.name).expanduser() if identity.kind == "local" else (
        local_snapshot(identity.name, identity.revision) if identity.kind == "hub" else None)
    return safetensors_parameters(folder) if folder is not None and folder.is_dir() else None


def _judge_comparisons(judge: Judge, gens: Sequence[Generation], refs: dict[str, ReferenceSet],
                       dialogues: Sequence[Dialogue]) -> dict[str, list[Judgment]]:
    by_id = {g.dialogue_id: g for g in gens}
    return {
        f"vs_{name}": judge.judge_pairs([
            PairItem(dialogue=d, comparison=f"vs_{name}", candidate=CANDIDATE, reference=name,
                     candidate_response=by_id[d.id].response, reference_response=ref.generations[d.id].response)
            for d in dialogues
        ])
        for name, ref in refs.items()
    }


def _rubric(judge: Judge, gens: Sequence[Generation], refs: dict[str, ReferenceSet],
            dialogues: Sequence[Dialogue]) -> tuple[list[RubricScore], str | None]:
    """Rubric scores of every system, or none and why, for a judge that has no rubric (a one-output reward model)."""
    by_id = {g.dialogue_id: g for g in gens}
    items = [RubricItem(dialogue=d, system=CANDIDATE, response=by_id[d.id].response) for d in dialogues]
    for name, ref in refs.items():
        items += [RubricItem(dialogue=d, system=name, response=ref.generations[d.id].response) for d in dialogues]
    try:
        return judge.score_rubric(items), None
    except RubricUnavailable as exc:
        return [], f"rubric: not scored (no rubric score in this run) — {exc}"


def _file_references(cfg: EvalConfig, dialogues: Sequence[Dialogue], digest: str
                     ) -> tuple[dict[str, ReferenceSet], dict[str, SystemInfo], dict[str, Any]]:
    """The reference set files, checked against this run (cheap: done before the run folder is touched)."""
    if not cfg.references and not cfg.build_references:
        raise HarnessError(
            "no reference set: pass --reference base=FILE (build it with 'empathy refs build --model MODEL --name "
            "base --output FILE') or --base-model MODEL to build it on the fly"
        )
    twice = sorted(set(cfg.references) & set(cfg.build_references))
    if twice:
        raise HarnessError(f"reference {twice[0]!r} given twice (as a file and as a model); keep one")
    refs: dict[str, ReferenceSet] = {}
    infos: dict[str, SystemInfo] = {}
    notes: dict[str, Any] = {}
    prompt_hash, decoding = load_generation_prompt().hash, default_decoding()
    for name, path in cfg.references.items():
        ref = load_reference(path, name=name)
        check_compatible(ref, name=name, path=path, prompt_hash=prompt_hash, dataset_hash=digest,
                         decoding=decoding, dialogues=dialogues)
        if ref.manifest.model_identity is None:
            raise HarnessError(f"reference set {name!r} ({path}) records no model fingerprint (built by an older "
                               f"harness): its source cannot be checked — rebuild it with 'empathy refs build "
                               f"--model MODEL --name {name} --output {path}'")
        refs[name] = ref
        infos[name] = SystemInfo(model=ref.manifest.model_identity, backend=ref.manifest.backend,
                                 chat_template=ref.manifest.chat_template, reference_file=str(path),
                                 reference_file_hash=file_hash(Path(path)))
        notes[name] = {"path": str(path), "reused": True}
    return refs, infos, notes


def _build_references(cfg: EvalConfig, dialogues: Sequence[Dialogue], digest: str, refs: dict[str, ReferenceSet],
                      infos: dict[str, SystemInfo], notes: dict[str, Any]) -> None:
    """Reference sets built (or reused by fingerprint) from ``--base-model`` / ``--direct-model``, added in place."""
    for name, spec in cfg.build_references.items():
        ref, path, reused = ensure_reference(spec, name, dialogues, dataset=cfg.dataset, digest=digest,
                                             refs_dir=cfg.refs_dir, cache_dir=cfg.judge.fingerprint_dir())
        assert ref.manifest.model_identity is not None
        refs[name] = ref
        infos[name] = SystemInfo(model=ref.manifest.model_identity, backend=ref.manifest.backend,
                                 chat_template=ref.manifest.chat_template, reference_file=str(path),
                                 reference_file_hash=file_hash(path))
        notes[name] = {"path": str(path), "reused": reused}


def recorded_candidate(out: Path) -> dict[str, Any] | None:
    """The candidate identity the run in ``out`` records ({} when unreadable), or None when ``out`` holds no run."""
    manifest = out / "manifest.json"
    if not manifest.is_file() and not (out / "results.json").is_file():
        return None
    try:
        candidate = json.loads(manifest.read_text(encoding="utf-8"))["systems"]["candidate"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return candidate if isinstance(candidate, dict) else {}


def check_other_run(out: Path, *, fingerprint: str | None = None, model: str | None = None) -> None:
    """Refuse to write over the run of another model in ``out``; the same model's run is resumed (re-run).

    "The same" is the same fingerprint, or (``fingerprint`` None, for a model not built yet) the same model name.
    """
    recorded = recorded_candidate(out)
    if recorded is None or (fingerprint is not None and recorded.get("fingerprint") == fingerprint) or (
            fingerprint is None and model is not None and recorded.get("name") == model):
        return
    what = (f"model {recorded.get('name')} (fingerprint {recorded.get('fingerprint')})" if recorded
            else "model its unreadable manifest.json does not name")
    this = f"; this run's model: {model}" + (f" (fingerprint {fingerprint})" if fingerprint else "") if model else ""
    raise HarnessError(f"--output {out} holds the run of another {what}{this}: pass --overwrite to replace it, or "
                       "give another output folder")


@contextmanager
def run_folder(out: Path) -> Iterator[None]:
    """The run folder, prepared (:func:`start_run`) for the body.

    A folder made here is removed again if the body fails while it is still empty: a run that stops early leaves
    no empty folder behind.
    """
    made = not out.exists()
    start_run(out)
    try:
        yield
    except BaseException:
        if made and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def run_eval(cfg: EvalConfig) -> RunResult:
    """Run one evaluation and write the run folder (results.json last: its presence means the run completed).

    What can be checked cheaply (dialogues, identities, the judge, reference files, the output folder) is checked
    before the run folder is touched; a folder made for a run that then fails early is removed again.
    """
    t0 = time.perf_counter()
    dialogues, digest = run_dialogues(cfg.dataset, cfg.limit)
    candidate = spec_identity(cfg.candidate, cfg.judge.fingerprint_dir())
    if not cfg.overwrite:
        check_other_run(cfg.output, fingerprint=candidate[1].fingerprint, model=cfg.candidate.model)
    judge = open_judge(cfg.judge)
    try:
        fp = judge.fingerprint  # resolves the judge's identity (and probes a server) before any work
        validity = judge_validity_for(fp.fingerprint, fp.model.kind, fp.model.name, fp.model.fingerprint,
                                      cfg.judge_validity)
        references = _file_references(cfg, dialogues, digest)
        with run_folder(cfg.output):
            return _evaluate(cfg, judge, candidate, dialogues, digest, references, t0, validity)
    finally:
        judge.client.close()


def _evaluate(cfg: EvalConfig, judge: Judge, candidate: tuple[ModelSpec, ModelIdentity], dialogues: list[Dialogue],
              digest: str, references: tuple[dict[str, ReferenceSet], dict[str, SystemInfo], dict[str, Any]],
              t0: float, validity: tuple[JudgeValidity | None, str | None] = (None, None)) -> RunResult:
    """The three phases (references, generation, judging), then the run folder's files."""
    refs, infos, notes = references
    candidate_spec, candidate_id = candidate
    console.print(f"[bold]phase 1/3[/]: reference sets ({', '.join([*cfg.references, *cfg.build_references])})")
    _build_references(cfg, dialogues, digest, refs, infos, notes)
    t_gen = time.perf_counter()
    candidate_spec = resolve_chat_template(candidate_spec)
    console.print(f"[bold]phase 2/3[/]: generating {len(dialogues)} replies with {cfg.candidate.model}")
    decoding = default_decoding()
    gens = generate(candidate_spec, dialogues, dataset=cfg.dataset, decoding=decoding, system=CANDIDATE)
    t_judge = time.perf_counter()
    console.print(f"[bold]phase 3/3[/]: judging with {cfg.judge.model} ({judge.mode} mode)")
    judgments = _judge_comparisons(judge, gens, refs, dialogues)
    rubric_scores, rubric_note = _rubric(judge, gens, refs, dialogues)
    probe = run_probe(judge)  # can this judge tell replies apart at all? (cached: free on a re-run)
    judge_fp = judge.fingerprint
    inputs = RunInputs(
        front_end="empathy eval", dataset=cfg.dataset, dataset_hash=digest, dialogues=dialogues,
        candidate=SystemInfo(model=candidate_id, backend=candidate_spec.backend,
                             chat_template=candidate_spec.chat_template, dtype=generation_dtype(candidate_spec)),
        references=infos, decoding=decoding, judge=judge_fp, seed=cfg.seed,
    )
    if cfg.declared is not None:
        inputs = dataclasses.replace(inputs, candidate=cfg.declared)
    style = style_rows(load_counter(), dialogues, {CANDIDATE: {g.dialogue_id: g.response for g in gens},
                                                   **{n: {i: g.response for i, g in r.generations.items()}
                                                      for n, r in refs.items()}})
    result = assemble_result(cfg.declared.model.name if cfg.declared else cfg.candidate.model, judgments,
                             rubric_scores, gens, inputs, probe, style)
    extra = [n for n in (rubric_note, validity[1]) if n]
    result = result.model_copy(update={"warnings": [*result.warnings, *extra], "judge_validity": validity[0]})
    if cfg.demo:
        result = result.model_copy(update={"demo": True, "warnings": [
            "demo: these numbers come from random weights (or a 135M judge) and are noise — do not quote them",
            *result.warnings]})
    manifest = {
        "created_at": now(),
        "harness_version": __version__,
        "systems": {n: s.model.model_dump(mode="json") for n, s in result.provenance.systems.items()},
        "candidate": {"model": cfg.candidate.model, "identity": candidate_id.model_dump(),
                      "declared": cfg.declared.model_dump(mode="json") if cfg.declared else None,
                      "backend": candidate_spec.backend, "chat_template": candidate_spec.chat_template,
                      "parameters": None if cfg.declared else model_parameters(candidate_id)},
        "references": {n: {**notes[n], **refs[n].manifest.model_dump(mode="json")} for n in refs},
        "judge": {**judge_fp.model_dump(mode="json"), "cache": str(cfg.judge.cache_path()), **judge.cache.stats(),
                  "model_calls": judge.calls, "model_loaded": judge.calls > 0, **_backend_stats(judge)},
        "dataset": {"spec": cfg.dataset, "hash": digest, "n": len(dialogues), "ids": [d.id for d in dialogues]},
        "timings_s": {"references": round(t_gen - t0, 2), "generate": round(t_judge - t_gen, 2),
                      "judge": round(time.perf_counter() - t_judge, 2), "total": round(time.perf_counter() - t0, 2)},
        "software": software(),
    }
    write_run(cfg.output, result, gens, [j for js in judgments.values() for j in js], rubric_scores, manifest,
              probe, style)
    return result


def _backend_stats(judge: Judge) -> dict[str, Any]:
    stats_of = getattr(judge.backend, "stats", None)
    stats = stats_of() if callable(stats_of) else {}
    if not stats:
        return {}
    return {"compute" if judge.backend.name == "hf" else "http": stats}  # a local model, or one behind a server


def software() -> dict[str, str]:
    """Versions of Python and the libraries that shape the numbers."""
    import importlib.metadata as md

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("lm_eval", "transformers", "torch", "peft", "trl", "datasets"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out
