"""``empathy tasks list|validate``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from harness.cli.options import Handler
from harness.core.errors import HarnessError

if TYPE_CHECKING:
    from harness.cli.options import Subparsers


def add_commands(sub: Subparsers) -> dict[str, Handler]:
    """Add ``tasks``; returns its handler."""
    tasks = sub.add_parser("tasks", help="the lm-eval tasks")
    tasks_sub = tasks.add_subparsers(dest="tasks_command", metavar="ACTION")
    tasks_sub.add_parser("list", help="list the tasks and their folder (for lm_eval --include_path)")
    tasks_sub.add_parser("validate", help="load every task YAML through lm-eval and check it")
    return {"tasks": cmd_tasks}


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
