"""``empathy pipeline``: the paper's two headline comparisons, end to end, in one command.

distil ``direct`` and the targeted strategy from the same teacher on the same training dialogues (none of them in
the evaluation set) → train both candidates (LoRA SFT → DPO → merge) → build reference sets for the base SLM and
the direct-distilled candidate → evaluate the targeted candidate vs each, with the rubric → ``DIR/results.json``.

With ``onpolicy`` a third candidate is trained from the targeted strategy's SFT policy (the same SFT step) with an
on-policy round (:mod:`harness.train.onpolicy`) and evaluated vs base, direct and the targeted candidate →
``DIR/onpolicy/results.json``; ``DIR/pipeline.json`` holds both.
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
    onpolicy: bool = False
    onpolicy_judge: JudgeSettings | None = None
    """The on-policy round's judge; None: the evaluation judge (its win rates for that candidate are then optimistic)."""


#: Warned when one judge both ranks the on-policy pairs and evaluates the candidate trained on them.
SAME_JUDGE = ("the on-policy pairs were ranked by the evaluation judge: the on-policy candidate was trained towards "
              "this judge's preferences, so its win rates are optimistic; rank them with another judge "
              "(--onpolicy-judge)")


def run_pipeline(cfg: PipelineConfig) -> dict[str, RunResult]:
    """Distil → train → evaluate; the results of ``targeted`` (``output/results.json``) and ``onpolicy``."""
    from harness.core.ui import console
    from harness.train.onpolicy import preflight, run_onpolicy

    out = cfg.output
    if cfg.strategy == "direct":
        from harness.core.errors import HarnessError

        raise HarnessError("--strategy names the targeted strategy to compare with direct (e.g. all_three)")
    ranker = cfg.onpolicy_judge or cfg.judge
    # the same judge model (whatever its settings) ranking the pairs and judging the result; checked first, so a
    # judge that does not load leaves the last results where they are
    same_judge = False
    if cfg.onpolicy:  # (errors name the options the user gave; the evaluation judge as ranker is checked once)
        ranker_model = preflight(None, ranker, role="onpolicy_judge" if cfg.onpolicy_judge else "judge").model
        same_judge = cfg.onpolicy_judge is None or (
            ranker_model.fingerprint == preflight(None, cfg.judge, role="judge").model.fingerprint)
    if same_judge:
        console.print(f"[yellow]warning:[/] {SAME_JUDGE}")
    start_run(out)  # then: a crash in distillation or training must not leave the last run's results.json
    if cfg.onpolicy:
        start_run(out / "onpolicy")
    else:  # a previous pipeline's on-policy results would sit beside results they were not compared with
        (out / "onpolicy" / "results.json").unlink(missing_ok=True)
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
    if cfg.onpolicy:
        console.rule(f"train: {cfg.strategy} + on-policy round")
        onpolicy = run_onpolicy(cfg.base, out / "distill" / cfg.strategy / "sft", out / "train" / cfg.strategy,
                                cfg.train, ranker, provenance=reports[cfg.strategy])
        candidates["onpolicy"] = out / "train" / cfg.strategy / "onpolicy" / "candidate"

    def spec(name: str) -> ModelSpec:
        return ModelSpec(str(candidates[name]), device=cfg.device, batch_size=cfg.batch_size)

    def evaluate(name: str, output: Path, references: dict[str, ModelSpec]) -> RunResult:
        return run_eval(EvalConfig(candidate=spec(name), judge=cfg.judge, output=output, build_references=references,
                                   refs_dir=out / "references", dataset=cfg.eval_dataset, limit=cfg.limit,
                                   seed=cfg.seed))

    console.rule(f"evaluate: {cfg.strategy} vs base and vs direct")
    results = {"targeted": evaluate(cfg.strategy, out, {"base": base, "direct": spec("direct")})}
    if cfg.onpolicy:
        console.rule(f"evaluate: {cfg.strategy} + on-policy round vs base, direct and {cfg.strategy}")
        results["onpolicy"] = evaluate("onpolicy", out / "onpolicy",
                                       {"base": base, "direct": spec("direct"), "targeted": spec(cfg.strategy)})
    summary = {
        "base": cfg.base,
        "teacher": cfg.teacher.model,
        "judge": cfg.judge.model,
        "strategy": cfg.strategy,
        "candidates": {k: str(v) for k, v in candidates.items()},
        "distill": {k: {x: r[x] for x in ("n_dialogues", "n_accepted", "rejected", "repaired", "overlap_guard")}
                    | {"sft": r["sft"]["n"], "dpo": r["dpo"]["n"]} for k, r in reports.items()},
        "warnings": family_overlap_warning(cfg.judge.model, {"teacher": cfg.teacher.model})
                    + ([SAME_JUDGE] if same_judge else []),
        "results": str(out / "results.json"),
    }
    if cfg.onpolicy:
        record = onpolicy["steps"]["onpolicy"]  # the ranking step's record
        summary["onpolicy"] = {"judge": ranker.model, "judge_fingerprint": record["judge"]["fingerprint"],
                               "same_judge_as_evaluation": same_judge,
                               **{k: record[k] for k in ("decoding", "ranking", "dialogues", "pairs", "dropped",
                                                         "replies_left_out", "mean_words")},
                               "results": str(out / "onpolicy" / "results.json")}
    write_json(out / "pipeline.json", summary)
    for w in summary["warnings"]:
        console.print(f"[yellow]warning:[/] {w}")
    return results
