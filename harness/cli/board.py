"""``empathy leaderboard init|controls|build|publish|verify`` and ``empathy submit``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cli.options import Handler, add_judge_options, cache_dir, judge_settings, writable_file
from harness.core.errors import HarnessError

if TYPE_CHECKING:
    from harness.cli.options import Subparsers

TOKEN_ENV = "HF_TOKEN"


def add_commands(sub: Subparsers) -> dict[str, Handler]:
    """Add ``leaderboard`` (with its actions) and ``submit``; returns their handlers."""
    lb = sub.add_parser("leaderboard", help="build, check and publish an empathy leaderboard",
                        description="A board admits runs that match its protocol (board.yaml), rates them "
                                    "(Bradley–Terry, anchored, bootstrap CIs) and publishes one folder to the Hub.")
    act = lb.add_subparsers(dest="board_command", metavar="ACTION")

    init = act.add_parser("init", help="write a board protocol (board.yaml) from a reference run",
                          description="Every field of the protocol is taken from RUN: dataset hash, prompt hash, "
                                      "decoding, judge fingerprint, anchor model fingerprint.")
    init.add_argument("--run", required=True, help="a completed run made exactly as board runs must be made")
    init.add_argument("--name", required=True, help="the board's name")
    init.add_argument("--anchor", default="base", help="the reference every model is compared with (default base)")
    init.add_argument("--anchor-name", default=None, help="how the anchor is shown (default: its model name)")
    init.add_argument("--min-scored", type=int, default=20, help="fewest scored dialogues vs the anchor (default 20)")
    init.add_argument("--min-parse-rate", type=float, default=0.9, help="judge health floor (default 0.9)")
    init.add_argument("--max-flip-rate", type=float, default=0.6, help="judge health ceiling (default 0.6)")
    init.add_argument("--min-label-mass", type=float, default=0.5, help="judge health floor, logits (default 0.5)")
    init.add_argument("--allow-unhealthy-judge", action="store_true",
                      help="admit runs whose judge failed its health check (sanity probe, tie share, label mass, "
                           "flips); for tests and demos only — the board then says so on its first line")
    init.add_argument("--style-control", default=None, metavar="F,F,…|none",
                      help="style features the style-controlled rating column holds equal (default: words, "
                           "list_items, bold, headers, exclamations, emoji, sympathy; 'none': no such column)")
    init.add_argument("--output", required=True, help="protocol file to write, e.g. board.yaml")

    ctl = act.add_parser("controls", help="judge the control rows (null model, verbose padding, anchor vs itself, "
                                          "human replies) with the board's judge")
    ctl.add_argument("--board", required=True, help="the board protocol (board.yaml)")
    ctl.add_argument("--reference", required=True, help="the anchor's reference set file")
    add_judge_options(ctl)
    ctl.add_argument("--output", required=True, help="folder for the control runs")

    bd = act.add_parser("build", help="admit runs, rate them, write the board folder",
                        description="Writes leaderboard.json/.csv/.parquet, index.html, README.md (dataset card), "
                                    "rejected.json and results/<run_id>/ for each admitted run.")
    bd.add_argument("--board", required=True, help="the board protocol (board.yaml)")
    bd.add_argument("--runs", nargs="*", default=[], metavar="DIR", help="run folders (or folders of run folders)")
    bd.add_argument("--submissions", default=None, metavar="DIR", help="a folder of submitted run folders")
    bd.add_argument("--from-hub", default=None, metavar="ORG/NAME",
                    help="also take the runs of the board's dataset repo (results/ and submissions/)")
    bd.add_argument("--endpoint", default=None, help="Hub endpoint (default huggingface.co)")
    bd.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the rating CIs (default 1000)")
    bd.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    bd.add_argument("--reset-ledger", action="store_true",
                    help="start the board's record anew when its ledger.json is not signed with this board's key "
                         "(every published run then counts as self-reported and as a new arrival)")
    bd.add_argument("--output", required=True, help="the board folder to write")

    pb = act.add_parser("publish", help="publish a board folder to the Hub in one commit (dry run by default)")
    pb.add_argument("site", metavar="SITE", help="the folder 'leaderboard build' wrote")
    pb.add_argument("--repo", required=True, help="the board's dataset repo, e.g. my-org/empathy-board")
    pb.add_argument("--push", action="store_true", help="really publish (else print what would be committed)")
    pb.add_argument("--space", default=None, metavar="ORG/NAME", help="also publish index.html as a static Space")
    pb.add_argument("--endpoint", default=None, help="Hub endpoint (default huggingface.co)")
    pb.add_argument("--message", default=None, help="commit message")

    vf = act.add_parser("verify", help="re-judge a submitted run with the board's judge (status verified)")
    vf.add_argument("run", metavar="RUN_DIR", help="the submitted run folder")
    vf.add_argument("--board", required=True, help="the board protocol (board.yaml)")
    vf.add_argument("--reference", action="append", required=True, metavar="[NAME=]FILE",
                    help="the anchor's reference set file, and NAME=FILE for every other comparison the board "
                         "requires (repeatable), e.g. --reference refs/base.json --reference direct=refs/direct.json")
    vf.add_argument("--regenerate", type=int, default=0, metavar="N",
                    help="also regenerate the first N dialogues with the declared model; the run is verified only if "
                         "enough are identical to the submitted replies (--min-match)")
    vf.add_argument("--min-match", type=float, default=0.9, metavar="RATE",
                    help="with --regenerate: the share of regenerated replies that must be identical (default 0.9)")
    vf.add_argument("--model-dir", default=None, metavar="DIR",
                    help="with --regenerate, for a submission declaring a local model: your own copy of it (its "
                         "fingerprint must match; a path named by a submission is never read)")
    vf.add_argument("--device", default="auto", help="device for --regenerate")
    add_judge_options(vf)
    vf.add_argument("--output", required=True, help="folder for the re-judged run (give it to 'leaderboard build "
                                                    "--runs': it goes on the board as verified, or disputed)")

    sm = sub.add_parser("submit", help="submit a run to a board: validate it, then open a pull request on the Hub")
    sm.add_argument("run", metavar="RUN_DIR", help="a completed run folder")
    sm.add_argument("--repo", required=True, help="the board's dataset repo, e.g. my-org/empathy-board")
    sm.add_argument("--board", default=None, help="the board protocol, to check the run before submitting")
    sm.add_argument("--endpoint", default=None, help="Hub endpoint (default huggingface.co)")
    sm.add_argument("--model-repo", default=None, metavar="ORG/MODEL",
                    help="also open a pull request on the model's repo adding .eval_results/empathy.yaml (win rates, "
                         "rubric means; the board as the benchmark): the scores show on the model's Hub page")
    sm.add_argument("--allow-unhealthy-judge", action="store_true",
                    help="submit a run whose judge failed its health check (for tests and demos only: the pull "
                         "request then says so on its first line)")
    return {"leaderboard": cmd_leaderboard, "submit": cmd_submit}


def _token() -> str | None:
    return os.environ.get(TOKEN_ENV) or None


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Run ``empathy leaderboard ACTION``."""
    actions = {"init": _init, "controls": _controls, "build": _build, "publish": _publish, "verify": _verify}
    if args.board_command not in actions:
        raise HarnessError("usage: empathy leaderboard init|controls|build|publish|verify … (see --help)")
    return actions[args.board_command](args)


def _init(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from harness.core.ui import console, print_banner
    from harness.evaluate.runs import load_run
    from harness.score.health import health_rule
    from leaderboard.protocol import check_own_run, protocol_from_run, save_protocol

    output = writable_file("--output", args.output, example="board.yaml")  # before any work
    result = load_run(args.run).result
    # (judge_problem is None exactly when judge_ok: load_run recomputes both)
    banner = health_rule(result.health.judge_problem, allow=args.allow_unhealthy_judge,
                         what=f"leaderboard init --run {args.run}")
    protocol = protocol_from_run(result, name=args.name, anchor=args.anchor, anchor_name=args.anchor_name,
                                 min_scored=args.min_scored, min_parse_rate=args.min_parse_rate,
                                 max_flip_rate=args.max_flip_rate, min_label_mass=args.min_label_mass,
                                 require_judge_ok=not args.allow_unhealthy_judge,
                                 style_control=style_features(args.style_control))
    check_own_run(result, protocol, args.run)
    try:
        save_protocol(protocol, output)
    except OSError as exc:
        raise HarnessError(f"--output {args.output}: cannot write it ({exc.strerror or exc})") from exc
    if banner:
        print_banner(banner)
    console.print(f"board protocol {protocol.hash} written to {escape(args.output)}", soft_wrap=True)
    return 0


def style_features(value: str | None) -> tuple[str, ...] | None:
    """``--style-control``: the default set, none, or the features named (unknown names are errors)."""
    from leaderboard.protocol import DEFAULT_STYLE_CONTROL

    if value is None:
        return DEFAULT_STYLE_CONTROL
    if value.strip().lower() == "none":
        return None
    return tuple(f.strip() for f in value.split(",") if f.strip())


def _controls(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from harness.core.ui import console, print_banner
    from leaderboard.controls import run_controls
    from leaderboard.protocol import load_protocol

    runs, banner = run_controls(load_protocol(args.board), judge=judge_settings(args, cache_dir(args)),
                                reference=Path(args.reference), output=Path(args.output))
    if banner:
        print_banner(banner)
    console.print(f"{len(runs)} control runs written under {escape(args.output)}", soft_wrap=True)
    return 0


def _build(args: argparse.Namespace) -> int:
    import tempfile

    from rich.markup import escape

    from harness.cli.board_table import print_board
    from harness.core.settings import default_cache_dir
    from harness.core.ui import console
    from leaderboard.build import build_board, write_site
    from leaderboard.loading import CACHE_FOLDER
    from leaderboard.protocol import load_protocol
    protocol = load_protocol(args.board)
    paths = [Path(p) for p in args.runs]
    untrusted = [Path(args.submissions)] if args.submissions else []
    published: list[Path] = []
    ledgers = [Path(args.output)]  # the board's record, when --output is the board built last time
    built_from = None
    landed: dict[Path, tuple[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="empathy-board-") as pulled_dir:
        if args.from_hub:
            from leaderboard.submit import landed_dates, pull_board

            pulled, built_from = pull_board(args.from_hub, Path(pulled_dir), endpoint=args.endpoint, token=_token())
            published += [pulled / "results"] if (pulled / "results").is_dir() else []  # the board's own copies
            untrusted += [pulled / "submissions"] if (pulled / "submissions").is_dir() else []
            ledgers.insert(0, pulled)
            landed = landed_dates(args.from_hub, pulled, built_from, endpoint=args.endpoint, token=_token())
        if not paths and not untrusted and not published:
            raise HarnessError("no runs: give --runs DIR …, --submissions DIR or --from-hub ORG/NAME")
        key = build_key(ledgers)
        built = build_board(paths, protocol, untrusted=untrusted, published=published, ledgers=ledgers, key=key,
                            n_boot=args.n_boot, seed=args.seed, built_from=built_from, landed=landed,
                            reset_ledger=args.reset_ledger, cache=default_cache_dir() / CACHE_FOLDER)
        files = write_site(built, protocol, Path(args.output), key=key)
    for note in built.notes:
        console.print(f"[yellow]warning:[/] {escape(note)}", soft_wrap=True)
    print_board(built.board, n_files=len(files), output=args.output)
    return 0


def build_key(ledgers: list[Path]) -> bytes:
    """The board key a build signs with: the one here, or a new one for a board that has no ledger yet.

    A board with a ledger and no key here (another machine, a CI job without the secret) is refused: a fresh key
    would make every record of the board unreadable and sign a ledger nobody else can check.
    """
    from leaderboard.trust import KEY_ENV, LEDGER, board_key, key_file, read_record

    key = board_key()
    if key is not None:
        return key
    for folder in ledgers:
        record = read_record(folder / LEDGER) if (folder / LEDGER).is_file() else None
        if record is not None:
            raise HarnessError(f"the board's ledger ({folder / LEDGER}) is signed with board key "
                               f"{record.get('key_id')!r}, and this machine has no board key: set {KEY_ENV} to the "
                               f"board's key (in CI: a secret), or copy its key file to {key_file()}")
    made = board_key(create=True)
    assert made is not None
    return made


def _publish(args: argparse.Namespace) -> int:
    from harness.core.ui import console
    from leaderboard.publish import plan_publish, publish

    site = Path(args.site)
    if not (site / "leaderboard.json").is_file():
        raise HarnessError(f"{site} is not a board folder (no leaderboard.json): run 'empathy leaderboard build' first")
    plan = plan_publish(site, repo=args.repo, message=args.message)
    print(f"{'publishing' if args.push else 'dry run — would commit'} to dataset {plan.repo}: {plan.message!r}")
    for path, size in plan.files:
        print(f"  {size:>10,}  {path}")
    if not args.push:
        console.print("nothing was published: add --push (with the token in $HF_TOKEN) to publish")
        return 0
    urls = publish(site, repo=args.repo, space=args.space, endpoint=args.endpoint, token=_token(),
                   message=args.message)
    for what, url in urls.items():
        print(f"{what}: {url}")
    return 0


def verify_references(items: list[str], anchor: str) -> dict[str, Path]:
    """``--reference`` of ``leaderboard verify``: a bare FILE is the anchor's set, NAME=FILE any other."""
    from harness.cli.options import parse_references

    bare = [i for i in items if "=" not in i or Path(i).is_file()]
    if len(bare) > 1:
        raise HarnessError(f"--reference: only the anchor's set may be given without a name, got {bare}: name the "
                           "others, e.g. --reference direct=refs/direct.json")
    refs = {anchor: Path(bare[0])} if bare else {}
    for name, path in parse_references([i for i in items if i not in bare]).items():
        if name in refs:
            raise HarnessError(f"--reference: {name!r} is given twice")
        refs[name] = path
    return refs


def _verify(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from harness.core.ui import console
    from leaderboard.protocol import load_protocol
    from leaderboard.verify import verify_run

    protocol = load_protocol(args.board)
    references = verify_references(args.reference, protocol.anchor.comparison.removeprefix("vs_"))
    record = verify_run(Path(args.run), protocol=protocol, judge=judge_settings(args, cache_dir(args)),
                        references=references, output=Path(args.output), regenerate=args.regenerate,
                        min_match=args.min_match, device=args.device,
                        model_dir=Path(args.model_dir) if args.model_dir else None)
    for name, c in record["comparisons"].items():
        console.print(f"{name}: submitted win rate {c['submitted_win_rate']}, re-judged {c['rejudged_win_rate']} "
                      f"(CI {c['rejudged_ci']}) — {'agrees' if c['agree'] else 'does not agree'}", soft_wrap=True)
    if "regeneration" in record:
        g = record["regeneration"]
        console.print(f"regeneration: {g['identical']} of {g['n']} replies identical ({g['rule']})", soft_wrap=True)
    for reason in record["reasons"]:
        console.print(f"[red]disputed:[/] {escape(reason)}", soft_wrap=True)
    console.print(f"{record['status']}: re-judged run in {escape(args.output)}", soft_wrap=True)
    return 0 if record["status"] == "verified" else 1


def cmd_submit(args: argparse.Namespace) -> int:
    """Run ``empathy submit``."""
    from harness.evaluate.runs import load_run
    from harness.score.health import health_rule
    from leaderboard.admit import run_id
    from leaderboard.submit import submit

    run = load_run(args.run)
    banner = health_rule(run.result.health.judge_problem, allow=args.allow_unhealthy_judge,
                         what=f"submitting {args.run}")
    if args.board:
        from leaderboard.protocol import load_protocol, mismatches

        problems = mismatches(run.result, load_protocol(args.board))
        if problems:
            raise HarnessError(f"{args.run} would be refused by the board: {'; '.join(problems)}")
    model_pr = None
    if args.model_repo:  # first: a repo or a token that fails here leaves nothing written anywhere
        from leaderboard.eval_results import open_eval_results_pr
        from leaderboard.submit import submission_files

        submission_files(run, run_id(run), _token())  # the board submission's own checks, before any write
        model_pr = open_eval_results_pr(run, model_repo=args.model_repo, board_repo=args.repo, run_id=run_id(run),
                                        endpoint=args.endpoint, token=_token(), note=banner)
    url = submit(run.path, repo=args.repo, run_id=run_id(run), endpoint=args.endpoint, token=_token(),
                 note=banner, run=run)
    if banner:
        print(banner)
    print(f"pull request opened: {url}")
    if model_pr:
        print(f"eval results pull request opened on {args.model_repo}: {model_pr}")
    return 0
