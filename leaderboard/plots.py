"""The board page's plots as inline SVG, drawn in Python (no plotting library, nothing loaded at view time)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from html import escape
from typing import NamedTuple

from harness.core.prompts import DIMENSIONS
from leaderboard.models import Board, Interval, Row


def pct(value: float) -> str:
    """0.5 → '50.0%'."""
    return f"{100 * value:.1f}%"


def rubric_of(dim: str, row: Row) -> Interval:
    """A row's score on one rubric dimension (empty when not scored)."""
    return row.rubric.get(dim, Interval())


def dimensions(board: Board) -> list[str]:
    """The rubric dimensions shown: the three of empathy first, then any other."""
    extra = sorted({d for r in board.rows for d in r.rubric} - set(DIMENSIONS))
    return [*DIMENSIONS, *extra]


_PCT_TICKS = (0, .25, .5, .75, 1)


class _Axis(NamedTuple):
    lo: float
    hi: float
    ticks: Sequence[float]
    fmt: Callable[[float], str]
    parity: float | None = None


def plots_section(board: Board) -> str:
    """The plots section: win rate with CIs, win rate vs length, rubric per dimension."""
    rows, dims = board.rows, dimensions(board)
    win = _row_chart(rows, [("", lambda r: r.win_rate)], _Axis(0, 1, _PCT_TICKS, pct, .5), bars=True)
    rubric = _row_chart(rows, [(d, partial(rubric_of, d)) for d in dims],
                        _Axis(1, 5, [1, 2, 3, 4, 5], lambda v: f"{v:g}"), bars=False)
    figures = [
        ("plot-win-rate", win, f"Win rate against {escape(board.anchor)} with 95 % CIs; the dashed line is parity (50 %)."),
        ("plot-length", _scatter(rows), _length_note(rows)),
        ("plot-rubric", rubric, "Rubric score (1–5) per empathy dimension with 95 % CIs."),
    ]
    return '<section><h2>Plots</h2><div class="plots">' + "".join(
        f'<figure id="{fid}">{svg}<figcaption>{cap} Control rows are amber and italic.</figcaption></figure>'
        for fid, svg, cap in figures) + "</div></section>"


def _label_width(rows: Sequence[Row]) -> int:
    return min(260, 16 + 7 * max((len(r.model) for r in rows), default=8))


def _cls(row: Row) -> str:
    return " control" if row.control else ""


def _tip(row: Row, iv: Interval, fmt: Callable[[float], str]) -> str:
    ci = "" if iv.low is None or iv.high is None else f" [{fmt(iv.low)}, {fmt(iv.high)}]"
    return f"<title>{escape(row.model)}: {fmt(iv.value) if iv.value is not None else 'n/a'}{ci}</title>"


def _marker(row: Row, x: float, y: float, tip: str) -> str:
    if row.control:  # a hollow diamond: controls stay distinguishable without colour
        return f'<path class="dot control" data-model="{escape(row.model)}" d="M{x:.1f} {y - 6:.1f}l6 6-6 6-6-6z">{tip}</path>'
    return f'<circle class="dot" data-model="{escape(row.model)}" cx="{x:.1f}" cy="{y:.1f}" r="4.5">{tip}</circle>'


def _whisker(row: Row, a: tuple[float, float], b: tuple[float, float]) -> str:
    cap = (0, 5) if a[1] == b[1] else (5, 0)
    lines = [(a[0], a[1], b[0], b[1])] + [(x - cap[0], y - cap[1], x + cap[0], y + cap[1]) for x, y in (a, b)]
    return "".join(f'<line class="whisker{_cls(row)}" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"/>'
                   for x1, y1, x2, y2 in lines)


def _scale(lo: float, hi: float, a: float, b: float) -> Callable[[float], float]:
    return lambda v: a + (min(max(v, lo), hi) - lo) / (hi - lo) * (b - a)


def _row_chart(rows: Sequence[Row], panels: Sequence[tuple[str, Callable[[Row], Interval]]], axis: _Axis, *,
               bars: bool) -> str:
    """One line per row, one panel per measure: bars (from the axis start) or dots, each with its CI whisker."""
    label_w, pw, gap, top, step = _label_width(rows), (420 if len(panels) == 1 else 230), 44, 30, 26
    height = top + step * len(rows) + 26
    parts = [f'<text class="{_cls(r).strip()}" x="{label_w - 8}" y="{top + i * step + step / 2 + 4:.0f}" '
             f'text-anchor="end">{escape(_short_label(r.model))}</text>' for i, r in enumerate(rows)]
    for p, (name, get) in enumerate(panels):
        x0 = label_w + gap / 2 + p * (pw + gap)
        sx = _scale(axis.lo, axis.hi, x0, x0 + pw)
        parts.append(f'<text class="title" x="{x0 + pw / 2:.0f}" y="16" text-anchor="middle">{escape(name.capitalize())}</text>')
        for t in axis.ticks:
            cls = "parity" if t == axis.parity else "grid"
            parts.append(f'<line class="{cls}" x1="{sx(t):.1f}" y1="{top - 4}" x2="{sx(t):.1f}" y2="{height - 22}"/>'
                         f'<text class="tick" x="{sx(t):.1f}" y="{height - 6}" text-anchor="middle">{_tick(axis.fmt(t))}</text>')
        for i, row in enumerate(rows):
            iv, y = get(row), top + i * step + step / 2
            if iv.value is None:
                parts.append(f'<text class="tick" x="{x0 + 4:.0f}" y="{y + 4:.0f}">not measured</text>')
                continue
            tip = _tip(row, iv, axis.fmt)
            if bars:
                x, w = sx(axis.lo), sx(iv.value) - sx(axis.lo)
                parts.append(f'<rect class="bar{_cls(row)}" data-model="{escape(row.model)}" x="{x:.1f}" y="{y - 8:.1f}" '
                             f'width="{w:.1f}" height="16">{tip}</rect>')
            if iv.low is not None and iv.high is not None:
                parts.append(_whisker(row, (sx(iv.low), y), (sx(iv.high), y)))
            if not bars:
                parts.append(_marker(row, sx(iv.value), y, tip))
    return _svg(label_w + len(panels) * (pw + gap), height, parts)


#: The scatter names at most this many models (the top of the board) and this many controls; every point keeps its
#: tooltip. More labels would only pile up (and placing them costs O(n²)).
SCATTER_LABELS = 40


def _scatter(rows: Sequence[Row]) -> str:
    """Win rate against mean words: a rising cloud means the judge pays for length, not empathy."""
    points = [r for r in rows if r.mean_words is not None and r.win_rate.value is not None]
    hi_words = max((r.mean_words or 0 for r in points), default=0) or 1
    xticks = _nice_ticks(hi_words)
    left, top, pw, ph = 64, 14, 520, 300
    sx, sy = _scale(0, xticks[-1], left, left + pw), _scale(0, 1, top + ph, top)
    parts = []
    for t in xticks:
        parts.append(f'<line class="grid" x1="{sx(t):.1f}" y1="{top}" x2="{sx(t):.1f}" y2="{top + ph}"/>'
                     f'<text class="tick" x="{sx(t):.1f}" y="{top + ph + 16}" text-anchor="middle">{t:g}</text>')
    for t in _PCT_TICKS:
        parts.append(f'<line class="{"parity" if t == .5 else "grid"}" x1="{left}" y1="{sy(t):.1f}" x2="{left + pw}" '
                     f'y2="{sy(t):.1f}"/><text class="tick" x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{_tick(pct(t))}</text>')
    parts.append(f'<text class="tick" x="{left + pw / 2}" y="{top + ph + 34}" text-anchor="middle">mean words per reply</text>'
                 f'<text class="tick" transform="rotate(-90)" x="{-(top + ph / 2)}" y="12" text-anchor="middle">win rate</text>')
    xy = [(sx(r.mean_words or 0), sy(r.win_rate.value or 0)) for r in points]
    named = [i for i, r in enumerate(points) if r.control][:SCATTER_LABELS] + \
        [i for i, r in enumerate(points) if not r.control][:SCATTER_LABELS]  # board order: the top models
    label_y = dict(zip(named, _nudged([(xy[i][0] + 8, xy[i][1] - 6) for i in named]), strict=True))
    for i, (row, (x, y)) in enumerate(zip(points, xy, strict=True)):
        iv = row.win_rate
        if iv.low is not None and iv.high is not None:
            parts.append(_whisker(row, (x, sy(iv.low)), (x, sy(iv.high))))
        parts.append(_marker(row, x, y, _tip(row, iv, pct)))
        if i in label_y:
            parts.append(f'<text class="{_cls(row).strip()}" x="{x + 8:.1f}" y="{label_y[i]:.1f}" font-size="11">'
                         f"{escape(_short_label(row.model.rsplit('/', 1)[-1], 28))}</text>")
    return _svg(left + pw + 170, top + ph + 44, parts)


def _nudged(anchors: Sequence[tuple[float, float]], height: float = 13, width: float = 150) -> list[float]:
    """Label baselines, moved down until no two labels in the same column overlap (the topmost placed first)."""
    ys: dict[int, float] = {}
    for i in sorted(range(len(anchors)), key=lambda i: anchors[i][1]):
        x, y = anchors[i]
        while any(abs(y - ys[j]) < height and abs(x - anchors[j][0]) < width for j in ys):
            y += height
        ys[i] = y
    return [ys[i] for i in range(len(anchors))]


def _tick(label: str) -> str:
    return label.replace(".0%", "%")


def _short_label(name: str, width: int = 36) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _nice_ticks(hi: float, n: int = 5) -> list[float]:
    mag = 10 ** math.floor(math.log10(hi / n))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= hi / n)
    return [i * step for i in range(math.ceil(hi / step) + 1)]


def _length_note(rows: Sequence[Row]) -> str:
    ranked = [r for r in rows if not r.control and r.mean_words is not None and r.win_rate.value is not None]
    r = _pearson([x.mean_words or 0 for x in ranked], [x.win_rate.value or 0 for x in ranked])
    corr = "" if r is None else f" Across ranked models, r = {r:+.2f} between length and win rate."
    return ("Win rate against mean reply length, to expose length bias: a judge that rewards longer replies lifts "
            f"the padded control and draws a rising line.{corr}")


def _pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    if len(xs) < 3:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx, syy = sum((x - mx) ** 2 for x in xs), sum((y - my) ** 2 for y in ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return None if sxx == 0 or syy == 0 else sxy / math.sqrt(sxx * syy)


def _svg(width: float, height: float, parts: Sequence[str]) -> str:
    return (f'<svg viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" role="img">'
            + "".join(parts) + "</svg>")
