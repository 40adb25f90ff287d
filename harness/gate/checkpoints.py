"""``empathy check --baseline-model OLD --model NEW``: evaluate both, then judge NEW against OLD head to head.

The old checkpoint's run is kept in ``DIR/baseline`` and reused while its model, judge, data and references (the
files' content hashes, not their paths) are unchanged (so a CI cache of that folder and of the judge cache makes an unchanged checkpoint cost no judge call).
The new checkpoint is judged against every reference *and* against the old checkpoint's own replies, in both orders,
on the same dialogues — the most sensitive paired comparison.
"""

from __future__ import annotations

from pathlib import Path

from harness import __version__
from harness.core.errors import HarnessError
from harness.core.io import file_hash
from harness.core.prompts import load_generation_prompt
from harness.core.records import ReferenceManifest, ReferenceSet
from harness.core.settings import JudgeSettings
from harness.core.ui import console
from harness.data.references import save_reference
from harness.evaluate.references import now, spec_identity
from harness.evaluate.run import EvalConfig, run_eval
from harness.evaluate.runs import Run, load_run
from harness.gate.check import HEAD_TO_HEAD
from harness.generate.replies import ModelSpec
from harness.judge.judge import open_judge

BASELINE = HEAD_TO_HEAD.removeprefix("vs_")


def _reusable(folder: Path, spec: ModelSpec, judge: JudgeSettings, references: dict[str, Path], dataset: str,
              limit: int | None) -> Run | None:
    """The kept baseline run, if it was made by this model, judge, data and reference files (same content)."""
    if not (folder / "results.json").is_file():
        return None
    try:
        run = load_run(folder)
    except HarnessError:
        return None
    _, identity = spec_identity(spec, judge.fingerprint_dir())
    client = open_judge(judge)
    try:
        judge_fp = client.fingerprint.fingerprint
    finally:
        client.client.close()
    p = run.result.provenance
    # the references' content, not their paths: a file rebuilt in place holds other replies, and the same file
    # moved (another checkout, another cache folder) still holds the same ones
    if not all(Path(f).is_file() for f in references.values()):
        return None  # (the new run reports the missing file)
    kept = {n: s.reference_file_hash for n, s in p.systems.items() if n != "candidate"}
    same = (p.systems["candidate"].model.fingerprint == identity.fingerprint and run.result.judge.fingerprint == judge_fp
            and p.dataset == dataset and (limit is None or p.n_dialogues == limit)
            and kept == {n: file_hash(Path(f)) for n, f in references.items()})
    return run if same else None


def baseline_reference(run: Run, path: Path) -> Path:
    """The old checkpoint's replies as a reference set named ``baseline`` (what the head-to-head judges against)."""
    r = run.result
    info = r.provenance.systems["candidate"]
    manifest = ReferenceManifest(
        name=BASELINE, model=info.model.name, model_revision=info.model.revision, model_identity=info.model,
        backend=info.backend, decoding=r.provenance.decoding, prompt_hash=load_generation_prompt().hash,
        dataset_hash=r.provenance.dataset_hash, dataset=r.provenance.dataset, chat_template=bool(info.chat_template),
        n=len(run.generations), created_at=now(), harness_version=__version__)
    gens = {g.dialogue_id: g.model_copy(update={"system": BASELINE}) for g in run.generations}
    save_reference(path, ReferenceSet(manifest=manifest, generations=gens))
    return path


def run_checkpoints(*, baseline: ModelSpec, candidate: ModelSpec, references: dict[str, Path], judge: JudgeSettings,
                    output: Path, dataset: str = "bundled", limit: int | None = None, seed: int = 1234,
                    refs_dir: Path | None = None) -> tuple[Run, Run]:
    """Evaluate (or reuse) the old checkpoint, evaluate the new one with the head-to-head; both runs."""
    if not references:
        raise HarnessError("a checkpoint check needs at least one reference: --reference base=FILE")

    def config(spec: ModelSpec, out: Path, refs: dict[str, Path]) -> EvalConfig:
        return EvalConfig(candidate=spec, judge=judge, output=out, references=refs, dataset=dataset, limit=limit,
                          seed=seed, refs_dir=refs_dir or output)

    old = _reusable(output / "baseline", baseline, judge, references, dataset, limit)
    if old is None:
        console.rule(f"baseline: {baseline.model}")
        run_eval(config(baseline, output / "baseline", dict(references)))
        old = load_run(output / "baseline")
    else:
        console.print(f"baseline: reusing {output / 'baseline'} (same model, judge, data and references)")
    head_to_head = baseline_reference(old, output / "baseline-replies.json")
    console.rule(f"candidate: {candidate.model}")
    run_eval(config(candidate, output / "candidate", {**references, BASELINE: head_to_head}))
    return old, load_run(output / "candidate")
