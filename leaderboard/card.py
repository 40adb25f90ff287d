"""The board's dataset card (``README.md`` of its dataset repo): front matter for the Hub's viewer, then the board."""

from __future__ import annotations

import html
import re

from leaderboard.models import Board
from leaderboard.page import validity_line
from leaderboard.protocol import BoardProtocol

_MARKUP = re.compile(r"([\\`*_\[\]|~!])")


def md_text(text: str) -> str:
    """Text from a run (a model name, a warning naming one) as inert Markdown on one line.

    HTML is escaped, and every character that could open a link, an image, emphasis, code or a table cell is
    backslash-escaped: what a submitter names their model can neither inject markup nor break the table.
    """
    return _MARKUP.sub(r"\\\1", html.escape(" ".join(text.split()), quote=True))


def style_line(board: Board) -> str:
    """The style-controlled column in one line: which features it holds equal and what the judge pays for them."""
    sc = board.style_control
    if sc is None:
        return "Style-controlled ratings: none (the protocol names no style features)."
    if sc.refused:
        return f"Style-controlled ratings: not computed — {sc.refused}"
    paid = "; ".join(f"{c.feature} {c.points:+.0f} [{c.low:+.0f}, {c.high:+.0f}]" for c in sc.coefficients
                     if c.varies and c.identified)
    apart = [c.feature for c in sc.coefficients if c.varies and not c.identified]
    return (f"Style-controlled ratings hold {', '.join(sc.features)} equal (Chatbot Arena's style control, fitted on "
            f"the board's own runs); rating points this judge pays per +1 SD of each difference: "
            f"{paid or 'none varies'}"
            + (f"; not separable from the ratings, left out: {', '.join(apart)}" if apart else "")
            + (f"; {len(sc.excluded)} self-reported run(s) not in the column (see leaderboard.json)"
               if sc.excluded else "") + ".")


def dataset_card(board: Board, protocol: BoardProtocol) -> str:
    """README.md of the board's dataset repo: its ``configs`` make the Hub's dataset viewer show the table."""
    top = "\n".join(f"| {r.rank if r.rank is not None else '—'} | {md_text(r.model)} | "
                    f"{'' if r.bt.value is None else round(r.bt.value)} | "
                    f"{'' if r.bt_style.value is None else round(r.bt_style.value)} | "
                    f"{'' if r.win_rate.value is None else f'{r.win_rate.value:.1%}'} | {r.trust_label} |"
                    for r in board.rows)
    banner = f"\n> **{md_text(board.banner)}**\n" if board.banner else ""  # the first line of the card's text
    return f"""---
configs:
- config_name: default
  data_files:
  - split: train
    path: leaderboard.parquet
license: apache-2.0
tags:
- empathy
- leaderboard
- llm-as-a-judge
- empathy-harness
---
{banner}
# {md_text(board.name)}

An empathy leaderboard built with empathy-harness: every model's replies to the same {protocol.dataset.n} dialogues
(`{protocol.dataset.spec}`, hash `{protocol.dataset.hash}`) are judged pairwise, in both orders, against the anchor
**{md_text(board.anchor)}** by one judge (fingerprint `{board.judge}`). Scores are Bradley–Terry ratings anchored at
{board.anchor_value:g} with 95 % bootstrap CIs over dialogues; ranks are ranges where CIs overlap. Control rows
(a fixed reply, verbose padding, the anchor against itself, human replies) are judged like models and never ranked.
Trust is set by the board: *maintainer* (run by the board), *verified* (every comparison re-judged by the board's
judge and agreed), *self-reported* (as submitted; rated against the anchor only, it moves no other model's rating).

{md_text(validity_line(board))}

{(chr(10) * 2).join(f"> **Warning:** {md_text(w)}" for w in board.notices)}

{md_text(style_line(board))}

| rank | model | BT | BT style-controlled | win rate vs anchor | trust |
|---|---|---|---|---|---|
{top}

Files: `leaderboard.parquet` / `leaderboard.csv` / `leaderboard.json` (every column), `index.html` (the page),
`rejected.json` (runs refused, with the reason), `results/<run_id>/` (each run's results, verdicts, replies and
manifest). Protocol `{board.protocol_hash}`; built {board.built_at} with empathy-harness {board.harness_version}.
Submit with `empathy submit RUN_DIR --repo <this repo>`.
"""
