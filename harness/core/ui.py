"""Rich console and progress bars (stderr), shared by every long step."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar; yields a function that advances it."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def _fmt(x: object, pct: bool = True) -> str:
    if not isinstance(x, int | float) or x != x:  # None or NaN
        return "—"
    return f"{x:.1%}" if pct else f"{x:.2f}"


def print_summary(result: dict[str, object]) -> None:
    """A rich table of a results.json: both comparisons with CIs, then the rubric."""
    from rich.table import Table

    table = Table(title=f"empathy — {result.get('model')}", title_justify="left")
    for col in ("vs", "win rate", "95% CI", "LC", "ties", "flips", "scored", "unscored"):
        table.add_column(col, justify="left" if col == "vs" else "right", no_wrap=True)
    for name, s in result.items():
        if not (isinstance(s, dict) and "win_rate" in s):
            continue
        table.add_row(
            name.removeprefix("vs_"),
            _fmt(s["win_rate"]),
            f"{_fmt(s['ci_low'])}–{_fmt(s['ci_high'])}",
            _fmt(s.get("lc_win_rate")),
            _fmt(s["tie_rate"]),
            _fmt(s["position_flip_rate"]),
            str(s["n_scored"]),
            str(s["n_unscored"]),
        )
    console.print(table)
    console.print("LC: length-controlled win rate; flips: position-flip rate (verdict changed with the order)")
    rubric = result.get("rubric")
    if isinstance(rubric, dict):
        rt = Table(title="rubric (1–5, judge)", title_justify="left")
        rt.add_column("system")
        for dim in rubric:
            rt.add_column(dim, justify="right")
        rows = {"candidate": rubric}
        refs = result.get("rubric_references")
        if isinstance(refs, dict):
            rows.update(refs)
        for system, dims in rows.items():
            rt.add_row(system, *(f"{_fmt(d['mean'], False)} [{_fmt(d['ci_low'], False)}–{_fmt(d['ci_high'], False)}]"
                                 for d in dims.values()))
        console.print(rt)
    warnings = result.get("warnings")
    for w in warnings if isinstance(warnings, list) else []:
        console.print(f"[yellow]warning:[/] {w}")
