"""``empathy demo``: the whole evaluation offline, on tiny random models built in-process.

Four tiny models (base, direct-distilled, candidate, judge) are saved to DIR/models and loaded back with
``from_pretrained``; the base and direct reference sets are built, the candidate is generated, judged against
both in both orders and scored on the rubric. The numbers are noise (random weights): the demo shows the
machinery, not empathy. The judge's label-mass check is off, since a random judge never passes it.
"""

from __future__ import annotations

from pathlib import Path

from harness.core.records import RunResult
from harness.core.settings import JudgeSettings
from harness.core.ui import console
from harness.evaluate.run import EvalConfig, run_eval
from harness.evaluate.runs import start_run
from harness.generate.replies import ModelSpec
from harness.llm.tiny import build_tiny_model

DEMO_LIMIT = 24


def run_demo(output: Path, *, limit: int = DEMO_LIMIT, judge_mode: str = "logits", seed: int = 1234) -> RunResult:
    """Build the tiny models and run a full evaluation into ``output``."""
    start_run(output)  # before the models are built: a file as --output fails at once, an old result goes
    models = output / "models"
    console.print(f"[bold]demo[/]: building tiny random models in {models}")
    paths = {name: build_tiny_model(models / name, seed=i) for i, name in enumerate(("base", "direct", "candidate", "judge"))}
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
    )
    return run_eval(cfg)
