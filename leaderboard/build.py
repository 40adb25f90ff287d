"""``empathy leaderboard build``: admitted runs → ratings → rows → one folder (json, csv, parquet, page, card).

A pure function of the admitted runs: every number on the board comes from a run folder (copied under
``results/<run_id>/``) and its fingerprints. Ratings are Bradley–Terry over every pairwise judgment on the board —
each model vs the anchor, plus model-vs-model battles where a run's reference *is* another model on the board.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import __version__
from harness.core.errors import HarnessError
from harness.core.io import write_atomic, write_json
from harness.core.records import ComparisonStats, Judgment, ModelIdentity
from harness.evaluate.references import now
from harness.llm.family import family_overlap_warning
from harness.score.stats import OUTCOME_SCORE
from leaderboard.admit import VERIFICATION, Entry, admit
from leaderboard.models import Board, Health, Interval, Rejection, Row
from leaderboard.protocol import BoardProtocol
from leaderboard.ratings import Battle, Rating, fit_ratings

ANCHOR = "anchor"
RUN_FILES = ("results.json", "judgments.jsonl", "rubric.jsonl", "generations.jsonl", "manifest.json", "probe.jsonl",
             VERIFICATION)


def battles(entries: Sequence[Entry], protocol: BoardProtocol) -> list[Battle]:
    """Every dialogue-level outcome between two systems on the board (unscored dialogues are left out)."""
    by_fingerprint = {e.run.result.provenance.systems["candidate"].model.fingerprint: e.run_id for e in entries}
    out: list[Battle] = []
    for entry in entries:
        result = entry.run.result
        for name, stats in result.comparisons.items():
            if name == protocol.anchor.comparison:
                other = ANCHOR
            elif stats.reference_model.fingerprint in by_fingerprint:
                other = by_fingerprint[stats.reference_model.fingerprint]
            else:
                continue
            if other == entry.run_id:
                continue  # a model against its own replies (an unchanged checkpoint's head to head) is no battle
            js: list[Judgment] = [j for j in entry.run.judgments if j.comparison == name and j.outcome is not None]
            out += [Battle(j.dialogue_id, entry.run_id, other, OUTCOME_SCORE[j.outcome]) for j in js
                    if j.outcome is not None]
    return out


def parameters(identity: ModelIdentity) -> int | None:
    """Parameter count from the safetensors headers of a local model folder (None when not known offline)."""
    if identity.kind != "local":
        return None
    total = 0
    for file in sorted(Path(identity.name).expanduser().glob("*.safetensors")):
        with file.open("rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size))
        for key, tensor in header.items():
            if key != "__metadata__":
                n = 1
                for dim in tensor["shape"]:
                    n *= int(dim)
                total += n
    return total or None


def _interval(value: float | None, low: float | None, high: float | None) -> Interval:
    return Interval(value=value, low=low, high=high)


def _row(entry: Entry, protocol: BoardProtocol, rating: Rating | None) -> Row:
    r = entry.run.result
    anchor: ComparisonStats = r.comparisons[protocol.anchor.comparison]
    model = r.provenance.systems["candidate"].model
    hub = model.kind == "hub"
    return Row(
        model=r.model if not entry.control else f"control: {entry.control}",
        link=f"https://huggingface.co/{model.name}" if hub else None,
        revision=model.revision,
        model_fingerprint=model.fingerprint,
        parameters=parameters(model),
        rank=rating.rank if rating and not entry.control else None,
        rank_low=rating.rank_low if rating and not entry.control else None,
        rank_high=rating.rank_high if rating and not entry.control else None,
        bt=_interval(rating.score, rating.ci_low, rating.ci_high) if rating else Interval(),
        win_rate=_interval(anchor.win_rate, anchor.ci_low, anchor.ci_high),
        lc_win_rate=_interval(anchor.lc_win_rate, anchor.lc_ci_low, anchor.lc_ci_high),
        rubric={d: _interval(s.mean, s.ci_low, s.ci_high) for d, s in r.rubric.items() if d in protocol.rubric},
        mean_words=anchor.mean_words_candidate,
        n_scored=anchor.n_scored,
        health=Health(parse_rate=anchor.parse_rate, tie_rate=anchor.tie_rate,
                      position_flip_rate=anchor.position_flip_rate, label_mass=anchor.label_mass_mean),
        judge=r.judge.fingerprint,
        family_overlap=bool(family_overlap_warning(r.judge.model.name, {"candidate": r.model})) and not entry.control,
        date=r.provenance.time,
        harness_version=r.provenance.harness_version,
        status="control" if entry.control else ("verified" if entry.verified else "self-reported"),
        control=entry.control,
        run_id=entry.run_id,
    )


def control_warnings(rows: Sequence[Row]) -> list[str]:
    """A control that beats real models means the judge rewards something other than empathy: say so first."""
    ranked = [r for r in rows if r.control is None and r.bt.value is not None]
    out = []
    for c in (r for r in rows if r.control is not None and r.bt.value is not None):
        beaten = [r.model for r in ranked if r.bt.value is not None and c.bt.value is not None and c.bt.value > r.bt.value]
        if beaten:
            out.append(f"control row {c.control!r} beats {len(beaten)} ranked model(s) ({', '.join(beaten[:5])}): "
                       "the judge rewards something other than empathy here — read the board with care")
        if c.control == "anchor_self" and c.win_rate.low is not None and c.win_rate.high is not None \
                and not c.win_rate.low <= 0.5 <= c.win_rate.high:
            out.append(f"the anchor against itself wins {c.win_rate.value:.0%} (CI {c.win_rate.low:.0%}–"
                       f"{c.win_rate.high:.0%}), not 50 %: the judge is biased by position or wording")
    return out


def build_board(paths: Sequence[Path], protocol: BoardProtocol, *, untrusted: Sequence[Path] = (),
                n_boot: int = 1000, seed: int = 0, built_from: str | None = None) -> tuple[Board, list[Entry]]:
    """The board from run folders: admission, ratings, rows (ranked models first, then controls)."""
    if n_boot < 0:
        raise HarnessError(f"--n-boot must be 0 or more (got {n_boot})")
    entries, rejected = admit(paths, protocol, untrusted=untrusted)
    if not any(e.control is None for e in entries):
        reasons = "; ".join(f"{r.run}: {r.reason}" for r in rejected[:3])
        raise HarnessError(f"no model run was admitted ({len(rejected)} refused{': ' + reasons if reasons else ''}) "
                           "— a board without models is not built")
    ranked_ids = [e.run_id for e in entries if e.control is None]
    ratings: dict[str, Rating] = {}
    fights = battles(entries, protocol)
    if fights:
        ratings = fit_ratings(fights, anchor=ANCHOR, anchor_value=protocol.anchor.value, n_boot=n_boot, seed=seed,
                              ranked=ranked_ids)
    rows = [_row(e, protocol, ratings.get(e.run_id)) for e in entries]
    real = sorted((r for r in rows if r.control is None), key=lambda r: -(r.bt.value or float("-inf")))
    controls = sorted((r for r in rows if r.control is not None), key=lambda r: r.control or "")
    board = Board(name=protocol.name, protocol_hash=protocol.hash, judge=protocol.judge_fingerprint,
                  anchor=protocol.anchor.name, anchor_value=protocol.anchor.value, rows=[*real, *controls],
                  warnings=control_warnings(rows), rejected=rejected, built_at=now(), harness_version=__version__,
                  built_from_commit=built_from)
    return board, entries


# -- outputs -----------------------------------------------------------------------------------------------


def flat_rows(board: Board) -> list[dict[str, Any]]:
    """One flat record per row (CSV / parquet columns)."""
    out = []
    for r in board.rows:
        row: dict[str, Any] = {"rank": r.rank, "rank_low": r.rank_low, "rank_high": r.rank_high, "model": r.model,
                               "link": r.link, "revision": r.revision, "model_fingerprint": r.model_fingerprint,
                               "parameters": r.parameters}
        for name, iv in (("bt", r.bt), ("win_rate", r.win_rate), ("lc_win_rate", r.lc_win_rate), *r.rubric.items()):
            row.update({name: iv.value, f"{name}_ci_low": iv.low, f"{name}_ci_high": iv.high})
        row.update(mean_words=r.mean_words, n_scored=r.n_scored, **r.health.model_dump(), judge=r.judge,
                   family_overlap=r.family_overlap, date=r.date, harness_version=r.harness_version, status=r.status,
                   control=r.control, run_id=r.run_id)
        out.append(row)
    return out


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def _parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    tmp.replace(path)


def dataset_card(board: Board, protocol: BoardProtocol) -> str:
    """README.md of the board's dataset repo: its ``configs`` make the Hub's dataset viewer show the table."""
    top = "\n".join(f"| {r.rank if r.rank is not None else '—'} | {r.model} | "
                    f"{'' if r.bt.value is None else round(r.bt.value)} | "
                    f"{'' if r.win_rate.value is None else f'{r.win_rate.value:.1%}'} | {r.status} |"
                    for r in board.rows)
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

# {board.name}

An empathy leaderboard built with empathy-harness: every model's replies to the same {protocol.dataset.n} dialogues
(`{protocol.dataset.spec}`, hash `{protocol.dataset.hash}`) are judged pairwise, in both orders, against the anchor
**{board.anchor}** by one judge (fingerprint `{board.judge}`). Scores are Bradley–Terry ratings anchored at
{board.anchor_value:g} with 95 % bootstrap CIs over dialogues; ranks are ranges where CIs overlap. Control rows
(a fixed reply, verbose padding, the anchor against itself, human replies) are judged like models and never ranked.

{chr(10).join(f"> **Warning:** {w}" for w in board.warnings)}

| rank | model | BT | win rate vs anchor | status |
|---|---|---|---|---|
{top}

Files: `leaderboard.parquet` / `leaderboard.csv` / `leaderboard.json` (every column), `index.html` (the page),
`rejected.json` (runs refused, with the reason), `results/<run_id>/` (each run's results, verdicts, replies and
manifest). Protocol `{board.protocol_hash}`; built {board.built_at} with empathy-harness {board.harness_version}.
Submit with `empathy submit RUN_DIR --repo <this repo>`.
"""


def write_site(board: Board, entries: Sequence[Entry], protocol: BoardProtocol, out: Path) -> list[Path]:
    """Write the board folder (built aside, then swapped in: never half a board); returns the files written.

    An existing ``out`` is replaced only when it is a board folder (it has leaderboard.json) or empty.
    """
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "leaderboard.json").is_file())):
        raise HarnessError(f"--output {out} exists and is not a board folder: give a new or a board folder")
    tmp = out.parent / f".{out.name}.building"
    if tmp.exists():
        shutil.rmtree(tmp)
    _write_site(board, entries, protocol, tmp)
    if out.exists():
        old = out.parent / f".{out.name}.old"
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)
    return sorted(p for p in out.rglob("*") if p.is_file())


def _write_site(board: Board, entries: Sequence[Entry], protocol: BoardProtocol, out: Path) -> None:
    from leaderboard.page import render_page
    from leaderboard.protocol import save_protocol

    out.mkdir(parents=True)
    rows = flat_rows(board)
    write_json(out / "leaderboard.json", board.model_dump(mode="json"))
    write_atomic(out / "leaderboard.csv", _csv(rows))
    _parquet(rows, out / "leaderboard.parquet")
    write_atomic(out / "index.html", render_page(board))
    write_atomic(out / "README.md", dataset_card(board, protocol))
    write_json(out / "rejected.json", [r.model_dump() for r in board.rejected])
    save_protocol(protocol, out / "board.yaml")  # submitters check their runs against it
    for entry in entries:
        dest = out / "results" / entry.run_id
        dest.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            if (entry.run.path / name).is_file():
                shutil.copy2(entry.run.path / name, dest / name)


def rejected_summary(rejected: Sequence[Rejection]) -> list[str]:
    """One line per refused run, for the console."""
    return [f"{r.run}: {r.reason}" for r in rejected]
