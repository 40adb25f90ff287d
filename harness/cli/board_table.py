"""The console view of a built board: the table on stdout, warnings and refusals on stderr."""

from __future__ import annotations

from leaderboard.models import Board, Interval


def _range(low: int | None, high: int | None) -> str:
    return "—" if low is None or high is None else (f"{low}–{high}" if low != high else str(low))


def _interval(iv: Interval) -> str:
    return "—" if iv.value is None else f"{iv.value:.0f} [{iv.low:.0f}, {iv.high:.0f}]"


def print_board(board: Board, *, n_files: int, output: str) -> None:
    """The board on stdout (the banner first, whole model names), warnings and refusals on stderr."""
    from rich.markup import escape
    from rich.table import Table

    from harness.core.ui import add_identity_column, console, print_banner, report_console
    from leaderboard.build import rejected_summary
    from leaderboard.card import style_line

    out = report_console()
    if board.banner:
        print_banner(board.banner, out)
    table = Table(title=escape(f"{board.name} (judge {board.judge}, anchor {board.anchor} = {board.anchor_value:g})"),
                  title_justify="left")
    table.add_column("rank")
    add_identity_column(table, "model")
    styled = board.style_control is not None and board.style_control.refused is None
    for col in ("BT [95% CI]", *(("BT style-controlled", "rank (style)") if styled else ()), "win rate vs anchor",
                "trust"):
        table.add_column(col)
    for r in board.rows:
        rank = _range(r.rank_low, r.rank_high)
        wr = "—" if r.win_rate.value is None else f"{r.win_rate.value:.1%}"
        ratings = [_interval(r.bt), *([_interval(r.bt_style), _range(r.rank_style_low, r.rank_style_high)]
                                      if styled else [])]
        table.add_row(rank, escape(r.model), *map(escape, ratings), wr, r.trust_label)
    out.print(table)
    if board.style_control is not None:
        console.print(escape(style_line(board)), soft_wrap=True)
    for w in board.notices:
        console.print(f"[yellow]warning:[/] {escape(w)}", soft_wrap=True)
    for line in rejected_summary(board.rejected):
        console.print(f"[red]refused[/] {escape(line)}", soft_wrap=True)
    console.print(f"{len(board.rows)} rows, {len(board.rejected)} refused; {n_files} files in {escape(output)}",
                  soft_wrap=True)
