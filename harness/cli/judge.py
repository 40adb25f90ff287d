"""``empathy validate-judge``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.cli.options import (
    Handler,
    add_judge_options,
    cache_dir,
    check_judge_server,
    check_model_option,
    judge_settings,
    writable_folder,
)
from harness.core.errors import HarnessError

if TYPE_CHECKING:
    from harness.cli.options import Subparsers


def add_commands(sub: Subparsers) -> dict[str, Handler]:
    """Add ``validate-judge``; returns its handler."""
    vj = sub.add_parser("validate-judge", help="measure a judge against human and expert empathy ratings",
                        description="--human-ratings: judge every within-dialogue pair of rated replies of a Welivita & "
                                    "Pu format CSV in both orders; report agreement with the human ratings (with CIs) "
                                    "beside 'the longer reply wins' and 'the source rated higher on average wins', "
                                    "Spearman (also within each source), the ranking of the five sources, position and "
                                    "length bias, and stress-test flip rates. --experts: rate the listener of each "
                                    "conversation 1-5 and report quadratic-weighted kappa and Spearman against three "
                                    "experts beside the paper's own rows. Give either or both; writes DIR/validity.json.")
    vj.add_argument("--human-ratings", default=None, metavar="FILE.csv",
                    help="ratings CSV in the Welivita & Pu format (dialog_id, …, response_<source>, rating_<source>)")
    vj.add_argument("--experts", default=None, metavar="DIR",
                    help="folder laid out like Kumar et al. 2025's data: annotations/empatheticdialogues/"
                         "{expert1,expert2,expert3,gpt,claude,gemini,crowd}_ratings.csv and "
                         "original_data/sample_empatheticdialogues.csv")
    vj.add_argument("--prior-ratings", default=None, metavar="FILE.csv",
                    help="ratings the 'source rated higher on average wins' baseline learns its source means from "
                         "(default: the other paper split of --human-ratings; with --split all, a seeded 2-fold "
                         "split by dialogue)")
    vj.add_argument("--split", default="all", help="all | paper_test | paper_train (the paper's rule)")
    vj.add_argument("--limit", type=int, default=None, help="first N dialogues (emotion-interleaved)")
    vj.add_argument("--rubric", action="store_true", help="also score every reply on the rubric (3 calls per reply)")
    vj.add_argument("--stress-limit", type=int, default=200, help="verdicts re-judged per stress test (default 200)")
    add_judge_options(vj)
    vj.add_argument("--seed", type=int, default=1234, help="bootstrap / sampling seed")
    vj.add_argument("--output", required=True, help="output folder")
    return {"validate-judge": cmd_validate_judge}


def cmd_validate_judge(args: argparse.Namespace) -> int:
    """Run ``empathy validate-judge``: the report's table on stdout, progress and where it went on stderr."""
    from harness.core.ui import console
    from harness.judge.judge import open_judge
    from harness.score.experts import load_experts
    from harness.score.validity import validate_judge

    if args.human_ratings is None and args.experts is None:
        raise HarnessError("validate-judge needs --human-ratings FILE.csv (Welivita & Pu ratings), --experts DIR "
                           "(Kumar et al. 2025's expert ratings), or both")
    ratings = Path(args.human_ratings) if args.human_ratings is not None else None
    if ratings is not None and not ratings.is_file():
        raise HarnessError(f"--human-ratings {ratings}: no such file (give the ratings CSV in the Welivita & Pu format)")
    prior = Path(args.prior_ratings) if args.prior_ratings is not None else None
    if prior is not None and (ratings is None or not prior.is_file()):
        raise HarnessError(f"--prior-ratings {prior}: " + ("it goes with --human-ratings" if ratings is None else
                           "no such file (give a ratings CSV in the Welivita & Pu format)"))
    experts = Path(args.experts) if args.experts is not None else None
    if experts is not None:
        load_experts(experts)  # a bad folder is an error before any model loads
    if args.stress_limit < 0:
        raise HarnessError(f"--stress-limit {args.stress_limit}: give the number of verdicts re-judged per stress "
                           "test, 0 or more (0 skips the stress tests; default 200)")
    if args.limit is not None and args.limit < 1:
        raise HarnessError(f"--limit {args.limit}: give the number of dialogues to judge, 1 or more")
    output = writable_folder("--output", args.output)
    settings = judge_settings(args, cache_dir(args))
    check_model_option("--judge", settings.model, backend=settings.backend, revision=settings.revision,
                       revision_option="--judge-revision")
    check_judge_server(settings)
    judge = open_judge(settings)
    try:
        result = validate_judge(judge, ratings, output, split=args.split, limit=args.limit, rubric=args.rubric,
                                stress_limit=args.stress_limit, seed=args.seed, prior_ratings=prior, experts=experts)
    finally:
        judge.backend.close()
        judge.cache.close()
    _print_validity_to_stdout(result)
    console.print(f"validity report written to {output / 'validity.json'}", soft_wrap=True)
    return 0


def _print_validity_to_stdout(result: dict[str, Any]) -> None:
    """The validity table on stdout, like ``eval``'s tables (a file or pipe gets whole rows)."""
    from harness.core.ui import report_console
    from harness.score.validity import print_validity

    print_validity(result, report_console(pipe_width=150))
