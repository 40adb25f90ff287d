"""``empathy check``: the regression gate for CI (exit 0 pass, 1 regression, 2 usage, 3 invalid, 4 inconclusive, 5 a win only by style with --fail-on-style-only-win).

Exit 4 comes always when a gated metric carries no information (every verdict tied, a head to head with no
decisive dialogue, a rubric dimension with no scored reply), and with ``--fail-on-inconclusive`` when a metric is
merely undecided.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cli.options import (
    Handler,
    add_data_options,
    add_judge_options,
    add_model_options,
    cache_dir,
    check_judge_server,
    check_model_option,
    check_model_spec,
    judge_settings,
    model_spec,
    parse_references,
    writable_file,
)
from harness.core.errors import HarnessError

if TYPE_CHECKING:
    from harness.cli.options import Subparsers


def add_commands(sub: Subparsers) -> dict[str, Handler]:
    """Add ``check``; returns its handler."""
    ck = sub.add_parser(
        "check", help="regression gate: is a candidate run (or checkpoint) non-inferior to a baseline?",
        description="Two completed runs (--baseline/--candidate), or two checkpoints (--baseline-model/--model, "
                    "evaluated here and judged head to head) → paired per-dialogue differences, bootstrap CIs, "
                    "non-inferiority per metric with a margin, Holm across metrics. Exit 0 pass, 1 regression, "
                    "2 usage error, 3 invalid comparison (incl. a judge that failed its health check), "
                    "4 inconclusive: always when a metric carries no information (every verdict tied, no decisive "
                    "dialogue, no scored reply), and for undecided metrics with --fail-on-inconclusive.")
    ck.add_argument("--baseline", default=None, metavar="RUN_DIR", help="the baseline run folder")
    ck.add_argument("--candidate", default=None, metavar="RUN_DIR", help="the candidate run folder")
    ck.add_argument("--baseline-model", default=None, metavar="OLD",
                    help="checkpoint mode: the old checkpoint (with --model NEW, --reference and --judge)")
    add_model_options(ck, required=False)
    add_data_options(ck)
    ck.add_argument("--reference", action="append", default=[], metavar="NAME=FILE",
                    help="checkpoint mode: a reference set (repeatable), e.g. base=refs/base.json")
    add_judge_options(ck)
    ck.add_argument("--output", default=None, help="checkpoint mode: folder for both runs (keep it between "
                                                   "pipelines: an unchanged baseline is reused)")
    ck.add_argument("--metrics", nargs="*", default=[],
                    help="gate only these metrics or families (win_rate, lc_win_rate, rubric, head_to_head, "
                         "rubric:cognitive, win_rate:vs_base …); default: all")
    ck.add_argument("--margin", action="append", default=[], metavar="[METRIC=]VALUE",
                    help="non-inferiority margin (repeatable): 0.03 for all, or win_rate=0.03, rubric=0.2 … "
                         "(defaults: win rates 0.02, rubric 0.10, head to head 0.02)")
    ck.add_argument("--alpha", type=float, default=0.05, help="family-wise error rate (Holm), in (0, 0.5) "
                                                                "(default 0.05)")
    ck.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000; at least "
                                                             "(gated metrics)/alpha)")
    ck.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    ck.add_argument("--fail-on-inconclusive", action="store_true", help="exit 4 when no metric regressed but "
                                                                        "some could not be decided (a metric "
                                                                        "without information exits 4 anyway)")
    ck.add_argument("--fail-on-style-only-win", action="store_true",
                    help="exit 5 when the gate passes but a win rate's rise disappears with style held equal "
                         "(length, markdown, exclamations, emoji, stock sympathy): the candidate won by style")
    ck.add_argument("--allow-unhealthy-judge", action="store_true",
                    help="gate runs whose judge failed its health check (sanity probe, tie share, label mass, "
                         "flips) instead of refusing them (exit 3); for tests and demos only — every report then "
                         "says so on its first line")
    ck.add_argument("--min-parse-rate", type=float, default=0.9, help="health floor (default 0.9)")
    ck.add_argument("--max-flip-rate", type=float, default=0.6, help="health ceiling on position flips (default 0.6)")
    ck.add_argument("--min-label-mass", type=float, default=0.5, help="health floor, logits mode (default 0.5)")
    ck.add_argument("--min-rubric-parse-rate", type=float, default=0.9,
                    help="health floor on the share of rubric scores read (default 0.9)")
    ck.add_argument("--max-unscored", type=float, default=0.1, help="most unscored dialogues per comparison (0.1)")
    ck.add_argument("--junit", default=None, metavar="FILE", help="write a JUnit XML report (one testcase a metric)")
    ck.add_argument("--json", default=None, metavar="FILE", help="write the typed verdict as JSON")
    return {"check": cmd_check}


def _margins(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            number = float(value)
        except ValueError as exc:
            raise HarnessError(f"--margin expects VALUE or METRIC=VALUE (e.g. win_rate=0.03), got {item!r}") from exc
        if not (math.isfinite(number) and number >= 0):
            raise HarnessError(f"--margin {item}: a margin must be a finite number ≥ 0 (the drop that is not yet a "
                               "regression, e.g. 0.02 for a win rate, 0.1 for a rubric mean)")
        out[name if sep else "*"] = number
    return out


def cmd_check(args: argparse.Namespace) -> int:
    """Run ``empathy check``."""
    from harness.evaluate.runs import RunError, load_run
    from harness.gate.check import CheckOptions, Floors, check_runs, option_errors
    from harness.gate.models import EXIT
    from harness.gate.report import github_annotations, markdown_summary, write_outputs

    runs_mode = args.baseline is not None or args.candidate is not None
    model_mode = args.baseline_model is not None or args.model is not None
    if runs_mode == model_mode or (runs_mode and not (args.baseline and args.candidate)) or (
            model_mode and not (args.baseline_model and args.model and args.output)):
        raise HarnessError("give two runs (--baseline RUN_DIR --candidate RUN_DIR) or two checkpoints "
                           "(--baseline-model OLD --model NEW --reference base=FILE --judge J --output DIR)")
    options = CheckOptions(metrics=args.metrics, margins=_margins(args.margin), alpha=args.alpha,
                           floors=Floors(args.min_parse_rate, args.max_flip_rate, args.min_label_mass,
                                         args.max_unscored, min_rubric_parse_rate=args.min_rubric_parse_rate),
                           n_boot=args.n_boot, seed=args.seed, fail_on_inconclusive=args.fail_on_inconclusive,
                           fail_on_style_only_win=args.fail_on_style_only_win,
                           allow_unhealthy_judge=args.allow_unhealthy_judge)
    option_errors(options)  # before any run is read or (checkpoint mode) made
    junit, json_path = (writable_file(opt, v) if v is not None else None
                        for opt, v in (("--junit", args.junit), ("--json", args.json)))
    for option, value in (("--baseline", args.baseline), ("--candidate", args.candidate)):
        path = Path(value) if value is not None else None
        if path is not None and not path.is_dir() and not (path.name == "results.json" and path.is_file()):
            what = "is a file, not a run folder" if path.exists() else "does not exist (no such folder)"
            raise HarnessError(f"{option} {value} {what}: give the folder 'empathy eval --output' wrote")
    if model_mode:  # the models, the judge and any server, before either checkpoint is evaluated
        check_model_spec(model_spec(argparse.Namespace(**{**vars(args), "model": args.baseline_model})),
                         "--baseline-model", url_option="--base-url")
        check_model_spec(model_spec(args), "--model", url_option="--base-url")
        judge = judge_settings(args, cache_dir(args))
        check_model_option("--judge", judge.model, backend=judge.backend, revision=judge.revision,
                           revision_option="--judge-revision")
        check_judge_server(judge)
    try:
        if runs_mode:
            baseline, candidate = load_run(args.baseline), load_run(args.candidate)
        else:
            from harness.gate.checkpoints import run_checkpoints

            old = model_spec(argparse.Namespace(**{**vars(args), "model": args.baseline_model}))
            baseline, candidate = run_checkpoints(
                baseline=old, candidate=model_spec(args), references=parse_references(args.reference),
                judge=judge_settings(args, cache_dir(args)), output=Path(args.output), dataset=args.dataset,
                limit=args.limit, refs_dir=cache_dir(args) / "references")
    except RunError as exc:
        print(f"error: invalid comparison: {exc}", file=sys.stderr)
        return EXIT["invalid"]
    verdict = check_runs(baseline, candidate, options)
    print(markdown_summary(verdict))
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for line in github_annotations(verdict):
            print(line)
    try:
        write_outputs(verdict, junit=junit, json_path=json_path, env=os.environ)
    except OSError as exc:
        raise HarnessError(f"the verdict ({verdict.outcome}, exit {verdict.exit_code}) could not be written: "
                           f"{exc}") from exc
    return verdict.exit_code
