"""Rich console and progress bars (stderr), shared by every long step."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from harness.core.records import RunResult

console = Console(stderr=True)
#: The width a command's result gets in a file or pipe: wide enough that no table row is cut or wrapped
#: (a table is only as wide as its cells; a terminal keeps its own width).
PIPE_WIDTH = 1000


def report_console(*, pipe_width: int = PIPE_WIDTH) -> Console:
    """A console for a command's result on stdout: the terminal's width on a TTY, ``pipe_width`` in a file or pipe."""
    return Console(width=None if sys.stdout.isatty() else pipe_width)


def add_identity_column(table: Table, header: str, **kw: Any) -> None:
    """Add a column that tells rows apart (a model name, a path): never cut to '…', folded in a narrow terminal.

    Two models whose names share a prefix must not print alike.
    """
    table.add_column(header, overflow="fold", **kw)


def print_banner(banner: str, out: Console | None = None) -> None:
    """An unhealthy-judge banner: bold red, escaped, never wrapped (the first line of a report)."""
    from rich.markup import escape

    (out or console).print(f"[bold red]{escape(banner)}[/]", soft_wrap=True)


def short_name(model: str) -> str:
    """A model's last path part, for a bar's label (the phase line above it names the model in full)."""
    return model.rstrip("/").rsplit("/", 1)[-1] or model


def new_progress() -> Progress:
    """A rich Progress on stderr with the harness's columns: what it counts, bar, done/total, elapsed, remaining."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=console, transient=False)


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar; yields a function that advances it."""
    with new_progress() as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def _fmt(x: object, pct: bool = True) -> str:
    if not isinstance(x, int | float) or x != x:  # None or NaN
        return "—"
    return f"{x:.1%}" if pct else f"{x:.2f}"


def win_rate_ci(stats: Any) -> str:
    """A comparison's win rate with its 95 % CI: "61.0% [52.0%–70.0%]" ("—" where not scored)."""
    return f"{_fmt(stats.win_rate)} [{_fmt(stats.ci_low)}–{_fmt(stats.ci_high)}]"


def print_summary(result: RunResult) -> None:
    """Rich tables of a run (on stdout): every comparison with CIs, the rubric, run health, then warnings."""
    out = report_console(pipe_width=150)  # a file or pipe gets whole rows
    if result.demo:
        out.print("[bold red]DEMO[/]: random weights — these numbers are noise, not a measurement of empathy")
    table = Table(title=f"empathy — {result.model}", title_justify="left")
    for col in ("vs", "win rate", "95% CI", "LC", "LC 95% CI", "ties", "flips", "scored", "unscored"):
        table.add_column(col, justify="left" if col == "vs" else "right", no_wrap=True)
    for name, s in result.comparisons.items():
        table.add_row(name.removeprefix("vs_"), _fmt(s.win_rate), f"{_fmt(s.ci_low)}–{_fmt(s.ci_high)}",
                      _fmt(s.lc_win_rate), f"{_fmt(s.lc_ci_low)}–{_fmt(s.lc_ci_high)}", _fmt(s.tie_rate),
                      "n/a" if result.health.order_free else _fmt(s.position_flip_rate), str(s.n_scored),
                      str(s.n_unscored))
    out.print(table)
    out.print("LC: length-controlled win rate; flips: position-flip rate (verdict changed with the order)"
              + ("; n/a: order-free judge (each reply scored alone)" if result.health.order_free else ""))
    if result.style is not None:
        for name, diffs in result.style.largest_differences.items():
            shown = ", ".join(f"{d.feature} {d.difference_sd:+.1f} SD ({d.candidate:.3g} vs {d.reference:.3g})"
                              for d in diffs)
            out.print(f"style vs {name.removeprefix('vs_')}: {shown or 'no difference'}", soft_wrap=True)
    elif result.schema_version == 2:
        out.print("style: none recorded (a schema-2 run: re-run 'empathy eval' to profile its replies)")
    h = result.health
    total = sum(d.n_scored + d.n_unscored for d in result.rubric.values())
    unscored = sum(d.n_unscored for d in result.rubric.values())
    if total:  # a judge without rubric scores (a one-output reward model): no table of dashes, its warning says why
        rt = Table(title="rubric (1–5, judge)", title_justify="left")
        rt.add_column("system")
        for dim in result.rubric:
            rt.add_column(dim, justify="right")
        for system, dims in {"candidate": result.rubric, **result.rubric_references}.items():
            rt.add_row(system, *(f"{_fmt(d.mean, False)} [{_fmt(d.ci_low, False)}–{_fmt(d.ci_high, False)}]"
                                 for d in dims.values()))
        out.print(rt)
    rubric = f", rubric parse rate {_fmt(h.rubric_parse_rate)} ({unscored} of {total} scores unscored)" if total else ""
    bias = "n/a: order-free judge" if h.order_free else _fmt(h.position_bias, False)
    mass = "" if h.order_free else f", label mass {_fmt(h.label_mass_mean, False)} (min {_fmt(h.label_mass_min, False)})"
    out.print(f"judge health: parse rate {_fmt(h.parse_rate)}{rubric}, tie-label rate {_fmt(h.tie_rate)}, position bias "
              f"{bias}{mass}; judge {result.judge.fingerprint}")
    v = result.judge_validity
    out.print(v.line() if v else "judge validity: not measured — 'empathy validate-judge' measures this judge against "
              "human ratings (then --judge-validity)", soft_wrap=True)
    for w in result.warnings:
        out.print(f"[yellow]warning:[/] {w}")
