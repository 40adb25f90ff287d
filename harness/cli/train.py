"""``empathy distill``, ``empathy train`` and ``empathy pipeline``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.cli.options import Handler, add_judge_options, cache_dir, judge_settings, writable_folder
from harness.core.errors import HarnessError, did_you_mean
from harness.train.distill import STRATEGIES, DistillConfig, run_distill

if TYPE_CHECKING:
    from rich.table import Table

    from harness.cli.options import Subparsers


def add_commands(sub: Subparsers) -> dict[str, Handler]:
    """Add ``distill``, ``train`` and ``pipeline``; returns their handlers."""
    _add_distill(sub)
    _add_train(sub)
    _add_pipeline(sub)
    return {"distill": cmd_distill, "train": cmd_train, "pipeline": cmd_pipeline}


def _add_distill(sub: Subparsers) -> None:
    di = sub.add_parser("distill", help="teacher replies with a strategy → cleaned SFT and DPO datasets",
                        description="Distil empathetic replies from a teacher with one of the paper's strategies, "
                                    "clean and check them, refuse evaluation dialogues, and write DIR/sft/train.jsonl, "
                                    "DIR/dpo/train.jsonl, DIR/records.jsonl and DIR/report.json.")
    di.add_argument("--strategy", required=True, help=f"one of: {', '.join(STRATEGIES)}")
    di.add_argument("--dataset", default="bundled",
                    help="training dialogues: bundled | ed:train | welivita:FILE.csv[:paper_train] | FILE.jsonl")
    di.add_argument("--limit", type=int, default=None, help="first N training dialogues (after the overlap guard)")
    di.add_argument("--replies-from", default=None,
                    help="direct only: take the replies of this Welivita & Pu column (e.g. chatgpt_empathy) — no teacher")
    di.add_argument("--start-from", default="auto", choices=("auto", "dataset", "teacher"),
                    help="reply the improvement strategies start from: the dataset's, the teacher's direct one, or "
                         "auto (the dataset's where there is one)")
    di.add_argument("--rejected", default="auto", choices=("auto", "original", "base"),
                    help="DPO rejected reply: original (before improvement), base (the base SLM's own), auto")
    di.add_argument("--base-model", "--base", dest="base", default=None,
                    help="the base SLM (for --rejected base/auto); --base is an alias")
    di.add_argument("--eval-dataset", default="bundled", help="the evaluation set whose dialogues are refused")
    di.add_argument("--eval-limit", type=int, default=None, help="only the first N evaluation dialogues are refused")
    di.add_argument("--teacher-prompts", default=None, help="teacher prompt set YAML (default prompts/teacher/default.yaml)")
    add_judge_options(di, "teacher", default="")
    di.add_argument("--output", required=True, help="output folder")


def _add_train(sub: Subparsers) -> None:
    tr = sub.add_parser("train", help="LoRA SFT → DPO (from the SFT policy) → merged candidate with a model card",
                        description="Step 1 LoRA SFT on DIR/sft, step 2 DPO from the SFT policy (which is also the "
                                    "DPO reference) on the teacher's pairs (DIR/dpo → OUTPUT/candidate) and/or on "
                                    "the on-policy round's (the SFT policy's own replies ranked by a judge → "
                                    "OUTPUT/onpolicy/candidate), merge, save with a model card.")
    tr.add_argument("--base-model", "--base", dest="base", required=True,
                    help="base SLM: Hub id or local folder (--base is an alias)")
    tr.add_argument("--revision", default=None, help="base revision to pin")
    tr.add_argument("--sft", required=True, help="SFT data: a distill output's sft/ folder or its train.jsonl")
    tr.add_argument("--dpo", default=None,
                    help="DPO data: a distill output's dpo/ folder or its train.jsonl (--dpo-pairs teacher or both)")
    tr.add_argument("--dpo-pairs", default="teacher", choices=("teacher", "onpolicy", "both"),
                    help="DPO pairs: the teacher's (--dpo; OUTPUT/candidate), the on-policy round's (the SFT "
                         "policy's own replies ranked by --onpolicy-judge; OUTPUT/onpolicy/candidate), or both "
                         "candidates from one SFT step")
    tr.add_argument("--config", default=None, help="YAML with lora/sft/dpo/onpolicy settings (defaults: the paper's)")
    tr.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda")
    add_judge_options(tr, "onpolicy_judge", default="")
    tr.add_argument("--output", required=True,
                    help="output folder (candidates in OUTPUT/candidate and OUTPUT/onpolicy/candidate)")


def _add_pipeline(sub: Subparsers) -> None:
    pi = sub.add_parser("pipeline", help="distil direct + a targeted strategy, train both, evaluate vs base and direct",
                        description="The paper's two headline comparisons end to end: distil `direct` and "
                                    "--strategy, train both candidates, build the base and direct reference sets, "
                                    "evaluate the targeted candidate → DIR/results.json.")
    pi.add_argument("--base-model", "--base", dest="base", required=True,
                    help="base SLM: Hub id or local folder (--base is an alias)")
    pi.add_argument("--strategy", required=True, help=f"targeted strategy: one of {', '.join(STRATEGIES[1:])}")
    pi.add_argument("--dataset", default="bundled", help="training dialogues (evaluation dialogues are refused)")
    pi.add_argument("--eval-dataset", default="bundled", help="evaluation dialogues")
    pi.add_argument("--limit", type=int, default=None, help="N training and N evaluation dialogues")
    pi.add_argument("--rejected", default="auto", choices=("auto", "original", "base"), help="DPO rejected reply")
    pi.add_argument("--start-from", default="auto", choices=("auto", "dataset", "teacher"),
                    help="starting reply of the targeted strategy")
    pi.add_argument("--config", default=None, help="training config YAML")
    pi.add_argument("--device", default="auto", help="device for generation and training")
    pi.add_argument("--batch-size", type=int, default=8, help="generation batch size")
    add_judge_options(pi, "teacher", default=None, cache=False)
    add_judge_options(pi)
    pi.add_argument("--onpolicy", action="store_true",
                    help="also train targeted + an on-policy round (DPO on the SFT policy's own replies ranked by "
                         "--onpolicy-judge) and evaluate it vs base, direct and the targeted candidate")
    add_judge_options(pi, "onpolicy_judge", default="", cache=False)
    pi.add_argument("--seed", type=int, default=1234, help="bootstrap seed")
    pi.add_argument("--output", required=True, help="output folder")


def cmd_distill(args: argparse.Namespace) -> int:
    """Run ``empathy distill``."""
    from harness.core.ui import console
    from harness.generate.replies import ModelSpec

    writable_folder("--output", args.output)
    cache = cache_dir(args)
    teacher = judge_settings(args, cache, "teacher") if args.teacher else None
    # the base SLM writes the DPO rejected replies on the teacher's device
    base = ModelSpec(model=args.base, device=args.teacher_device) if args.base else None
    report = run_distill(DistillConfig(
        strategy=args.strategy, dataset=args.dataset, output=Path(args.output), teacher=teacher,
        replies_from=args.replies_from, start_from=args.start_from, rejected=args.rejected, base=base,
        eval_dataset=args.eval_dataset, eval_limit=args.eval_limit, limit=args.limit,
        teacher_prompts=args.teacher_prompts,
    ))
    console.print(_distill_table(args.strategy, report))
    if not report["dpo"]["n"]:
        console.print("[yellow]warning:[/] no DPO pairs: no original replies to reject; use --rejected base --base MODEL")
    console.print(f"datasets written to {args.output}/sft and {args.output}/dpo (report: {args.output}/report.json)")
    return 0


def _distill_table(strategy: str, report: dict[str, Any]) -> Table:
    from rich.table import Table

    table = Table(title=f"distil — {strategy}", title_justify="left")
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_row("dialogues (after the overlap guard)", str(report["n_dialogues"]))
    table.add_row("refused: in the evaluation set", str(report["overlap_guard"]["refused"]))
    table.add_row("accepted", str(report["n_accepted"]))
    for reason, n in sorted(report["rejected"].items()):
        table.add_row(f"rejected: {reason}", str(n))
    for repair, n in sorted(report["repaired"].items()):
        table.add_row(f"repaired: {repair}", str(n))
    table.add_row("SFT rows / DPO pairs", f"{report['sft']['n']} / {report['dpo']['n']}")
    return table


def cmd_train(args: argparse.Namespace) -> int:
    """Run ``empathy train``."""
    from harness.core.ui import console
    from harness.train.config import load_train_config
    from harness.train.steps import run_train

    writable_folder("--output", args.output)
    teacher, onpolicy = args.dpo_pairs in ("teacher", "both"), args.dpo_pairs in ("onpolicy", "both")
    if teacher and not args.dpo:
        raise HarnessError(f"--dpo-pairs {args.dpo_pairs} needs --dpo DIR (a distill output's dpo/ folder); or "
                           "--dpo-pairs onpolicy --onpolicy-judge MODEL")
    if args.dpo and not teacher:
        raise HarnessError(f"--dpo {args.dpo} is not used with --dpo-pairs onpolicy (its pairs come from the round): "
                           "leave it out, or give --dpo-pairs both to train a candidate on each")
    if args.onpolicy_judge and not onpolicy:
        raise HarnessError("--onpolicy-judge ranks the on-policy round's replies: add --dpo-pairs onpolicy (or both) "
                           "to train that candidate")
    if onpolicy and not args.onpolicy_judge:
        raise HarnessError(f"--dpo-pairs {args.dpo_pairs} needs --onpolicy-judge MODEL (e.g. a reward model from "
                           "'empathy judge train'; --onpolicy-judge-mode logits for an LLM judge)")
    judge = judge_settings(args, cache_dir(args), "onpolicy_judge") if onpolicy else None
    cfg = load_train_config(Path(args.config) if args.config else None, {"device": args.device})
    sft, out = Path(args.sft), Path(args.output)
    if judge is not None and teacher:  # (the round alone checks these itself before any training)
        from harness.train.onpolicy import preflight

        preflight(sft, judge)  # before the teacher-pair training: the rows carry their dialogues, the judge loads
    report = sft.parent / "report.json" if sft.is_dir() else sft.parent.parent / "report.json"
    provenance = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else {}
    if teacher:
        run_train(args.base, sft, Path(args.dpo), out, cfg, revision=args.revision, provenance=provenance)
        console.print(f"candidate written to {out / 'candidate'} (model card: README.md)")
    if judge is not None:
        from harness.train.onpolicy import run_onpolicy

        run_onpolicy(args.base, sft, out, cfg, judge, revision=args.revision, provenance=provenance)
        console.print(f"on-policy candidate written to {out / 'onpolicy' / 'candidate'} (model card: README.md)")
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    """Run ``empathy pipeline``."""
    from harness.cli.evaluate import report_run
    from harness.train.config import load_train_config
    from harness.train.pipeline import PipelineConfig, run_pipeline

    if args.strategy not in STRATEGIES:
        raise HarnessError(f"unknown strategy {args.strategy!r}: {did_you_mean(args.strategy, STRATEGIES)}")
    writable_folder("--output", args.output)
    if args.onpolicy_judge and not args.onpolicy:
        raise HarnessError("--onpolicy-judge is the judge of the on-policy round: add --onpolicy to train that "
                           "candidate")
    cache = cache_dir(args)
    cfg = PipelineConfig(
        base=args.base, teacher=judge_settings(args, cache, "teacher"), judge=judge_settings(args, cache),
        onpolicy=args.onpolicy,
        onpolicy_judge=judge_settings(args, cache, "onpolicy_judge") if args.onpolicy_judge else None,
        strategy=args.strategy, output=Path(args.output),
        train=load_train_config(Path(args.config) if args.config else None, {"device": args.device}),
        dataset=args.dataset, eval_dataset=args.eval_dataset, limit=args.limit, rejected=args.rejected,
        start_from=args.start_from, device=args.device, batch_size=args.batch_size, seed=args.seed,
    )
    results = run_pipeline(cfg)
    out = Path(args.output)
    # (a run that scored nothing exits 1, as `empathy eval` does)
    code = report_run(results["targeted"], out)
    if "onpolicy" in results:
        code = max(code, report_run(results["onpolicy"], out / "onpolicy"))
        from harness.core.ui import report_console

        report_console(pipe_width=150).print(_candidates_table(args.strategy, results))
    return code


def _candidates_table(strategy: str, results: dict[str, Any]) -> Table:
    """The pipeline's candidates side by side: win rate [95 % CI] vs each reference."""
    from rich.table import Table

    from harness.core.ui import win_rate_ci

    names = {"targeted": strategy, "onpolicy": f"{strategy} + on-policy round"}
    columns = list(dict.fromkeys(c for r in results.values() for c in r.comparisons))
    table = Table(title="pipeline — candidates (win rate, 95% CI)", title_justify="left")
    table.add_column("candidate")
    for c in columns:
        table.add_column(c.removeprefix("vs_").replace("targeted", strategy), justify="right", no_wrap=True)
    for key, result in results.items():
        table.add_row(names[key], *(win_rate_ci(result.comparisons[c]) if c in result.comparisons else "—"
                                    for c in columns))
    return table
