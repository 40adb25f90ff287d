"""The board's dataset card (``README.md`` of its dataset repo): front matter for the Hub's viewer, then the board."""

from __future__ import annotations

from leaderboard.models import Board
from leaderboard.protocol import BoardProtocol


def dataset_card(board: Board, protocol: BoardProtocol) -> str:
    """README.md of the board's dataset repo: its ``configs`` make the Hub's dataset viewer show the table."""
    top = "\n".join(f"| {r.rank if r.rank is not None else '—'} | {r.model} | "
                    f"{'' if r.bt.value is None else round(r.bt.value)} | "
                    f"{'' if r.win_rate.value is None else f'{r.win_rate.value:.1%}'} | {r.status} |"
                    for r in board.rows)
    banner = f"\n> **{board.banner}**\n" if board.banner else ""  # the first line of the card's text
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
# {board.name}

An empathy leaderboard built with empathy-harness: every model's replies to the same {protocol.dataset.n} dialogues
(`{protocol.dataset.spec}`, hash `{protocol.dataset.hash}`) are judged pairwise, in both orders, against the anchor
**{board.anchor}** by one judge (fingerprint `{board.judge}`). Scores are Bradley–Terry ratings anchored at
{board.anchor_value:g} with 95 % bootstrap CIs over dialogues; ranks are ranges where CIs overlap. Control rows
(a fixed reply, verbose padding, the anchor against itself, human replies) are judged like models and never ranked.

{(chr(10) * 2).join(f"> **Warning:** {w}" for w in board.notices)}

| rank | model | BT | win rate vs anchor | status |
|---|---|---|---|---|
{top}

Files: `leaderboard.parquet` / `leaderboard.csv` / `leaderboard.json` (every column), `index.html` (the page),
`rejected.json` (runs refused, with the reason), `results/<run_id>/` (each run's results, verdicts, replies and
manifest). Protocol `{board.protocol_hash}`; built {board.built_at} with empathy-harness {board.harness_version}.
Submit with `empathy submit RUN_DIR --repo <this repo>`.
"""
