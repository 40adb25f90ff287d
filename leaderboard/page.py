"""The board's static page: one self-contained HTML file with inline CSS, a plain-JS sortable table and SVG plots.

Nothing on the page loads from anywhere (no CDN, font, script or image); a Content-Security-Policy pinned to the
hashes of the page's own style and script has the browser enforce that, and keeps a script injected through a
submitter's string inert even if one ever slipped past escaping. Only model links point off the page.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Callable, Sequence
from functools import partial
from html import escape
from typing import NamedTuple

from harness.core.prompts import DIMENSIONS
from leaderboard.models import Board, Interval, Row

Cell = tuple[str, float | str | None]
"""A table cell: its inner HTML and its sort key (None: missing, sorted last)."""

CONTROL_NOTES = {
    "null_model": "the same reply to every dialogue",
    "verbose_padding": "replies padded with filler: length bait",
    "anchor_self": "the anchor judged against itself",
    "human": "human-written replies",
}
_LEFT = {"model", "revision", "judge", "date", "harness", "status"}

_CSS = """
:root{color-scheme:light;--ink:#1f2933;--muted:#5f6b77;--line:#dde2e7;--amber:#b45309}
body{margin:0 auto;max-width:1480px;padding:24px 28px 40px;color:var(--ink);background:#fff;
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
h1{font-size:26px;margin:0}h2{font-size:18px;margin:30px 0 10px}
code{font:12px ui-monospace,Menlo,"DejaVu Sans Mono",monospace;background:#f1f4f7;padding:1px 4px;border-radius:3px}
.meta{display:flex;flex-wrap:wrap;gap:4px 24px;margin:8px 0 0;color:var(--muted)}.meta b{color:var(--ink)}
.warnings{margin:18px 0;padding:10px 16px;background:#fff7e6;border:1px solid #f5c26b;border-left:6px solid #d97706;
border-radius:6px}.warnings h2{margin:0 0 4px;font-size:16px;color:#92400e}.warnings ul{margin:0;padding-left:20px}
.howto{margin:16px 0;padding:8px 16px;background:#f7f9fb;border:1px solid var(--line);border-radius:6px;color:#334155}
.howto summary{font-weight:600;cursor:pointer}.howto ul{margin:6px 0;padding-left:20px}
.scroll{overflow-x:auto;border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;width:100%;font-size:13px;font-variant-numeric:tabular-nums}
th,td{padding:5px 9px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap;vertical-align:top}
th{background:#eef2f6;font-weight:600;vertical-align:bottom}th.left,td.left{text-align:left}
th button{all:unset;cursor:pointer}th button:focus-visible{outline:2px solid #2563eb}
th[aria-sort=ascending] button::after{content:" \\25B2"}th[aria-sort=descending] button::after{content:" \\25BC"}
tbody tr:hover td{background:#f5f8ff}.ci{display:block;color:var(--muted);font-size:11px}
tr.control td{font-style:italic;background:#fffaf0;color:#4b3a1f}
.badge{display:inline-block;margin-left:6px;padding:0 7px;border-radius:9px;font-size:11px;font-style:normal;
font-weight:600;background:#e2e8f0;color:#334155}.badge.control{background:#fde68a;color:#78350f}
.badge.verified{background:#d1fae5;color:#065f46}.flag{color:#b91c1c;font-weight:600}
a{color:#1d4ed8;text-decoration:none}a:hover{text-decoration:underline}
figure{margin:0 0 26px}figcaption{color:var(--muted);font-size:13px;max-width:920px}
svg{max-width:100%;height:auto;font-size:12px}svg text{fill:var(--ink)}.tick{fill:var(--muted)}
.grid{stroke:#e6e9ed}.parity{stroke:#64748b;stroke-dasharray:4 3}
.bar{fill:#93b4f5}.bar.control{fill:#fde68a;stroke:var(--amber);stroke-dasharray:3 2}
.whisker{stroke:#1e3a8a;stroke-width:1.5}.whisker.control{stroke:var(--amber)}
.dot{fill:#2563eb}.dot.control{fill:#fff;stroke:var(--amber);stroke-width:2}
text.control{font-style:italic;fill:#92400e}.title{font-weight:600}
footer{margin-top:30px;color:var(--muted);font-size:12px}
"""

# Sorts on each cell's data-sort: numbers numerically, text with numeric-aware collation, missing last both ways.
_JS = """
(() => {
  const table = document.getElementById("board");
  const heads = Array.from(table.tHead.rows[0].cells);
  const missing = (v) => v === undefined || v === "";
  const compare = (x, y, dir) => {
    if (missing(x) || missing(y)) return missing(x) - missing(y);
    const nx = Number(x), ny = Number(y);
    const c = isNaN(nx) || isNaN(ny) ? x.localeCompare(y, undefined, {numeric: true, sensitivity: "base"}) : nx - ny;
    return dir * c;
  };
  heads.forEach((th, col) => th.querySelector("button").addEventListener("click", () => {
    const dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    heads.forEach((h) => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    const rows = Array.from(table.tBodies[0].rows);
    rows.sort((a, b) => compare(a.cells[col].dataset.sort, b.cells[col].dataset.sort, dir));
    table.tBodies[0].append(...rows);
  }));
})();
"""


def render_page(board: Board) -> str:
    """Render the board as one self-contained HTML page (the board's ``index.html``).

    Args:
        board: The leaderboard; rows are shown in its order (ranked models first, then control rows).

    Returns:
        The page: inline CSS, a table sortable in plain JS, inline SVG plots; every string is escaped and nothing
        is loaded from anywhere.
    """
    csp = (f"default-src 'none'; img-src data:; style-src '{_sha256(_CSS)}'; script-src '{_sha256(_JS)}'; "
           "base-uri 'none'; form-action 'none'")
    sections = [_header(board), _warnings(board.warnings), _how_to_read(board), _table(board), _plots(board),
                _rejected(board), f"<footer>empathy-harness {escape(board.harness_version)} · static page, "
                f"schema v{board.schema_version} · protocol <code>{escape(board.protocol_hash)}</code></footer>"]
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
            f"<title>{escape(board.name)} · empathy leaderboard</title>\n"
            f'<link rel="icon" href="data:,">\n<style>{_CSS}</style>\n</head>\n<body>\n'
            + "\n".join(s for s in sections if s) + f"\n<script>{_JS}</script>\n</body>\n</html>\n")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _header(board: Board) -> str:
    meta = [("Judge", f"<code>{escape(board.judge)}</code>"),
            ("Anchor", f"{escape(board.anchor)} at BT {_num(board.anchor_value, _bt_digits(board))}"),
            ("Built", escape(board.built_at)), ("Harness", escape(board.harness_version)),
            ("Models", f"{sum(not r.control for r in board.rows)} ranked · {sum(bool(r.control) for r in board.rows)} controls")]
    items = "".join(f"<span>{k}: <b>{v}</b></span>" for k, v in meta)
    return f'<header>\n<h1>{escape(board.name)}</h1>\n<div class="meta">{items}</div>\n</header>'


def _warnings(warnings: Sequence[str]) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li>{escape(w)}</li>" for w in warnings)
    noun = "warning" if len(warnings) == 1 else "warnings"
    return f'<section class="warnings" role="alert"><h2>\u26a0 {len(warnings)} {noun}</h2><ul>{items}</ul></section>'


def _how_to_read(board: Board) -> str:
    anchor = f"<b>{escape(board.anchor)}</b>"
    notes = [
        f"<b>BT score</b>: Bradley–Terry strength from the judge's pairwise verdicts, anchored so that {anchor} sits "
        f"at {_num(board.anchor_value, _bt_digits(board))}. Brackets are 95 % bootstrap CIs.",
        "<b>Rank</b>: a range such as 1–3 means the CIs overlap with the models at those ranks: they are not "
        "separable on this evidence.",
        f"<b>Win rate</b>: share of dialogues the judge preferred the model over {anchor} (ties count ½); 50 % is "
        "parity. <b>LC</b>: length-controlled, the judge's pull towards longer replies removed.",
        "<b>Rubric</b>: 1–5 on each empathy dimension. <b>Health</b>: parse rate (verdicts the judge gave "
        "readably), tie rate, flip rate (verdicts that change when the two replies swap places), label mass "
        "(the judge's probability on the verdict labels).",
        "<b>Control rows</b> (italic, <span class=\"badge control\">control</span>) are reference points and never "
        "ranked: " + "; ".join(f"<i>{k}</i> — {v}" for k, v in CONTROL_NOTES.items()) + ". A control above a "
        "real model is a warning about the judge. <span class=\"flag\">\u2691</span> marks a model from the "
        "judge's own family (self-preference risk).",
        "<b>Status</b>: <i>verified</i> runs were reproduced by the board; <i>self-reported</i> runs are shown as "
        "submitted.",
    ]
    return f'<details class="howto" open><summary>How to read this board</summary><ul>{"".join(f"<li>{n}</li>" for n in notes)}</ul></details>'


def _num(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _bt_digits(board: Board) -> int:
    return 0 if abs(board.anchor_value) >= 100 else 2


def _params(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            v = n / size
            return f"{v:.0f}{unit}" if v >= 10 else f"{v:.1f}".removesuffix(".0") + unit
    return str(n)


def _interval(fmt: Callable[[float], str], iv: Interval) -> Cell:
    if iv.value is None:
        return "—", None
    ci = "" if iv.low is None or iv.high is None else f'<span class="ci">[{fmt(iv.low)}, {fmt(iv.high)}]</span>'
    return f"{fmt(iv.value)}{ci}", iv.value


def _rate(value: float | None) -> Cell:
    return ("—", None) if value is None else (_pct(value), value)


def _text(value: str | None, title: str | None = None) -> Cell:
    if not value:
        return "—", None
    tip = f' title="{escape(title)}"' if title and title != value else ""
    return f"<span{tip}>{escape(value)}</span>", value


def _rank(row: Row) -> Cell:
    if row.control or row.rank is None:
        return "—", None
    low, high = row.rank_low or row.rank, row.rank_high or row.rank
    return (f"{low}–{high}" if low != high else str(row.rank)), row.rank


def _model(row: Row) -> Cell:
    name = escape(row.model)
    link = row.link if row.link and row.link.startswith(("https://", "http://")) else None  # never javascript:
    tip = escape(f"run {row.run_id} · model {row.model_fingerprint} · {row.n_scored} dialogues scored")
    shown = f'<a href="{escape(link)}" rel="nofollow noopener" title="{tip}">{name}</a>' if link else f'<span title="{tip}">{name}</span>'
    if row.control:
        shown += f'<span class="badge control" title="{escape(CONTROL_NOTES[row.control])}">control · {escape(row.control)}</span>'
    return shown, row.model


def _short_revision(row: Row) -> Cell:
    rev = row.revision
    is_sha = rev is not None and len(rev) >= 12 and all(c in "0123456789abcdef" for c in rev.lower())
    return _text(rev[:7] if rev and is_sha else rev, rev)


def _status(row: Row) -> Cell:
    return f'<span class="badge {escape(row.status)}">{escape(row.status)}</span>', row.status


def _columns(board: Board, dims: Sequence[str]) -> list[tuple[str, str, str, Callable[[Row], Cell]]]:
    bt = partial(_interval, lambda v: _num(v, _bt_digits(board)))
    rubric = [(f"rubric_{d}", d.capitalize(), f"rubric 1–5: {d}", partial(_rubric_cell, d)) for d in dims]
    return [
        ("rank", "Rank", "rank range from overlapping 95% CIs; controls are never ranked", _rank),
        ("model", "Model", "", _model),
        ("revision", "Revision", "model revision (commit)", _short_revision),
        ("params", "Params", "parameters", lambda r: ("—", None) if r.parameters is None else (_params(r.parameters), r.parameters)),
        ("bt", "BT score", f"Bradley–Terry score; {board.anchor} = {board.anchor_value:g}", lambda r: bt(r.bt)),
        ("win_rate", "Win rate", f"vs {board.anchor}, ties ½", lambda r: _interval(_pct, r.win_rate)),
        ("lc_win_rate", "LC win rate", "length-controlled win rate", lambda r: _interval(_pct, r.lc_win_rate)),
        *rubric,
        ("mean_words", "Words", "mean words per reply", lambda r: ("—", None) if r.mean_words is None else (f"{r.mean_words:.0f}", r.mean_words)),
        ("parse_rate", "Parse", "share of verdicts the judge gave readably", lambda r: _rate(r.health.parse_rate)),
        ("tie_rate", "Ties", "tie rate", lambda r: _rate(r.health.tie_rate)),
        ("flip_rate", "Flips", "verdict changes when the replies swap places", lambda r: _rate(r.health.position_flip_rate)),
        ("label_mass", "Label mass", "judge probability on the verdict labels", lambda r: _rate(r.health.label_mass)),
        ("judge", "Judge", "judge fingerprint", lambda r: (f"<code>{escape(r.judge)}</code>", r.judge)),
        ("family", "Family", "the judge belongs to this model's family", lambda r: ('<span class="flag">\u2691 same</span>', 1) if r.family_overlap else ("no", 0)),
        ("date", "Date", "", lambda r: _text(r.date)),
        ("harness", "Harness", "harness version", lambda r: _text(r.harness_version)),
        ("status", "Status", "verified or self-reported", _status),
    ]


def _rubric_of(dim: str, row: Row) -> Interval:
    return row.rubric.get(dim, Interval())


def _rubric_cell(dim: str, row: Row) -> Cell:
    return _interval(lambda v: f"{v:.2f}", _rubric_of(dim, row))


def _dims(board: Board) -> list[str]:
    extra = sorted({d for r in board.rows for d in r.rubric} - set(DIMENSIONS))
    return [*DIMENSIONS, *extra]


def _table(board: Board) -> str:
    columns = _columns(board, _dims(board))
    head = "".join(f'<th data-key="{key}" class="{"left" if key in _LEFT else ""}" title="{escape(tip)}" scope="col">'
                   f'<button type="button">{escape(label)}</button></th>' for key, label, tip, _ in columns)
    body = []
    for row in board.rows:
        cells = []
        for key, _, _, cell in columns:
            html, sort = cell(row)
            sort_attr = "" if sort is None else escape(f"{sort:.12g}" if isinstance(sort, float | int) else sort)
            cells.append(f'<td class="{"left" if key in _LEFT else ""}" data-sort="{sort_attr}">{html}</td>')
        attrs = f' class="control" data-control="{escape(row.control)}"' if row.control else ""
        body.append(f'<tr data-model="{escape(row.model)}"{attrs}>{"".join(cells)}</tr>')
    return (f'<section><h2>Leaderboard</h2><div class="scroll"><table id="board"><thead><tr>{head}</tr></thead>'
            f'<tbody>\n{chr(10).join(body)}\n</tbody></table></div></section>')


class _Axis(NamedTuple):
    lo: float
    hi: float
    ticks: Sequence[float]
    fmt: Callable[[float], str]
    parity: float | None = None


def _plots(board: Board) -> str:
    rows, dims = board.rows, _dims(board)
    win = _row_chart(rows, [("", lambda r: r.win_rate)], _Axis(0, 1, [0, .25, .5, .75, 1], _pct, .5), bars=True)
    rubric = _row_chart(rows, [(d, partial(_rubric_of, d)) for d in dims],
                        _Axis(1, 5, [1, 2, 3, 4, 5], lambda v: f"{v:g}"), bars=False)
    figures = [
        ("plot-win-rate", win, f"Win rate against {escape(board.anchor)} with 95 % CIs; the dashed line is parity (50 %)."),
        ("plot-rubric", rubric, "Rubric score (1–5) per empathy dimension with 95 % CIs."),
        ("plot-length", _scatter(rows), _length_note(rows)),
    ]
    return "<section><h2>Plots</h2>" + "".join(
        f'<figure id="{fid}">{svg}<figcaption>{cap} Control rows are amber and italic.</figcaption></figure>'
        for fid, svg, cap in figures) + "</section>"


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
    label_w, pw, gap, top, step = _label_width(rows), (420 if len(panels) == 1 else 230), 28, 30, 26
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
                         f'<text class="tick" x="{sx(t):.1f}" y="{height - 6}" text-anchor="middle">{axis.fmt(t)}</text>')
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


def _scatter(rows: Sequence[Row]) -> str:
    """Win rate against mean words: a rising cloud means the judge pays for length, not empathy."""
    points = [r for r in rows if r.mean_words is not None and r.win_rate.value is not None]
    hi_words = max((r.mean_words or 0 for r in points), default=0) or 1
    xticks = _nice_ticks(hi_words)
    left, top, pw, ph = 56, 14, 520, 300
    sx, sy = _scale(0, xticks[-1], left, left + pw), _scale(0, 1, top + ph, top)
    parts = []
    for t in xticks:
        parts.append(f'<line class="grid" x1="{sx(t):.1f}" y1="{top}" x2="{sx(t):.1f}" y2="{top + ph}"/>'
                     f'<text class="tick" x="{sx(t):.1f}" y="{top + ph + 16}" text-anchor="middle">{t:g}</text>')
    for t in (0, .25, .5, .75, 1):
        parts.append(f'<line class="{"parity" if t == .5 else "grid"}" x1="{left}" y1="{sy(t):.1f}" x2="{left + pw}" '
                     f'y2="{sy(t):.1f}"/><text class="tick" x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{_pct(t)}</text>')
    parts.append(f'<text class="tick" x="{left + pw / 2}" y="{top + ph + 34}" text-anchor="middle">mean words per reply</text>'
                 f'<text class="tick" transform="rotate(-90)" x="{-(top + ph / 2)}" y="14" text-anchor="middle">win rate</text>')
    for row in points:
        iv, x = row.win_rate, sx(row.mean_words or 0)
        if iv.low is not None and iv.high is not None:
            parts.append(_whisker(row, (x, sy(iv.low)), (x, sy(iv.high))))
        parts.append(_marker(row, x, sy(iv.value or 0), _tip(row, iv, _pct)))
        parts.append(f'<text class="{_cls(row).strip()}" x="{x + 8:.1f}" y="{sy(iv.value or 0) - 6:.1f}" font-size="11">'
                     f"{escape(_short_label(row.model, 24))}</text>")
    return _svg(left + pw + 170, top + ph + 44, parts)


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


def _rejected(board: Board) -> str:
    if not board.rejected:
        return ""
    items = "".join(f"<li><code>{escape(r.run)}</code>: {escape(r.reason)}</li>" for r in board.rejected)
    return f"<section><details><summary>Runs not on the board ({len(board.rejected)})</summary><ul>{items}</ul></details></section>"
