"""The page's style parts: the style-controlled columns, the ranking switch and the style section.

The switch ranks the board by the raw or the style-controlled rating; the section shows what the judge pays for each
style feature and every model's style profile in a table sortable by any feature.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from harness.score.style import FEATURES
from leaderboard.models import Board, Interval, Row, StyleCoefficient

Cell = tuple[str, float | str | None]

#: How each feature reads in the page's headers and notes.
FEATURE_LABELS = {
    "words": "words", "sentences": "sentences", "questions": "questions", "exclamations": "exclamations",
    "emoji": "emoji", "list_items": "list items", "bold": "bold", "headers": "headers",
    "second_person": "2nd person", "sympathy": "stock sympathy", "validation": "validation", "advice": "advice",
    "imperatives": "imperatives", "apology": "apologies", "ai_disclaimer": "AI disclaimers", "echo": "echo",
    "grade": "reading grade",
}


def fitted(board: Board) -> bool:
    """The board has a style-controlled column with numbers in it."""
    return board.style_control is not None and board.style_control.refused is None


def style_columns(board: Board, bt: Callable[[Interval], Cell]
                  ) -> list[tuple[str, str, str, Callable[[Row], Cell]]]:
    """The style-controlled rating and rank columns of the board table (none when the board has no such column)."""
    if not fitted(board) or board.style_control is None:
        return []
    held = ", ".join(FEATURE_LABELS[f] for f in board.style_control.features)
    return [("bt_style", "BT style-controlled", f"Bradley–Terry score with style held equal ({held})",
             lambda r: bt(r.bt_style)),
            ("rank_style", "Rank (style)", "rank range under style control", _rank_style)]


def _rank_style(row: Row) -> Cell:
    low, high = row.rank_style_low, row.rank_style_high
    if row.control or low is None or high is None:
        return "—", None
    return (f"{low}–{high}" if low != high else str(low)), low


def ranking_switch(board: Board) -> str:
    """Radio buttons that rank the table by the raw or the style-controlled rating."""
    if not fitted(board):
        return ""
    return ('<fieldset id="ranking" class="howto"><legend>Ranking</legend>'
            '<label><input type="radio" name="ranking" value="bt" checked> raw</label> '
            '<label><input type="radio" name="ranking" value="bt_style"> style-controlled</label></fieldset>')


def style_note(board: Board) -> list[str]:
    """The "how to read" line on the style column."""
    sc = board.style_control
    if sc is None:
        return []
    held = ", ".join(FEATURE_LABELS[f] for f in sc.features)
    if sc.refused:
        return [f"<b>Style-controlled score</b>: not shown — {escape(sc.refused)}"]
    return [f"<b>BT style-controlled</b>: the Bradley–Terry fit with each battle's style differences ({held}) as "
            "covariates (Chatbot Arena's style control): what a model wins with its style made equal to its "
            "opponent's. A model far lower here than in the raw score gains by style; the coefficients below say "
            "what this judge pays for each feature."]


def style_section(board: Board) -> str:
    """The style coefficients (when fitted) and the style profile of every row."""
    sc = board.style_control
    if sc is None and not any(r.style for r in board.rows):
        return ""
    parts = ['<section id="style"><h2>Style</h2>']
    if sc is not None and sc.refused:
        parts.append(f'<p class="refused">Style-controlled ratings not computed: {escape(sc.refused)}</p>')
    elif sc is not None:
        rows = "".join(f'<tr><td class="left">{escape(FEATURE_LABELS[c.feature])}</td>{_paid(c)}</tr>'
                       for c in sc.coefficients)
        parts.append(
            "<p>What this judge pays for style: rating points for +1 SD (root mean square over the board's own "
            "battles) of the normalised difference between two replies (relative difference (a − b)/(a + b) for "
            "counts, plain difference for the reading grade), with 95 % CIs ({escape(sc.ci_method or '')}). Fitted "
            "on the board's own runs (maintainer, verified, controls); self-reported runs are rated with these "
            "coefficients.</p>"
            '<div class="scroll"><table id="style-coefficients"><thead><tr><th class="left">feature</th>'
            "<th>points per +1 SD</th><th>1 SD is</th><th>within-model share</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div>")
        if sc.note:
            parts.append(f'<p class="refused">{escape(sc.note)}</p>')
    if sc is not None and sc.excluded:
        items = "".join(f"<li><code>{escape(rid)}</code>: {escape(why)}</li>" for rid, why in sorted(sc.excluded.items()))
        parts.append(f"<p>Not in the style-controlled column: {escape(', '.join(sorted(sc.excluded)))}</p>"
                     f"<ul>{items}</ul>")
    parts.append(_profile_table(board))
    parts.append("</section>")
    return "".join(parts)


def _paid(c: StyleCoefficient) -> str:
    """A coefficient's cells: points [CI], what 1 SD is, and the within-model share of its information."""
    share = "—" if c.within_share is None else f"{c.within_share:.0%}"
    if not c.varies:
        return "<td>0 (never differs)</td><td>0</td><td>—</td>"
    if not c.identified:
        return ('<td title="its differences lie between models, not within a model\'s battles: the data cannot tell '
                f'its effect from the ratings">not separable: left out</td><td>{c.sd:.3g}</td><td>{share}</td>')
    return (f'<td>{c.points:+.1f}<span class="ci">[{c.low:+.1f}, {c.high:+.1f}]</span></td><td>{c.sd:.3g}</td>'
            f"<td>{share}</td>")


def _profile_table(board: Board) -> str:
    """Every row's mean style features, sortable by any of them."""
    head = ('<th scope="col"><button type="button">Rank</button></th>'
            '<th class="left" scope="col"><button type="button">Model</button></th>'
            + "".join(f'<th data-key="{f}" scope="col"><button type="button">{escape(FEATURE_LABELS[f])}</button>'
                      "</th>" for f in FEATURES))
    body = []
    for row in board.rows:
        rank = "" if row.rank is None or row.control else str(row.rank)
        cells = [f'<td data-sort="{rank}">{rank or "—"}</td>',
                 f'<td class="left" data-sort="{escape(row.model)}">{escape(row.model)}</td>']
        for f in FEATURES:
            value = row.style.get(f)
            cells.append('<td data-sort="">—</td>' if value is None else
                         f'<td data-sort="{value:.12g}">{value:.2f}</td>')
        attrs = ' class="control"' if row.control else ""
        body.append(f"<tr{attrs}>{''.join(cells)}</tr>")
    return ("<p>Style profile: each model's mean per reply (words, counts, the share of the speaker's words echoed, "
            "the reading grade); click a header to sort.</p>"
            f'<div class="scroll"><table id="style-profile" class="sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")
