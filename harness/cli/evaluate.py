"""``empathy eval``, ``empathy refs build`` and ``empathy demo``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cli.options import (
    Handler,
    add_data_options,
    add_judge_options,
    add_model_options,
    cache_dir,
    check_judge_mode,
    check_judge_server,
    check_model_option,
    check_model_spec,
    judge_settings,
    model_spec,
    parse_references,
    writable_file,
    writable_folder,
)
from harness.core.errors import HarnessError

if TYPE_CHECKING:
    from harness.cli.options import Subparsers
    from harness.core.records import RunResult
    from harness.evaluate.run import EvalConfig
    from harness.generate.replies import ModelSpec

#: Exit code of a run that completed but scored no dialogue in some comparison (its files are written).
EXIT_NOTHING_SCORED = 1


def add_commands(sub: Subparsers) -> dict[str, Handler]:
    """Add ``eval`` and ``refs``; returns their handlers (``demo`` is added by :func:`add_demo_command`)."""
    ev = sub.add_parser("eval", help="evaluate a model vs reference sets (win rates, rubric)",
                        description="Generate with the model (lm-eval), free it, judge vs each reference in both "
                                    "orders, score the rubric, write DIR/results.json.")
    add_model_options(ev)
    add_data_options(ev)
    ev.add_argument("--reference", action="append", default=[], metavar="NAME=FILE",
                    help="a reference set file (repeatable), e.g. base=refs/base.json")
    for name in ("base", "direct"):
        ev.add_argument(f"--{name}-model", default=None,
                        help=f"build (or reuse) the '{name}' reference set from this model, loaded locally (the "
                             "candidate's --revision, --model-backend and --base-url do not apply)")
        ev.add_argument(f"--{name}-model-url", default=None, metavar="URL",
                        help=f"serve --{name}-model from this OpenAI-compatible server instead "
                             "(backend openai-chat), e.g. http://127.0.0.1:8001/v1")
    ev.add_argument("--refs-dir", default=None, help="where on-the-fly reference sets are kept (default: cache dir)")
    add_judge_options(ev)
    ev.add_argument("--judge-validity", default=None, metavar="FILE",
                    help="validity.json of this judge from 'empathy validate-judge': its agreement with people is "
                         "written beside the results (default: a reward model's own training.json, if any)")
    ev.add_argument("--seed", type=int, default=1234, help="bootstrap seed")
    ev.add_argument("--output", required=True, help="output folder")
    ev.add_argument("--overwrite", action="store_true",
                    help="replace a run of another model in --output (a run of the same model is resumed without it)")

    refs = sub.add_parser("refs", help="reference sets")
    refs_sub = refs.add_subparsers(dest="refs_command", metavar="ACTION")
    rb = refs_sub.add_parser("build", help="generate a reference set (replies + manifest) with a model")
    add_model_options(rb)
    add_data_options(rb)
    rb.add_argument("--name", required=True, help="reference name, e.g. base or direct")
    rb.add_argument("--output", required=True, help="output file (.json)")
    rb.add_argument("--overwrite", action="store_true", help="replace --output when it exists")
    im = sub.add_parser("import-lmeval", help="turn an lm-eval run of the empathy tasks into a run folder",
                        description="Read lm_eval's --output_path folder (run with --log_samples) and write the same "
                                    "typed run folder as 'empathy eval' (results.json, judgments, manifest).")
    im.add_argument("lm_eval_output", metavar="LM_EVAL_OUTPUT", help="the folder given to lm_eval --output_path")
    im.add_argument("--output", required=True, help="run folder to write")
    return {"eval": cmd_eval, "refs": cmd_refs, "import-lmeval": cmd_import_lmeval}


def add_demo_command(sub: Subparsers) -> dict[str, Handler]:
    """Add ``demo``; returns its handler."""
    demo = sub.add_parser("demo", help="offline end-to-end demo on tiny random models")
    demo.add_argument("--output", required=True, help="output folder")
    demo.add_argument("--overwrite", action="store_true", help="replace a run of another model in --output")
    demo.add_argument("--limit", type=int, default=None, help="number of bundled dialogues (default 24; 6 with --real)")
    demo.add_argument("--judge-mode", default="logits",
                      help="logits, generate or reward (offline: a tiny random reward model; --real: needs --judge)")
    demo.add_argument("--real", action="store_true",
                      help="real weights: SmolLM2-135M-Instruct (empathy models fetch smollm2) as candidate, "
                           "reference and judge; a few minutes on CPU. Its 135M judge measures only its position bias")
    demo.add_argument("--judge", default=None, metavar="DIR",
                      help="--real: judge with this model instead, e.g. a reward model from 'empathy judge train' "
                           "(its held-out validity is shown beside the result)")
    demo.add_argument("--judge-validity", default=None, metavar="FILE",
                      help="--real --judge: the judge's validity.json from 'empathy validate-judge'")
    demo.add_argument("--cache-dir", default=None,
                      help="where SmolLM2 is converted (default: $EMPATHY_HARNESS_CACHE or ~/.cache/empathy-harness)")
    return {"demo": cmd_demo}


def reference_spec(args: argparse.Namespace, name: str) -> ModelSpec | None:
    """The on-the-fly reference system ``--NAME-model``, or None.

    It loads locally (hf) unless ``--NAME-model-url`` serves it: the candidate's backend, server and revision are
    the candidate's, and a served candidate must not have its base reference asked of its own server.
    """
    from harness.core.urls import public_url
    from harness.generate.replies import ModelSpec

    model, url = getattr(args, f"{name}_model"), getattr(args, f"{name}_model_url")
    if not model:
        if url:
            raise HarnessError(f"--{name}-model-url {public_url(url)} needs --{name}-model (the model name the server "
                               "serves)")
        return None
    return ModelSpec(model=model, backend="openai-chat" if url else "hf", device=args.device,
                     batch_size=args.batch_size, base_url=url)


def eval_config(args: argparse.Namespace) -> EvalConfig:
    """The :class:`EvalConfig` of an ``empathy eval`` command line."""
    from harness.evaluate.run import EvalConfig

    cache = cache_dir(args)
    build = {name: spec for name in ("base", "direct") if (spec := reference_spec(args, name)) is not None}
    return EvalConfig(
        candidate=model_spec(args),
        judge=judge_settings(args, cache),
        output=Path(args.output),
        references=parse_references(args.reference),
        build_references=build,
        refs_dir=Path(args.refs_dir) if args.refs_dir else cache / "references",
        dataset=args.dataset,
        limit=args.limit,
        seed=args.seed,
        overwrite=args.overwrite,
        judge_validity=Path(args.judge_validity).expanduser() if args.judge_validity else None,
    )


def preflight(cfg: EvalConfig) -> None:
    """Every device, model folder and server the run will use is there, before anything is loaded or generated.

    The errors name the option that gave the value (``--judge``, ``--base-model-url`` …).
    """
    from harness.llm.base import resolve_device

    check_model_spec(cfg.candidate, "--model", url_option="--base-url")
    for name, spec in cfg.build_references.items():
        check_model_spec(spec, f"--{name}-model", url_option=f"--{name}-model-url")
    if cfg.judge.backend == "hf" and cfg.judge.device != "auto":
        resolve_device(cfg.judge.device)
    check_model_option("--judge", cfg.judge.model, backend=cfg.judge.backend, revision=cfg.judge.revision,
                       revision_option="--judge-revision")
    check_judge_server(cfg.judge)
    if cfg.judge_validity is not None and not cfg.judge_validity.is_file():
        raise HarnessError(f"--judge-validity {cfg.judge_validity}: no such file (give the validity.json that "
                           "'empathy validate-judge --output DIR' wrote for this judge)")


def nothing_scored(result: RunResult, output: Path) -> str | None:
    """Why a completed run measured nothing: the comparisons with no scored dialogue, and an example reason."""
    from harness.core.io import read_jsonl

    empty = [name for name, s in result.comparisons.items() if s.n_scored == 0]
    if not empty:
        return None
    reasons = [str(row.get("unscored_reason")) for row in read_jsonl(output / "judgments.jsonl")
               if isinstance(row, dict) and row.get("comparison") in empty and row.get("unscored_reason")]
    example = f" (e.g. {reasons[0]})" if reasons else ""
    n = result.comparisons[empty[0]].n_unscored
    return (f"no dialogue was scored in {', '.join(empty)}: all {n} dialogues unscored{example}; results are written "
            f"to {output}, but they measure nothing — use a judge that answers with the verdict labels, or lower "
            "--judge-min-label-mass (logits mode) / try --judge-mode generate")


def report_run(result: RunResult, output: Path) -> int:
    """Print a run's tables (stdout) and where it is (stderr); a run that scored nothing exits non-zero."""
    import sys

    from harness.core.ui import console, print_summary

    print_summary(result)
    console.print(f"results written to {output / 'results.json'}", soft_wrap=True)
    problem = nothing_scored(result, output)
    if problem is None:
        return 0
    print(f"error: {problem}", file=sys.stderr)
    return EXIT_NOTHING_SCORED


def cmd_eval(args: argparse.Namespace) -> int:
    """Run ``empathy eval``."""
    from harness.evaluate.run import run_eval

    output = writable_folder("--output", args.output)
    cfg = eval_config(args)
    preflight(cfg)
    return report_run(run_eval(cfg), output)


def cmd_import_lmeval(args: argparse.Namespace) -> int:
    """Run ``empathy import-lmeval``."""
    from harness.lmeval.importer import import_lmeval

    output = writable_folder("--output", args.output)
    return report_run(import_lmeval(Path(args.lm_eval_output), output), output)


def reference_output(value: str, name: str, *, overwrite: bool) -> Path:
    """``refs build --output``: a file that can be written, and not one that exists unless ``overwrite``."""
    path = writable_file("--output", value, example=f"{name}.json")
    if path.exists() and not overwrite:
        raise HarnessError(f"--output {value} already exists; pass --overwrite to replace it, or give another file")
    return path


def cmd_refs(args: argparse.Namespace) -> int:
    """Run ``empathy refs build``."""
    from rich.console import Console

    from harness.data.references import save_reference
    from harness.data.selection import run_dialogues
    from harness.evaluate.references import build_reference

    if args.refs_command != "build":
        raise HarnessError("usage: empathy refs build --model MODEL --name NAME --output FILE")
    output = reference_output(args.output, args.name, overwrite=args.overwrite)
    spec = model_spec(args)
    check_model_spec(spec, "--model", url_option="--base-url")
    dialogues, digest = run_dialogues(args.dataset, args.limit)
    ref = build_reference(spec, args.name, dialogues, dataset=args.dataset, digest=digest)
    save_reference(output, ref)
    Console().print(f"reference set {args.name!r}: {ref.manifest.n} replies from {args.model} → {output}",
                    soft_wrap=True)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run ``empathy demo``."""
    from harness.evaluate.demo import run_demo

    check_judge_mode(args.judge_mode)
    output = writable_folder("--output", args.output)
    judge = Path(args.judge).expanduser() if args.judge else None
    if judge is not None and not judge.is_dir():
        raise HarnessError(f"--judge {judge}: no such folder (give a judge model folder, e.g. the output of "
                           "'empathy judge train')")
    result = run_demo(output, limit=args.limit, judge_mode=args.judge_mode, real=args.real,
                      cache_dir=Path(args.cache_dir) if args.cache_dir else None, overwrite=args.overwrite,
                      judge=judge, judge_validity=Path(args.judge_validity).expanduser() if args.judge_validity else None)
    return report_run(result, output)
