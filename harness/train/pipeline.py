"""``empathy pipeline``: the paper's two headline comparisons, end to end, in one command.

distil ``direct`` and the targeted strategy from the same teacher on the same training dialogues (none of them in
the evaluation set) → train both candidates (LoRA SFT → DPO → merge) → build reference sets for the base SLM and
the direct-distilled candidate → evaluate the targeted candidate vs each, with the rubric → ``DIR/results.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.core.io import write_json
from harness.core.records import RunResult
from harness.core.settings import JudgeSettings
from harness.evaluate.run import EvalConfig, run_eval
from harness.evaluate.runs import start_run
from harness.generate.replies import ModelSpec
from harness.llm.family import family_overlap_warning
from harness.train.config import TrainConfig
from harness.train.distill import DistillConfig, Rejected, StartFrom, run_distill
from harness.train.steps import run_train


@dataclass
class PipelineConfig:
    """What ``empathy pipeline`` needs."""

    base: str
    teacher: JudgeSettings
    judge: JudgeSettings
    strategy: str
    output: Path
    train: TrainConfig
    dataset: str = "bundled"
    eval_dataset: str = "bundled"
    limit: int | None = None
    rejected: Rejected = "auto"
    start_from: StartFrom = "auto"
    device: str = "auto"
    batch_size: int = 8
    seed: int = 1234


def run_pipeline(cfg: PipelineConfig) -> RunResult:
    """Distil → train → evaluate; returns the targeted candidate's results (also in ``output/results.json``)."""
    from harness.core.ui import console

    out = cfg.output
    if cfg.strategy == "direct":
        from harness.core.errors import HarnessError

        raise HarnessError("--strategy names the targeted strategy to compare with direct (e.g. all_three)")
    start_run(out)  # first: a crash in distillation or training must not leave the last run's results.json
    base = ModelSpec(cfg.base, device=cfg.device, batch_size=cfg.batch_size)
    reports = {}
    for strategy in ("direct", cfg.strategy):
        console.rule(f"distil: {strategy}")
        reports[strategy] = run_distill(DistillConfig(
            strategy=strategy, dataset=cfg.dataset, output=out / "distill" / strategy, teacher=cfg.teacher,
            rejected=cfg.rejected, start_from=cfg.start_from, base=base, eval_dataset=cfg.eval_dataset,
            eval_limit=cfg.limit, limit=cfg.limit,
        ))
    candidates = {}
    for strategy in ("direct", cfg.strategy):
        console.rule(f"train: {strategy}")
        data = out / "distill" / strategy
        run_train(cfg.base, data / "sft", data / "dpo", out / "train" / strategy, cfg.train,
                  provenance=reports[strategy])
        candidates[strategy] = out / "train" / strategy / "candidate"
    console.rule(f"evaluate: {cfg.strategy} vs base and vs direct")
    result = run_eval(EvalConfig(
        candidate=ModelSpec(str(candidates[cfg.strategy]), device=cfg.device, batch_size=cfg.batch_size),
        judge=cfg.judge,
        output=out,
        build_references={"base": base,
                          "direct": ModelSpec(str(candidates["direct"]), device=cfg.device, batch_size=cfg.batch_size)},
        refs_dir=out / "references",
        dataset=cfg.eval_dataset,
        limit=cfg.limit,
        seed=cfg.seed,
    ))
    summary = {
        "base": cfg.base,
        "teacher": cfg.teacher.model,
        "judge": cfg.judge.model,
        "strategy": cfg.strategy,
        "candidates": {k: str(v) for k, v in candidates.items()},
        "distill": {k: {x: r[x] for x in ("n_dialogues", "n_accepted", "rejected", "repaired", "overlap_guard")}
                    | {"sft": r["sft"]["n"], "dpo": r["dpo"]["n"]} for k, r in reports.items()},
        "warnings": family_overlap_warning(cfg.judge.model, {"teacher": cfg.teacher.model}),
        "results": str(out / "results.json"),
    }
    write_json(out / "pipeline.json", summary)
    for w in summary["warnings"]:
        console.print(f"[yellow]warning:[/] {w}")
    return result
