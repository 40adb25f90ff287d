"""The ``empathy`` command line: eval, refs, tasks, demo."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import __version__
from harness.core.errors import HarnessError, did_you_mean
from harness.core.settings import DEFAULT_JUDGE, JUDGE_MODES, JudgeSettings, default_cache_dir
from harness.train.distill import STRATEGIES

COMMANDS = ("eval", "refs", "tasks", "demo", "validate-judge", "distill", "train", "pipeline")


def _add_model_options(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("--model", required=required, help="model to generate with: Hub id or local folder (or served name)")
    p.add_argument("--revision", default=None, help="model revision (branch, tag or commit) to pin")
    p.add_argument("--model-backend", default="hf",
                   help="hf, vllm, or openai-chat (= lm-eval local-chat-completions: a model behind a server)")
    p.add_argument("--base-url", default=None,
                   help="OpenAI-compatible server for --model-backend openai-chat, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, cuda:1 …")
    p.add_argument("--batch-size", type=int, default=8, help="generation batch size")


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="bundled",
                   help="bundled | ed:test[@REV] | welivita:FILE.csv[:paper_test] | FILE.jsonl (default: bundled)")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N dialogues (emotion-interleaved)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``empathy`` command."""
    parser = argparse.ArgumentParser(
        prog="empathy",
        description="Measure empathy in small language models: lm-eval tasks, a position-controlled judge, CIs.",
    )
    parser.add_argument("--version", action="version", version=f"empathy-harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    ev = sub.add_parser("eval", help="evaluate a model vs reference sets (win rates, rubric)",
                        description="Generate with the model (lm-eval), free it, judge vs each reference in both "
                                    "orders, score the rubric, write DIR/results.json.")
    _add_model_options(ev)
    _add_data_options(ev)
    ev.add_argument("--reference", action="append", default=[], metavar="NAME=FILE",
                    help="a reference set file (repeatable), e.g. base=refs/base.json")
    ev.add_argument("--base-model", default=None, help="build (or reuse) the 'base' reference set from this model")
    ev.add_argument("--direct-model", default=None, help="build (or reuse) the 'direct' reference set from this model")
    ev.add_argument("--refs-dir", default=None, help="where on-the-fly reference sets are kept (default: cache dir)")
    _add_judge_options(ev)
    ev.add_argument("--seed", type=int, default=1234, help="bootstrap seed")
    ev.add_argument("--output", required=True, help="output folder")

    refs = sub.add_parser("refs", help="reference sets")
    refs_sub = refs.add_subparsers(dest="refs_command", metavar="ACTION")
    rb = refs_sub.add_parser("build", help="generate a reference set (replies + manifest) with a model")
    _add_model_options(rb)
    _add_data_options(rb)
    rb.add_argument("--name", required=True, help="reference name, e.g. base or direct")
    rb.add_argument("--output", required=True, help="output file (.json)")

    tasks = sub.add_parser("tasks", help="the lm-eval tasks")
    tasks_sub = tasks.add_subparsers(dest="tasks_command", metavar="ACTION")
    tasks_sub.add_parser("list", help="list the tasks and their folder (for lm_eval --include_path)")
    tasks_sub.add_parser("validate", help="load every task YAML through lm-eval and check it")

    vj = sub.add_parser("validate-judge", help="measure a judge against human empathy ratings (+ stress tests)",
                        description="Judge every within-dialogue pair of rated replies of a Welivita & Pu format "
                                    "CSV in both orders; report agreement with the human ratings (with CIs), "
                                    "Spearman, the ranking of the five sources, position and length bias, and "
                                    "stress-test flip rates; write DIR/validity.json.")
    vj.add_argument("--human-ratings", required=True, metavar="FILE.csv",
                    help="ratings CSV in the Welivita & Pu format (dialog_id, …, response_<source>, rating_<source>)")
    vj.add_argument("--split", default="all", help="all | paper_test | paper_train (the paper's rule)")
    vj.add_argument("--limit", type=int, default=None, help="first N dialogues (emotion-interleaved)")
    vj.add_argument("--rubric", action="store_true", help="also score every reply on the rubric (3 calls per reply)")
    vj.add_argument("--stress-limit", type=int, default=200, help="verdicts re-judged per stress test (default 200)")
    _add_judge_options(vj)
    vj.add_argument("--seed", type=int, default=1234, help="bootstrap / sampling seed")
    vj.add_argument("--output", required=True, help="output folder")

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
    di.add_argument("--base", default=None, help="the base SLM (for --rejected base/auto)")
    di.add_argument("--eval-dataset", default="bundled", help="the evaluation set whose dialogues are refused")
    di.add_argument("--eval-limit", type=int, default=None, help="only the first N evaluation dialogues are refused")
    di.add_argument("--teacher-prompts", default=None, help="teacher prompt set YAML (default prompts/teacher/default.yaml)")
    _add_judge_options(di, "teacher", default="")
    di.add_argument("--output", required=True, help="output folder")

    tr = sub.add_parser("train", help="LoRA SFT → DPO (from the SFT policy) → merged candidate with a model card",
                        description="Step 1 LoRA SFT on DIR/sft, step 2 DPO on DIR/dpo from the SFT policy (which is "
                                    "also the DPO reference), merge, save OUTPUT/candidate with a model card.")
    tr.add_argument("--base", required=True, help="base SLM: Hub id or local folder")
    tr.add_argument("--revision", default=None, help="base revision to pin")
    tr.add_argument("--sft", required=True, help="SFT data: a distill output's sft/ folder or its train.jsonl")
    tr.add_argument("--dpo", required=True, help="DPO data: a distill output's dpo/ folder or its train.jsonl")
    tr.add_argument("--config", default=None, help="YAML with lora/sft/dpo settings (defaults: the paper's)")
    tr.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda")
    tr.add_argument("--output", required=True, help="output folder (candidate in OUTPUT/candidate)")

    pi = sub.add_parser("pipeline", help="distil direct + a targeted strategy, train both, evaluate vs base and direct",
                        description="The paper's two headline comparisons end to end: distil `direct` and "
                                    "--strategy, train both candidates, build the base and direct reference sets, "
                                    "evaluate the targeted candidate → DIR/results.json.")
    pi.add_argument("--base", required=True, help="base SLM: Hub id or local folder")
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
    _add_judge_options(pi, "teacher", default=None, cache=False)
    _add_judge_options(pi)
    pi.add_argument("--seed", type=int, default=1234, help="bootstrap seed")
    pi.add_argument("--output", required=True, help="output folder")

    demo = sub.add_parser("demo", help="offline end-to-end demo on tiny random models")
    demo.add_argument("--output", required=True, help="output folder")
    demo.add_argument("--limit", type=int, default=24, help="number of bundled dialogues (default 24)")
    demo.add_argument("--judge-mode", default="logits", help="logits or generate")
    return parser


def _add_judge_options(p: argparse.ArgumentParser, role: str = "judge", *, default: str | None = DEFAULT_JUDGE,
                       cache: bool = True) -> None:
    """Options of a model run through the judge backends: ``--judge …`` or ``--teacher …``."""
    what = {"judge": "judge model", "teacher": "teacher model (writes the training replies)"}[role]
    p.add_argument(f"--{role}", default=default, required=default is None,
                   help=f"{what}: Hub id, local folder or served name" + (f" (default {default})" if default else ""))
    p.add_argument(f"--{role}-revision", default=None, help=f"{role} revision to pin")
    p.add_argument(f"--{role}-backend", default="hf",
                   help="hf (local transformers model) or openai (any OpenAI-compatible server: vLLM, TGI, …)")
    if role == "judge":
        p.add_argument("--judge-mode", default="logits",
                       help="logits (label probabilities) or generate (written verdict)")
    p.add_argument(f"--{role}-device", default="auto", help=f"{role} device (hf backend)")
    p.add_argument(f"--{role}-batch-size", type=int, default=8, help=f"{role} batch size (hf backend)")
    p.add_argument(f"--{role}-base-url", default=None,
                   help="openai backend: server URL, e.g. http://127.0.0.1:8000/v1 (default: api.openai.com)")
    p.add_argument(f"--{role}-api-key-env", default="OPENAI_API_KEY",
                   help="openai backend: environment variable holding the API key (keys never go on the command line)")
    p.add_argument(f"--{role}-concurrency", type=int, default=8, help="openai backend: requests in flight")
    p.add_argument(f"--{role}-timeout", type=float, default=120.0, help="openai backend: seconds per request")
    p.add_argument(f"--{role}-max-retries", type=int, default=5,
                   help="openai backend: retries on 429/5xx/timeouts before an item is left unscored")
    if cache:
        p.add_argument("--cache-dir", default=None,
                       help="judge/teacher cache folder (default $EMPATHY_HARNESS_CACHE or ~/.cache)")


def _check_judge_mode(mode: str) -> None:
    if mode not in JUDGE_MODES:
        raise HarnessError(f"unknown judge mode {mode!r}: {did_you_mean(mode, JUDGE_MODES)}")


def _cache_dir(args: argparse.Namespace) -> Path:
    return Path(args.cache_dir) if args.cache_dir else default_cache_dir()


def _judge_settings(args: argparse.Namespace, cache_dir: Path, role: str = "judge") -> JudgeSettings:
    from pydantic import ValidationError

    from harness.llm.base import check_backend_name

    opt = vars(args)
    mode = opt.get(f"{role}_mode", "generate")
    _check_judge_mode(mode)
    check_backend_name(opt[f"{role}_backend"])
    try:
        return JudgeSettings(model=opt[role], revision=opt[f"{role}_revision"], backend=opt[f"{role}_backend"],
                             mode=mode, device=opt[f"{role}_device"], batch_size=opt[f"{role}_batch_size"],
                             base_url=opt[f"{role}_base_url"], api_key_env=opt[f"{role}_api_key_env"],
                             concurrency=opt[f"{role}_concurrency"], timeout_s=opt[f"{role}_timeout"],
                             max_retries=opt[f"{role}_max_retries"], cache_dir=str(cache_dir))
    except ValidationError as exc:
        problems = "; ".join(f"--{role}-{'-'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise HarnessError(f"invalid {role} options: {problems}") from exc


def _model_spec(args: argparse.Namespace, model: str | None = None):  # type: ignore[no-untyped-def]
    from harness.generate.replies import ModelSpec

    return ModelSpec(model=model or args.model, backend=args.model_backend, revision=args.revision if model is None else None,
                     device=args.device, batch_size=args.batch_size, base_url=args.base_url)


def _parse_references(items: Sequence[str]) -> dict[str, Path]:
    refs: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise HarnessError(f"--reference expects NAME=FILE (e.g. base=refs/base.json), got {item!r}")
        refs[name] = Path(path)
    return refs


def cmd_eval(args: argparse.Namespace) -> int:
    """Run ``empathy eval``."""
    from harness.core.ui import console, print_summary
    from harness.evaluate.run import EvalConfig, run_eval

    cache_dir = _cache_dir(args)
    build = {}
    if args.base_model:
        build["base"] = _model_spec(args, args.base_model)
    if args.direct_model:
        build["direct"] = _model_spec(args, args.direct_model)
    cfg = EvalConfig(
        candidate=_model_spec(args),
        judge=_judge_settings(args, cache_dir),
        output=Path(args.output),
        references=_parse_references(args.reference),
        build_references=build,
        refs_dir=Path(args.refs_dir) if args.refs_dir else cache_dir / "references",
        dataset=args.dataset,
        limit=args.limit,
        seed=args.seed,
    )
    result = run_eval(cfg)
    print_summary(result)
    console.print(f"results written to {Path(args.output) / 'results.json'}")
    return 0


def cmd_refs(args: argparse.Namespace) -> int:
    """Run ``empathy refs build``."""
    from harness.core.ui import console
    from harness.data.references import save_reference
    from harness.evaluate.run import build_reference, run_dialogues

    if args.refs_command != "build":
        raise HarnessError("usage: empathy refs build --model MODEL --name NAME --output FILE")
    dialogues, digest = run_dialogues(args.dataset, args.limit)
    ref = build_reference(_model_spec(args), args.name, dialogues, dataset=args.dataset, digest=digest)
    save_reference(Path(args.output), ref)
    console.print(f"reference set {args.name!r}: {ref.manifest.n} replies from {args.model} → {args.output}")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    """Run ``empathy tasks list|validate``."""
    from harness.core.resources import tasks_dir
    from harness.lmeval.check import TASK_NAMES, validate_tasks

    if args.tasks_command == "list":
        print(f"include path: {tasks_dir()}")
        for name in TASK_NAMES:
            print(name)
        return 0
    if args.tasks_command == "validate":
        problems = validate_tasks()
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        if not problems:
            print(f"all {len(TASK_NAMES)} tasks valid ({tasks_dir()})")
        return 1 if problems else 0
    raise HarnessError("usage: empathy tasks list|validate")


def cmd_demo(args: argparse.Namespace) -> int:
    """Run ``empathy demo``."""
    from harness.core.ui import console, print_summary
    from harness.evaluate.demo import run_demo

    _check_judge_mode(args.judge_mode)
    result = run_demo(Path(args.output), limit=args.limit, judge_mode=args.judge_mode)
    print_summary(result)
    console.print(f"results written to {Path(args.output) / 'results.json'}")
    return 0


def cmd_validate_judge(args: argparse.Namespace) -> int:
    """Run ``empathy validate-judge``."""
    from harness.core.ui import console
    from harness.judge.judge import open_judge
    from harness.score.validity import print_validity, validate_judge

    cache_dir = _cache_dir(args)
    ratings = Path(args.human_ratings)
    if not ratings.is_file():
        raise HarnessError(f"--human-ratings {ratings}: no such file (give the ratings CSV in the Welivita & Pu format)")
    judge = open_judge(_judge_settings(args, cache_dir))
    try:
        result = validate_judge(judge, ratings, Path(args.output), split=args.split, limit=args.limit,
                                rubric=args.rubric, stress_limit=args.stress_limit, seed=args.seed)
    finally:
        judge.backend.close()
        judge.cache.close()
    print_validity(result)
    console.print(f"validity report written to {Path(args.output) / 'validity.json'}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    """Run ``empathy distill``."""
    from rich.table import Table

    from harness.core.ui import console
    from harness.train.distill import DistillConfig, run_distill

    cache_dir = _cache_dir(args)
    teacher = _judge_settings(args, cache_dir, "teacher") if args.teacher else None
    base = _model_spec_for(args.base, getattr(args, "teacher_device", "auto")) if args.base else None
    report = run_distill(DistillConfig(
        strategy=args.strategy, dataset=args.dataset, output=Path(args.output), teacher=teacher,
        replies_from=args.replies_from, start_from=args.start_from, rejected=args.rejected, base=base,
        eval_dataset=args.eval_dataset, eval_limit=args.eval_limit, limit=args.limit,
        teacher_prompts=args.teacher_prompts,
    ))
    table = Table(title=f"distil — {args.strategy}", title_justify="left")
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
    console.print(table)
    if not report["dpo"]["n"]:
        console.print("[yellow]warning:[/] no DPO pairs: no original replies to reject; use --rejected base --base MODEL")
    console.print(f"datasets written to {args.output}/sft and {args.output}/dpo (report: {args.output}/report.json)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Run ``empathy train``."""
    from harness.core.ui import console
    from harness.train.steps import load_train_config, run_train

    cfg = load_train_config(Path(args.config) if args.config else None, {"device": args.device})
    sft, dpo = Path(args.sft), Path(args.dpo)
    provenance = {}
    report = sft.parent / "report.json" if sft.is_dir() else sft.parent.parent / "report.json"
    if report.is_file():
        import json

        provenance = json.loads(report.read_text(encoding="utf-8"))
    run_train(args.base, sft, dpo, Path(args.output), cfg, revision=args.revision, provenance=provenance)
    console.print(f"candidate written to {Path(args.output) / 'candidate'} (model card: README.md)")
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    """Run ``empathy pipeline``."""
    from harness.core.ui import console, print_summary
    from harness.train.distill import STRATEGIES
    from harness.train.pipeline import PipelineConfig, run_pipeline
    from harness.train.steps import load_train_config

    if args.strategy not in STRATEGIES:
        raise HarnessError(f"unknown strategy {args.strategy!r}: {did_you_mean(args.strategy, STRATEGIES)}")
    cache_dir = _cache_dir(args)
    cfg = PipelineConfig(
        base=args.base, teacher=_judge_settings(args, cache_dir, "teacher"), judge=_judge_settings(args, cache_dir),
        strategy=args.strategy, output=Path(args.output),
        train=load_train_config(Path(args.config) if args.config else None, {"device": args.device}),
        dataset=args.dataset, eval_dataset=args.eval_dataset, limit=args.limit, rejected=args.rejected,
        start_from=args.start_from, device=args.device, batch_size=args.batch_size, seed=args.seed,
    )
    result = run_pipeline(cfg)
    print_summary(result)
    console.print(f"results written to {Path(args.output) / 'results.json'}")
    return 0


def _model_spec_for(model: str, device: str):  # type: ignore[no-untyped-def]
    from harness.generate.replies import ModelSpec

    return ModelSpec(model=model, device=device)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 check failed, 2 usage or input error, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        print(f"empathy: unknown command {argv[0]!r}: {did_you_mean(argv[0], COMMANDS)}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    handlers = {"eval": cmd_eval, "refs": cmd_refs, "tasks": cmd_tasks, "demo": cmd_demo,
                "validate-judge": cmd_validate_judge, "distill": cmd_distill, "train": cmd_train,
                "pipeline": cmd_pipeline}
    try:
        return handlers[args.command](args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: every judge answer made so far is in the cache; re-run the same command to resume",
              file=sys.stderr)
        return 130


def entrypoint() -> None:
    """Console-script entry point."""
    raise SystemExit(main())
