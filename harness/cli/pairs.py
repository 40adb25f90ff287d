"""``empathy pairs export``: judge-labelled preference pairs from evaluation runs, as DPO rows for the sidecar."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cli.options import Handler, writable_file

if TYPE_CHECKING:
    from harness.cli.options import Subparsers


def add_commands(sub: Subparsers) -> dict[str, Handler]:
    """Add ``pairs`` (action ``export``)."""
    pairs = sub.add_parser("pairs", help="preference pairs from judged runs (DPO data)",
                           description="Turn the judge's verdicts of evaluation runs into DPO-ready preference "
                                       "pairs (trl's conversational prompt / chosen / rejected).")
    act = pairs.add_subparsers(dest="pairs_command", metavar="ACTION")
    ex = act.add_parser("export", help="write pairs.jsonl from one or more runs",
                        description="A pair per judgment whose two answer orders agree and whose P(chosen) reaches "
                                    "--min-p; dialogues of the evaluation set are never exported. Every row carries "
                                    "its provenance (judge fingerprint, run id, dialogue, both verdicts, P(chosen)).")
    ex.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (empathy eval … --output DIR)")
    ex.add_argument("--output", required=True, help="the JSONL file to write (a manifest goes beside it)")
    ex.add_argument("--reference", action="append", default=[], metavar="NAME=FILE",
                    help="a reference set the runs were judged against (default: the path each run's manifest "
                         "names, when its hash is the run's)")
    ex.add_argument("--min-p", type=float, default=0.6,
                    help="keep a pair only when the judge's P(chosen) is at least this (default 0.6; 0 keeps the "
                         "pairs of a judge without probabilities, e.g. generate mode)")
    ex.add_argument("--eval-dataset", default="bundled",
                    help="the evaluation set whose dialogues are never exported (default bundled)")
    ex.add_argument("--eval-limit", type=int, default=None, help="only the first N of the evaluation set")
    ex.add_argument("--allow-mixed-judges", action="store_true",
                    help="export runs judged by different judges together (refused by default)")
    ex.add_argument("--workers", type=int, default=None,
                    help="processes that check and read the runs (default: one per core, up to 8, from 4 runs on; "
                         "1: this process only)")
    return {"pairs": cmd_pairs}


def cmd_pairs(args: argparse.Namespace) -> int:
    """Run ``empathy pairs export``."""
    from rich.markup import escape
    from rich.table import Table

    from harness.cli.options import parse_references
    from harness.core.errors import HarnessError
    from harness.core.ui import console, report_console
    from harness.train.pairs import RULES, ExportConfig, export_pairs, manifest_path

    if args.pairs_command != "export":
        raise HarnessError("give an action: empathy pairs export RUN_DIR … --output pairs.jsonl")
    output = writable_file("--output", args.output, example="pairs.jsonl")
    cfg = ExportConfig(runs=[Path(r) for r in args.runs], output=output, references=parse_references(args.reference),
                       min_p=args.min_p, eval_dataset=args.eval_dataset, eval_limit=args.eval_limit,
                       allow_mixed_judges=args.allow_mixed_judges, workers=args.workers)
    manifest = export_pairs(cfg)
    table = Table(title=f"{manifest['pairs']} pairs from {manifest['judgments']} judgments", title_justify="left")
    table.add_column("rule")
    table.add_column("dropped", justify="right")
    for rule in RULES:
        table.add_row(rule, str(manifest["dropped"][rule]))
    report_console().print(table)
    for run in manifest["runs"]:
        for note in run["notes"]:
            console.print(f"[yellow]note:[/] {escape(run['path'])}: {escape(note)}", soft_wrap=True)
    console.print(f"{manifest['pairs']} pairs written to {escape(str(output))} (manifest "
                  f"{escape(str(manifest_path(output)))}; {len(manifest['runs'])} runs read in "
                  f"{manifest['processes']} process{'es' if manifest['processes'] > 1 else ''})", soft_wrap=True)
    return 0
