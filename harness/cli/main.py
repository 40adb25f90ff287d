"""The ``empathy`` command line: eval, refs, tasks, demo, validate-judge, distill, train, pipeline, leaderboard."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from harness import __version__
from harness.cli import board, evaluate, gate, judge, judge_train, models, pairs, tasks, train
from harness.cli.options import Handler
from harness.core.allocator import keep_freed_memory
from harness.core.errors import HarnessError, did_you_mean


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``empathy`` command."""
    return _parser_and_handlers()[0]


def _parser_and_handlers() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    parser = argparse.ArgumentParser(
        prog="empathy",
        description="Measure empathy in small language models: lm-eval tasks, a position-controlled judge, CIs.",
    )
    parser.add_argument("--version", action="version", version=f"empathy-harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    handlers: dict[str, Handler] = {}
    # demo is added last so that `empathy --help` lists it last
    for add in (evaluate.add_commands, tasks.add_commands, judge.add_commands, judge_train.add_commands,
                train.add_commands, pairs.add_commands, board.add_commands, gate.add_commands, models.add_commands,
                evaluate.add_demo_command):
        handlers.update(add(sub))
    _describe(parser)
    return parser, handlers


class _Formatter(argparse.HelpFormatter):
    """Help that names each option's default (unless its text already does) and keeps paragraphs."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if ("default" not in text and action.default not in (None, False, [], argparse.SUPPRESS)
                and action.option_strings):
            text += " (default: %(default)s)"
        return text


def _describe(parser: argparse.ArgumentParser) -> None:
    """Every command gets the formatter, and a description (its one-line help when it has no longer one)."""
    parser.formatter_class = _Formatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                if not sub.description:
                    sub.description = helps.get(name)
                _describe(sub)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 check failed, 2 usage or input error, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, handlers = _parser_and_handlers()
    if argv and not argv[0].startswith("-") and argv[0] not in handlers:
        print(f"empathy: unknown command {argv[0]!r}: {did_you_mean(argv[0], handlers)}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    keep_freed_memory()  # numpy's large temporaries reuse freed memory (harness.core.allocator)
    # library deprecation notices (trl, transformers) are for developers, not for a user's run
    warnings.filterwarnings("ignore", category=FutureWarning)
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
