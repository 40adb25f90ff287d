"""The ``empathy`` command line: eval, refs, tasks, demo."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import __version__
from harness.errors import HarnessError, did_you_mean
from harness.settings import DEFAULT_JUDGE, JUDGE_MODES, JudgeSettings, default_cache_dir

COMMANDS = ("eval", "refs", "tasks", "demo", "validate-judge")


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

    demo = sub.add_parser("demo", help="offline end-to-end demo on tiny random models")
    demo.add_argument("--output", required=True, help="output folder")
    demo.add_argument("--limit", type=int, default=24, help="number of bundled dialogues (default 24)")
    demo.add_argument("--judge-mode", default="logits", help="logits or generate")
    return parser


def _add_judge_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--judge", default=DEFAULT_JUDGE, help=f"judge model: Hub id or local folder (default {DEFAULT_JUDGE})")
    p.add_argument("--judge-revision", default=None, help="judge revision to pin")
    p.add_argument("--judge-backend", default="hf",
                   help="hf (local transformers model) or openai (any OpenAI-compatible server: vLLM, TGI, …)")
    p.add_argument("--judge-mode", default="logits", help="logits (label probabilities) or generate (written verdict)")
    p.add_argument("--judge-device", default="auto", help="judge device (hf backend)")
    p.add_argument("--judge-batch-size", type=int, default=8, help="judge batch size (hf backend)")
    p.add_argument("--judge-base-url", default=None,
                   help="openai backend: server URL, e.g. http://127.0.0.1:8000/v1 (default: api.openai.com)")
    p.add_argument("--judge-api-key-env", default="OPENAI_API_KEY",
                   help="openai backend: environment variable holding the API key (keys never go on the command line)")
    p.add_argument("--judge-concurrency", type=int, default=8, help="openai backend: requests in flight")
    p.add_argument("--judge-timeout", type=float, default=120.0, help="openai backend: seconds per request")
    p.add_argument("--judge-max-retries", type=int, default=5,
                   help="openai backend: retries on 429/5xx/timeouts before an item is left unscored")
    p.add_argument("--cache-dir", default=None, help="judge cache folder (default $EMPATHY_HARNESS_CACHE or ~/.cache)")


def _check_judge_mode(mode: str) -> None:
    if mode not in JUDGE_MODES:
        raise HarnessError(f"unknown judge mode {mode!r}: {did_you_mean(mode, JUDGE_MODES)}")


def _judge_settings(args: argparse.Namespace, cache_dir: Path) -> JudgeSettings:
    from pydantic import ValidationError

    from harness.backends import check_backend_name

    _check_judge_mode(args.judge_mode)
    check_backend_name(args.judge_backend)
    try:
        return JudgeSettings(model=args.judge, revision=args.judge_revision, backend=args.judge_backend,
                             mode=args.judge_mode, device=args.judge_device, batch_size=args.judge_batch_size,
                             base_url=args.judge_base_url, api_key_env=args.judge_api_key_env,
                             concurrency=args.judge_concurrency, timeout_s=args.judge_timeout,
                             max_retries=args.judge_max_retries, cache_dir=str(cache_dir))
    except ValidationError as exc:
        problems = "; ".join(f"--judge-{'-'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise HarnessError(f"invalid judge options: {problems}") from exc


def _model_spec(args: argparse.Namespace, model: str | None = None):  # type: ignore[no-untyped-def]
    from harness.generate import ModelSpec

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
    from harness.evaluate import EvalConfig, run_eval
    from harness.ui import console, print_summary

    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
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
    from harness.evaluate import build_reference, run_dialogues
    from harness.references import save_reference
    from harness.ui import console

    if args.refs_command != "build":
        raise HarnessError("usage: empathy refs build --model MODEL --name NAME --output FILE")
    dialogues, digest = run_dialogues(args.dataset, args.limit)
    ref = build_reference(_model_spec(args), args.name, dialogues, dataset=args.dataset, digest=digest)
    save_reference(Path(args.output), ref)
    console.print(f"reference set {args.name!r}: {ref.manifest.n} replies from {args.model} → {args.output}")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    """Run ``empathy tasks list|validate``."""
    from harness.resources import tasks_dir
    from harness.taskcheck import TASK_NAMES, validate_tasks

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
    from harness.demo import run_demo
    from harness.ui import console, print_summary

    _check_judge_mode(args.judge_mode)
    result = run_demo(Path(args.output), limit=args.limit, judge_mode=args.judge_mode)
    print_summary(result)
    console.print(f"results written to {Path(args.output) / 'results.json'}")
    return 0


def cmd_validate_judge(args: argparse.Namespace) -> int:
    """Run ``empathy validate-judge``."""
    from harness.judge import open_judge
    from harness.ui import console
    from harness.validity import print_validity, validate_judge

    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
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
                "validate-judge": cmd_validate_judge}
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
