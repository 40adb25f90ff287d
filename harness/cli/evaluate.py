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
    judge_settings,
    model_spec,
    parse_references,
)
from harness.core.errors import HarnessError

if TYPE_CHECKING:
    from harness.cli.options import Subparsers
    from harness.evaluate.run import EvalConfig
    from harness.generate.replies import ModelSpec


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
    ev.add_argument("--seed", type=int, default=1234, help="bootstrap seed")
    ev.add_argument("--output", required=True, help="output folder")

    refs = sub.add_parser("refs", help="reference sets")
    refs_sub = refs.add_subparsers(dest="refs_command", metavar="ACTION")
    rb = refs_sub.add_parser("build", help="generate a reference set (replies + manifest) with a model")
    add_model_options(rb)
    add_data_options(rb)
    rb.add_argument("--name", required=True, help="reference name, e.g. base or direct")
    rb.add_argument("--output", required=True, help="output file (.json)")
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
    demo.add_argument("--limit", type=int, default=None, help="number of bundled dialogues (default 24; 6 with --real)")
    demo.add_argument("--judge-mode", default="logits", help="logits or generate")
    demo.add_argument("--real", action="store_true",
                      help="real weights: SmolLM2-135M-Instruct (empathy models fetch smollm2) as candidate, "
                           "reference and judge; a few minutes on CPU. Its 135M judge measures only its position bias")
    demo.add_argument("--cache-dir", default=None,
                      help="where SmolLM2 is converted (default: $EMPATHY_HARNESS_CACHE or ~/.cache/empathy-harness)")
    return {"demo": cmd_demo}


def reference_spec(args: argparse.Namespace, name: str) -> ModelSpec | None:
    """The on-the-fly reference system ``--NAME-model``, or None.

    It loads locally (hf) unless ``--NAME-model-url`` serves it: the candidate's backend, server and revision are
    the candidate's, and a served candidate must not have its base reference asked of its own server.
    """
    from harness.generate.replies import ModelSpec

    model, url = getattr(args, f"{name}_model"), getattr(args, f"{name}_model_url")
    if not model:
        if url:
            raise HarnessError(f"--{name}-model-url {url} needs --{name}-model (the model name the server serves)")
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
    )


def preflight_devices(cfg: EvalConfig) -> None:
    """Every device the run will use exists, before anything is loaded or generated."""
    from harness.llm.base import resolve_device

    for spec in (cfg.candidate, *cfg.build_references.values()):
        if spec.backend in ("hf", "vllm") and spec.device != "auto":  # 'auto' always resolves
            resolve_device(spec.device)
    if cfg.judge.backend == "hf" and cfg.judge.device != "auto":
        resolve_device(cfg.judge.device)


def cmd_eval(args: argparse.Namespace) -> int:
    """Run ``empathy eval``."""
    from harness.core.ui import console, print_summary
    from harness.evaluate.run import run_eval

    cfg = eval_config(args)
    preflight_devices(cfg)
    result = run_eval(cfg)
    print_summary(result)
    console.print(f"results written to {Path(args.output) / 'results.json'}")
    return 0


def cmd_import_lmeval(args: argparse.Namespace) -> int:
    """Run ``empathy import-lmeval``."""
    from harness.core.ui import console, print_summary
    from harness.lmeval.importer import import_lmeval

    result = import_lmeval(Path(args.lm_eval_output), Path(args.output))
    print_summary(result)
    console.print(f"results written to {Path(args.output) / 'results.json'}")
    return 0


def cmd_refs(args: argparse.Namespace) -> int:
    """Run ``empathy refs build``."""
    from harness.core.ui import console
    from harness.data.references import save_reference
    from harness.data.selection import run_dialogues
    from harness.evaluate.references import build_reference

    if args.refs_command != "build":
        raise HarnessError("usage: empathy refs build --model MODEL --name NAME --output FILE")
    dialogues, digest = run_dialogues(args.dataset, args.limit)
    ref = build_reference(model_spec(args), args.name, dialogues, dataset=args.dataset, digest=digest)
    save_reference(Path(args.output), ref)
    console.print(f"reference set {args.name!r}: {ref.manifest.n} replies from {args.model} → {args.output}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run ``empathy demo``."""
    from harness.core.ui import console, print_summary
    from harness.evaluate.demo import run_demo

    check_judge_mode(args.judge_mode)
    result = run_demo(Path(args.output), limit=args.limit, judge_mode=args.judge_mode, real=args.real,
                      cache_dir=Path(args.cache_dir) if args.cache_dir else None)
    print_summary(result)
    console.print(f"results written to {Path(args.output) / 'results.json'}")
    return 0
