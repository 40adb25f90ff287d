"""The board's static page: one self-contained HTML file with inline CSS, a plain-JS sortable table and SVG plots.

Nothing on the page loads from anywhere (no CDN, font, script or image); a Content-Security-Policy pinned to the
hashes of the page's own style and script has the browser enforce that, and keeps a script injected through a
submitter's string inert even if one ever slipped past escaping. Only model links point off the page.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from functools import partial
from html import escape

from leaderboard.eval_results import EVAL_RESULTS_FILE
from leaderboard.models import Board, Interval, Row
from leaderboard.page_style import ranking_switch, style_columns, style_note, style_section
from leaderboard.plots import dimensions, pct, plots_section, rubric_of

Cell = tuple[str, float | str | None]
"""A table cell: its inner HTML and its sort key (None: missing, sorted last)."""

CONTROL_NOTES = {
    "null_model": "the same reply to every dialogue",
    "verbose_padding": "replies padded with filler: length bait",
    "anchor_self": "the anchor judged against itself",
    "human": "human-written replies",
}
_LEFT = {"model", "revision", "judge", "date", "harness", "trust"}

_CSS = """
:root{color-scheme:light;--ink:#1f2933;--muted:#5f6b77;--line:#dde2e7;--amber:#b45309}
body{margin:0 auto;max-width:1760px;padding:24px 28px 40px;color:var(--ink);background:#fff;
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
h1{font-size:26px;margin:0}h2{font-size:18px;margin:30px 0 10px}
code{font:12px ui-monospace,Menlo,"DejaVu Sans Mono",monospace;background:#f1f4f7;padding:1px 4px;border-radius:3px}
.meta{display:flex;flex-wrap:wrap;gap:4px 24px;margin:8px 0 0;color:var(--muted)}.meta b{color:var(--ink)}
.banner{margin:0 0 18px;padding:12px 16px;background:#fee2e2;border:2px solid #b91c1c;border-radius:6px;
color:#7f1d1d;font-weight:700;font-size:15px}
.warnings{margin:18px 0;padding:10px 16px;background:#fff7e6;border:1px solid #f5c26b;border-left:6px solid #d97706;
border-radius:6px}.warnings h2{margin:0 0 4px;font-size:16px;color:#92400e}.warnings ul{margin:0;padding-left:20px}
.howto{margin:16px 0;padding:8px 16px;background:#f7f9fb;border:1px solid var(--line);border-radius:6px;color:#334155}
.howto summary{font-weight:600;cursor:pointer}.howto ul{margin:6px 0;padding-left:20px}
.scroll{overflow-x:auto;border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;width:100%;font-size:13px;font-variant-numeric:tabular-nums}
th,td{padding:5px 6px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap;vertical-align:top}
th{background:#eef2f6;font-weight:600;vertical-align:bottom;white-space:normal;min-width:3em}
th:nth-child(2),td:nth-child(2){position:sticky;left:0;background:#fff;box-shadow:inset -1px 0 var(--line)}
th:nth-child(2){background:#eef2f6}th.left,td.left{text-align:left}
th button{all:unset;cursor:pointer}th button:focus-visible{outline:2px solid #2563eb}
th[aria-sort=ascending] button::after{content:" \\25B2"}th[aria-sort=descending] button::after{content:" \\25BC"}
tbody tr:hover td{background:#f2f6ff}.ci{display:block;color:var(--muted);font-size:11px}
tr.control td{font-style:italic;background:#fffaf0;color:#4b3a1f}
.badge{display:inline-block;margin-left:6px;padding:0 7px;border-radius:9px;font-size:11px;font-style:normal;
font-weight:600;background:#e2e8f0;color:#334155}.badge.control{background:#fde68a;color:#78350f}
.badge.verified,.badge.maintainer{background:#d1fae5;color:#065f46}.flag{color:#b91c1c;font-weight:600}
a{color:#1d4ed8;text-decoration:none}a:hover{text-decoration:underline}
.plots{display:flex;flex-wrap:wrap;gap:8px 48px;align-items:flex-start}figure{display:table;margin:0 0 26px}
figcaption{display:table-caption;caption-side:bottom;color:var(--muted);font-size:13px}
svg{max-width:100%;height:auto;font-size:12px}svg text{fill:var(--ink)}.tick{fill:var(--muted)}
.grid{stroke:#e6e9ed}.parity{stroke:#64748b;stroke-dasharray:4 3}
.bar{fill:#93b4f5}.bar.control{fill:#fde68a;stroke:var(--amber);stroke-dasharray:3 2}
.whisker{stroke:#1e3a8a;stroke-width:1.5}.whisker.control{stroke:var(--amber)}
.dot{fill:#2563eb}.dot.control{fill:#fff;stroke:var(--amber);stroke-width:2}
text.control{font-style:italic;fill:#92400e}.title{font-weight:600}
footer{margin-top:30px;color:var(--muted);font-size:12px}
"""

# Sorts on each cell's data-sort: numbers numerically, text with numeric-aware collation, missing last both ways,
# ties in the board's order (so a sort never depends on the clicks before it).
_JS = """
(() => {
  const missing = (v) => v === undefined || v === "";
  const compare = (x, y, dir) => {
    if (missing(x) || missing(y)) return missing(x) - missing(y);
    const nx = Number(x), ny = Number(y);
    const c = isNaN(nx) || isNaN(ny) ? x.localeCompare(y, undefined, {numeric: true, sensitivity: "base"}) : nx - ny;
    return dir * c;
  };
  const order = new WeakMap();  // ties keep the table's first order
  const sortBy = (table, col, dir) => {
    const heads = Array.from(table.tHead.rows[0].cells);
    heads.forEach((h) => h.removeAttribute("aria-sort"));
    heads[col].setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    const first = order.get(table);
    const rows = Array.from(table.tBodies[0].rows);
    rows.sort((a, b) => compare(a.cells[col].dataset.sort, b.cells[col].dataset.sort, dir) || first.get(a) - first.get(b));
    table.tBodies[0].append(...rows);
  };
  document.querySelectorAll("table.sortable").forEach((table) => {
    order.set(table, new Map(Array.from(table.tBodies[0].rows, (r, i) => [r, i])));
    Array.from(table.tHead.rows[0].cells).forEach((th, col) => th.querySelector("button").addEventListener("click",
      () => sortBy(table, col, th.getAttribute("aria-sort") === "ascending" ? -1 : 1)));
  });
  const pick = document.getElementById("ranking");
  if (pick) pick.addEventListener("change", (e) => {  // rank by the raw or the style-controlled rating
    const table = document.getElementById("board");
    table.dataset.ranking = e.target.value;
    sortBy(table, Array.from(table.tHead.rows[0].cells).findIndex((h) => h.dataset.key === e.target.value), -1);
  });
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
    sections = [_banner(board.banner), _header(board), _warnings(board.notices),
                _how_to_read(board), _table(board), style_section(board), plots_section(board),
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
    return (f'<header>\n<h1>{escape(board.name)}</h1>\n<div class="meta">{items}</div>\n'
            f'<p class="validity" id="judge-validity">{escape(validity_line(board))}</p>\n</header>')


def validity_line(board: Board) -> str:
    """What is known of the judge's agreement with people (the page and the dataset card)."""
    v = board.judge_validity
    if v is None:
        return ("Judge validity: not measured — no run of this board carries figures of its judge against human "
                "ratings ('empathy validate-judge', then 'empathy eval --judge-validity').")
    return v.line()[0].upper() + v.line()[1:]


def _banner(banner: str | None) -> str:
    """The first thing on the page when the board shows runs whose judge failed its health check."""
    return f'<div class="banner" id="unhealthy-judge" role="alert">{escape(banner)}</div>' if banner else ""


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
        *style_note(board),
        "<b>Trust</b>, set by the board: <i>maintainer</i>: run by the board's maintainer; <i>verified</i>: the "
        "board re-judged every comparison of the submitted replies with its own judge and the numbers agreed within "
        "their CIs; <i>self-reported</i>: shown as submitted, not re-judged, and rated against the anchor only (it "
        "moves no other model's rating).",
    ]
    return f'<details class="howto" open><summary>How to read this board</summary><ul>{"".join(f"<li>{n}</li>" for n in notes)}</ul></details>'


def _num(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


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
    return ("—", None) if value is None else (pct(value), value)


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
    if link and not row.control:  # the model page's own copy of its scores (empathy submit --model-repo)
        shown += (f'<a class="ci" href="{escape(link)}/blob/main/{EVAL_RESULTS_FILE}" rel="nofollow noopener" '
                  'title="the scores in the model repo\'s .eval_results (empathy submit --model-repo opens the pull '
                  'request; there once the model\'s owner merged it)">Hub eval results</a>')
    if row.control:
        shown += (f'<span class="badge control">control</span>'
                  f'<span class="ci" title="{escape(CONTROL_NOTES[row.control])}">{escape(row.control)}</span>')
    return shown, row.model


def _short_revision(row: Row) -> Cell:
    rev = row.revision
    is_sha = rev is not None and len(rev) >= 12 and all(c in "0123456789abcdef" for c in rev.lower())
    return _text(rev[:7] if rev and is_sha else rev, rev)


def _trust(row: Row) -> Cell:
    note = ('<span class="ci" title="the board re-judged the submission and its claim did not hold">disputed</span>'
            if row.disputed else "")
    note += ('<span class="ci" title="rated against the anchor only: not re-judged by the board">vs anchor only'
             '</span>' if row.anchor_only and row.control is None else "")
    return f'<span class="badge {escape(row.trust)}">{escape(row.trust)}</span>{note}', row.trust


def _columns(board: Board, dims: Sequence[str]) -> list[tuple[str, str, str, Callable[[Row], Cell]]]:
    bt = partial(_interval, lambda v: _num(v, _bt_digits(board)))
    rubric = [(f"rubric_{d}", d.capitalize(), f"rubric 1–5: {d}", partial(_rubric_cell, d)) for d in dims]
    return [
        ("rank", "Rank", "rank range from overlapping 95% CIs; controls are never ranked", _rank),
        ("model", "Model", "", _model),
        ("revision", "Revision", "model revision (commit)", _short_revision),
        ("params", "Params", "parameters", lambda r: ("—", None) if r.parameters is None else (_params(r.parameters), r.parameters)),
        ("bt", "BT score", f"Bradley–Terry score; {board.anchor} = {board.anchor_value:g}", lambda r: bt(r.bt)),
        *style_columns(board, bt),
        ("win_rate", "Win rate", f"vs {board.anchor}, ties ½", lambda r: _interval(pct, r.win_rate)),
        ("lc_win_rate", "LC win rate", "length-controlled win rate", lambda r: _interval(pct, r.lc_win_rate)),
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
        ("trust", "Trust", "maintainer, verified or self-reported (set by the board)", _trust),
    ]


def _rubric_cell(dim: str, row: Row) -> Cell:
    return _interval(lambda v: f"{v:.2f}", rubric_of(dim, row))


def _table(board: Board) -> str:
    columns = _columns(board, dimensions(board))
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
    return (f'<section><h2>Leaderboard</h2>{ranking_switch(board)}<div class="scroll">'
            f'<table id="board" class="sortable" data-ranking="bt"><thead><tr>{head}</tr></thead>'
            f'<tbody>\n{chr(10).join(body)}\n</tbody></table></div></section>')


def _rejected(board: Board) -> str:
    if not board.rejected:
        return ""
    items = "".join(f"<li><code>{escape(r.run)}</code>: {escape(r.reason)}</li>" for r in board.rejected)
    return f"<section><details><summary>Runs not on the board ({len(board.rejected)})</summary><ul>{items}</ul></details></section>"
