"""``empathy leaderboard build``: admitted runs → ratings → rows → one folder (json, csv, parquet, page, card).

A pure function of the admitted runs: every number on the board comes from a run folder (copied under
``results/<run_id>/``) and its fingerprints. Ratings are Bradley–Terry over the board's pairwise judgments: each model
vs the anchor, plus model-vs-model battles where a run the board judged itself (trust ``maintainer`` or ``verified``,
:mod:`leaderboard.trust`) has another board model as a reference. A self-reported run is rated against the anchor
only: what it says about other models is its own word.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import __version__
from harness.core.errors import HarnessError
from harness.core.io import write_atomic, write_json
from harness.core.records import ComparisonStats, RunResult
from harness.evaluate.references import now
from harness.llm.family import family_overlap_warning
from harness.score.health import unhealthy_banner
from harness.score.style import FEATURES, load_counter
from leaderboard.admit import Entry, admit, board_validity, safe_run_id
from leaderboard.battles import ANCHOR, battles, rate
from leaderboard.eval_results import benchmark_yaml
from leaderboard.ledger import Arrival, ledger_record, load_ledger
from leaderboard.models import Board, Health, Interval, Rejection, Row
from leaderboard.protocol import BoardProtocol
from leaderboard.ratings import Rating
from leaderboard.trust import CONTROL, JUDGED_BY_THE_BOARD, LEDGER, RUN_FILES, VERIFICATION

__all__ = ["ANCHOR", "COPIED", "battles", "build_board", "write_site"]
#: What each run's copy under ``results/<run_id>/`` holds: its files and the board's own records of it.
COPIED = (*RUN_FILES, VERIFICATION, CONTROL)


def parameters(entry: Entry) -> int | None:
    """The parameter count the run recorded (its manifest), else None: nothing outside a run folder is read."""
    candidate = entry.run.manifest.get("candidate")
    value = candidate.get("parameters") if isinstance(candidate, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _interval(value: float | None, low: float | None, high: float | None) -> Interval:
    return Interval(value=value, low=low, high=high)


def _profile(r: RunResult) -> dict[str, float]:
    """The candidate's mean style features — only under today's style fingerprint (else not comparable: none)."""
    if r.style is None or r.style.fingerprint != load_counter().fingerprint:
        return {}
    return {f: s.mean for f, s in r.style.systems["candidate"].items() if s.mean is not None}


def _row(entry: Entry, protocol: BoardProtocol, rating: Rating | None, style: Rating | None) -> Row:
    r = entry.run.result
    anchor: ComparisonStats = r.comparisons[protocol.anchor.comparison]
    model = r.provenance.systems["candidate"].model
    hub = model.kind == "hub"
    return Row(
        model=r.model if not entry.control else f"control: {entry.control}",
        link=f"https://huggingface.co/{model.name}" if hub else None,
        revision=model.revision,
        model_fingerprint=model.fingerprint,
        parameters=parameters(entry),
        rank=rating.rank if rating and not entry.control else None,
        rank_low=rating.rank_low if rating and not entry.control else None,
        rank_high=rating.rank_high if rating and not entry.control else None,
        bt=_interval(rating.score, rating.ci_low, rating.ci_high) if rating else Interval(),
        bt_style=_interval(style.score, style.ci_low, style.ci_high) if style else Interval(),
        rank_style_low=style.rank_low if style and not entry.control else None,
        rank_style_high=style.rank_high if style and not entry.control else None,
        style=_profile(r),
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
        trust=entry.trust,
        anchor_only=entry.trust not in JUDGED_BY_THE_BOARD,
        disputed=entry.disputed,
        arrived=entry.arrival.arrived,
        control=entry.control,
        run_id=entry.run_id,
    )


#: What each control row is, for the warning when one ties or beats real models.
_CONTROL_WHAT = {"null_model": "one fixed reply to every dialogue", "verbose_padding": "generic padded replies",
                 "anchor_self": "the anchor's own replies", "human": "the dataset's human replies"}


def _ties_or_beats(control: Row, ranked: Sequence[Row]) -> tuple[list[str], list[str]]:
    """The ranked models a control beats (a higher score) and ties (its score reaches the model's 95 % CI)."""
    c = control.bt.value
    beats: list[str] = []
    ties: list[str] = []
    for r in ranked:
        if c is None or r.bt.value is None:
            continue
        if c > r.bt.value:
            beats.append(r.model)
        elif c >= (r.bt.low if r.bt.low is not None else r.bt.value):
            ties.append(r.model)
    return beats, ties


def control_warnings(rows: Sequence[Row]) -> list[str]:
    """A control that ties or beats real models means the judge cannot tell them from it: say so first.

    A control *ties* a model when its score lies within the model's 95 % CI (or equals the score when there is no
    CI), as every row does under a judge that answers "tie" to everything.
    """
    ranked = [r for r in rows if r.control is None and r.bt.value is not None]
    out = []
    for c in (r for r in rows if r.control is not None and r.bt.value is not None):
        beats, ties = _ties_or_beats(c, ranked)
        parts = [f"{verb} {len(names)} ranked model(s) ({', '.join(names[:5])})"
                 for verb, names in (("beats", beats), ("ties", ties)) if names]
        if parts:
            why = ("those models are not told apart from the anchor itself" if c.control == "anchor_self" else
                   "the judge rewards something other than empathy here, or the board has too few dialogues to "
                   "tell — read the board with care")
            what = _CONTROL_WHAT.get(c.control or "", "a control")
            out.append(f"control row {c.control!r} ({what}) {' and '.join(parts)}: {why}")
        if c.control == "anchor_self" and c.win_rate.low is not None and c.win_rate.high is not None \
                and not c.win_rate.low <= 0.5 <= c.win_rate.high:
            out.append(f"the anchor against itself wins {c.win_rate.value:.0%} (CI {c.win_rate.low:.0%}–"
                       f"{c.win_rate.high:.0%}), not 50 %: the judge is biased by position or wording")
    return out


def judge_banner(entries: Sequence[Entry]) -> str | None:
    """The board's first line when it shows runs whose judge failed its health check (the protocol allowed them)."""
    sick = [e.run.result.health for e in entries if not e.run.result.health.judge_ok]
    if not sick:
        return None
    where = f" (in {len(sick)} of {len(entries)} runs on this board)" if len(entries) > 1 else ""
    return unhealthy_banner(f"{sick[0].judge_problem or 'it failed its health check'}{where}")


def board_order(rows: Sequence[Row]) -> list[Row]:
    """Ranked models by score, highest first (unrated last; a score of exactly 0.0 is a score), then controls."""
    real = sorted((r for r in rows if r.control is None),
                  key=lambda r: (r.bt.value is None, -r.bt.value if r.bt.value is not None else 0.0, r.run_id))
    return [*real, *sorted((r for r in rows if r.control is not None), key=lambda r: r.control or "")]


@dataclass(frozen=True)
class Built:
    """A built board, the runs on it, the board's updated ledger, and notes for the maintainer's console."""

    board: Board
    entries: list[Entry]
    ledger: dict[str, Arrival]
    notes: list[str]


def build_board(paths: Sequence[Path], protocol: BoardProtocol, *, untrusted: Sequence[Path] = (),
                published: Sequence[Path] = (), ledgers: Sequence[Path] = (), key: bytes | None = None,
                n_boot: int = 1000, seed: int = 0, built_from: str | None = None,
                landed: Mapping[Path, tuple[str, str]] | None = None, reset_ledger: bool = False,
                cache: Path | None = None, workers: int | None = None) -> Built:
    """The board from run folders: admission, ratings, rows (ranked models first, then controls).

    ``paths`` are the maintainer's runs, ``published`` the board's published ``results/``, ``untrusted`` submissions
    (see :func:`leaderboard.admit.admit`); ``ledgers`` are folders whose ``ledger.json`` (checked with ``key``)
    records the runs the board saw before — one that is not signed with ``key`` is refused, unless
    ``reset_ledger`` (then its runs count as self-reported and as new arrivals). ``cache`` / ``workers``: see
    :func:`leaderboard.admit.admit`.
    """
    if n_boot < 0:
        raise HarnessError(f"--n-boot must be 0 or more (got {n_boot})")
    known, notes = load_ledger(ledgers, protocol.hash, key)
    if notes and not reset_ledger:
        raise HarnessError(f"{'; '.join(notes)} — nothing was built: restore ledger.json from the board's history "
                           "(the last commit 'leaderboard publish' made), use the board's key, or give --reset-ledger "
                           "to start the board's record anew")
    entries, rejected, ledger = admit(paths, protocol, untrusted=untrusted, published=published, ledger=known,
                                      key=key, built_from=built_from, landed=landed, cache=cache, workers=workers)
    if not any(e.control is None for e in entries):
        reasons = "; ".join(f"{r.run}: {r.reason}" for r in rejected[:3])
        raise HarnessError(f"no model run was admitted ({len(rejected)} refused{': ' + reasons if reasons else ''}) "
                           "— a board without models is not built")
    ranked_ids = [e.run_id for e in entries if e.control is None]
    rated = rate(entries, protocol, n_boot=n_boot, seed=seed, ranked=ranked_ids)
    rows = [_row(e, protocol, rated.raw.get(e.run_id), rated.style.get(e.run_id)) for e in entries]
    banner = judge_banner(entries)
    board = Board(name=protocol.name, protocol_hash=protocol.hash, judge=protocol.judge_fingerprint,
                  anchor=protocol.anchor.name, anchor_value=protocol.anchor.value, rows=board_order(rows),
                  banner=banner, warnings=[*([banner] if banner else []), *control_warnings(rows)],
                  rejected=rejected, built_at=now(), harness_version=__version__, built_from_commit=built_from,
                  style_control=rated.style_control, judge_validity=board_validity(entries))
    return Built(board, entries, ledger, notes)


# -- outputs -----------------------------------------------------------------------------------------------


def flat_rows(board: Board) -> list[dict[str, Any]]:
    """One flat record per row (CSV / parquet columns)."""
    out = []
    for r in board.rows:
        row: dict[str, Any] = {"rank": r.rank, "rank_low": r.rank_low, "rank_high": r.rank_high, "model": r.model,
                               "link": r.link, "revision": r.revision, "model_fingerprint": r.model_fingerprint,
                               "parameters": r.parameters}
        for name, iv in (("bt", r.bt), ("bt_style", r.bt_style), ("win_rate", r.win_rate),
                         ("lc_win_rate", r.lc_win_rate), *r.rubric.items()):
            row.update({name: iv.value, f"{name}_ci_low": iv.low, f"{name}_ci_high": iv.high})
        row.update(rank_style_low=r.rank_style_low, rank_style_high=r.rank_style_high,
                   **{f"style_{f}": r.style.get(f) for f in FEATURES})
        row.update(mean_words=r.mean_words, n_scored=r.n_scored, **r.health.model_dump(), judge=r.judge,
                   family_overlap=r.family_overlap, date=r.date, harness_version=r.harness_version, trust=r.trust,
                   anchor_only=r.anchor_only, disputed=r.disputed, arrived=r.arrived, control=r.control, run_id=r.run_id)
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


def write_site(built: Built, protocol: BoardProtocol, out: Path, *, key: bytes) -> list[Path]:
    """Write the board folder (built aside, then swapped in: never half a board); returns the files written.

    An existing ``out`` is replaced only when it is a board folder (it has leaderboard.json) or empty. The ledger is
    signed with ``key``.
    """
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "leaderboard.json").is_file())):
        raise HarnessError(f"--output {out} exists and is not a board folder: give a new or a board folder")
    tmp = out.parent / f".{out.name}.building"
    if tmp.exists():
        shutil.rmtree(tmp)
    _write_site(built, protocol, tmp, key)
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


def _write_site(built: Built, protocol: BoardProtocol, out: Path, key: bytes) -> None:
    from leaderboard.card import dataset_card
    from leaderboard.page import render_page
    from leaderboard.protocol import save_protocol

    board = built.board
    out.mkdir(parents=True)
    rows = flat_rows(board)
    write_json(out / "leaderboard.json", board.model_dump(mode="json"))
    write_atomic(out / "leaderboard.csv", _csv(rows))
    _parquet(rows, out / "leaderboard.parquet")
    write_atomic(out / "index.html", render_page(board))
    write_atomic(out / "README.md", dataset_card(board, protocol))
    write_atomic(out / "eval.yaml", benchmark_yaml(board.name, protocol))  # the board as a Hub benchmark
    write_json(out / "rejected.json", [r.model_dump() for r in board.rejected])
    write_json(out / LEDGER, ledger_record(built.ledger, protocol.hash, key))
    save_protocol(protocol, out / "board.yaml")  # submitters check their runs against it
    results = (out / "results").resolve()
    for entry in built.entries:
        dest = out / "results" / entry.run_id
        if not safe_run_id(entry.run_id) or results not in dest.resolve().parents:
            raise HarnessError(f"run id {entry.run_id!r} is not a folder under results/: nothing written")
        dest.mkdir(parents=True, exist_ok=True)
        # a submission's own "records" are never copied: on the board they would look like the board's
        names = RUN_FILES if entry.source == "submissions" else COPIED
        for name in names:
            if (entry.run.path / name).is_file():
                _place(entry.run.path / name, dest / name)


def _place(src: Path, dest: Path) -> None:
    """A run file in the board folder: a hard link where the file system allows, else a copy.

    A link is instant and makes no second copy of a 1,000-run board; the harness replaces files (os.replace), never
    rewrites them in place, so the board keeps what it admitted.
    """
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def rejected_summary(rejected: Sequence[Rejection]) -> list[str]:
    """One line per refused run, for the console."""
    return [f"{r.run}: {r.reason}" for r in rejected]
