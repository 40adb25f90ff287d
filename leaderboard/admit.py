"""Which runs are on the board, and how far the board trusts each.

Every run folder is read through ``load_run`` (:mod:`leaderboard.loading`: in parallel, and once per content),
checked against the protocol, given a trust level by the board
(:mod:`leaderboard.trust`), and one run per model kept.

Refused (each with one reason, written to ``rejected.json``): folders ``load_run`` refuses, runs that differ from
the protocol in any field, runs whose board record (verification or control) is not this board's — naming the field
that differs — and duplicates: the same model (fingerprint and revision) twice keeps the most trusted run, then the
one the board saw first (its ledger), never the one that says it is newer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.core.errors import HarnessError
from harness.core.validity import JudgeValidity
from harness.evaluate.references import now
from harness.evaluate.runs import Run
from leaderboard.ledger import Arrival
from leaderboard.loading import BoardRun, load_board_runs
from leaderboard.models import ControlKind, Rejection, Trust
from leaderboard.protocol import BoardProtocol, mismatches
from leaderboard.trust import (
    CONTROL,
    JUDGED_BY_THE_BOARD,
    TRUST_RANK,
    VERIFICATION,
    read_record,
    record_problem,
)

CONTROL_PREFIX = "control-"
CONTROLS: tuple[ControlKind, ...] = ("null_model", "verbose_padding", "anchor_self", "human")
#: Where a run folder came from: the maintainer's ``--runs``, the board's published ``results/`` (``--from-hub``),
#: or submissions (``--submissions``, the board repo's ``submissions/``).
Source = Literal["runs", "published", "submissions"]
_SOURCE_ORDER: dict[str, int] = {"runs": 0, "published": 1, "submissions": 2}
#: ``<org>__<model>/<run>`` or a single segment: letters, digits, '_', '-', '.', never '.' or '..' alone.
RUN_ID = re.compile(r"[A-Za-z0-9_][\w.-]*(/[A-Za-z0-9_][\w.-]*)?", re.ASCII)


@dataclass(frozen=True)
class Entry:
    """An admitted run, how the board names it, and how far the board trusts it."""

    run: BoardRun
    run_id: str
    trust: Trust
    control: ControlKind | None
    source: Source
    arrival: Arrival
    """The board's record of when it first saw the run (its ledger), never a date written in the run."""
    disputed: bool = False

    @property
    def verified(self) -> bool:
        """Re-judged by the board and agreed."""
        return self.trust == "verified"


def find_runs(paths: Iterable[Path]) -> list[Path]:
    """Run folders among ``paths``: each path itself when it is one, else every run folder below it."""
    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise HarnessError(f"{path}: no such run folder or submissions folder")
        if _is_run(path):
            found.append(path)
        else:
            found.extend(sorted(p for p in path.rglob("*") if p.is_dir() and _is_run(p)))
    return list(dict.fromkeys(found))


def _is_run(path: Path) -> bool:
    return path.is_dir() and any((path / f).is_file() for f in ("results.json", "judgments.jsonl", "manifest.json"))


#: The longest model part of a run id (file systems allow 255 bytes per name).
MAX_SLUG = 100


def safe_run_id(run_id: str) -> bool:
    """A run id usable as a folder on the board: no '..', no absolute path, at most one '/', short names."""
    return bool(RUN_ID.fullmatch(run_id)) and ".." not in run_id and all(
        len(part) <= MAX_SLUG for part in run_id.split("/"))


def run_id(run: Run | BoardRun) -> str:
    """``<org>__<model>/<hash of results.json>``: stable, unique, safe as a path in the board's repo."""
    name = run.result.model
    if run.result.provenance.systems["candidate"].model.kind in ("local", "replies"):
        name = "/".join(Path(name).parts[-2:])
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name.replace("/", "__"))
    slug = re.sub(r"\.{2,}", ".", slug)[:MAX_SLUG].strip("-.") or "model"  # never '.', '..' or a hidden folder
    full = run.results_sha256 if isinstance(run, BoardRun) else ""
    digest = (full or hashlib.sha256((run.path / "results.json").read_bytes()).hexdigest())[:12]
    return f"{slug}/{digest}"


@dataclass(frozen=True)
class Standing:
    """What the board makes of a run before duplicates are decided."""

    trust: Trust
    control: ControlKind | None = None
    disputed: bool = False
    """``leaderboard verify`` re-judged it and the claim did not hold (shown; the board's numbers, not the
    submitter's)."""


def _trust(run: BoardRun, source: Source, protocol: BoardProtocol, key: bytes | None,
           ledger: Mapping[str, Arrival], rid: str) -> Standing:
    """The trust the board gives ``run`` (from where it came and the board's own signed records).

    Raises:
        HarnessError: a record that is not this board's (the field that differs), or replies that are not a model.
    """
    replies = run.result.provenance.systems["candidate"].model.kind == "replies"
    if source != "submissions":  # a record inside a submission is the submitter's word: never read
        for name in (CONTROL, VERIFICATION):
            record = read_record(run.path / name)
            if record is None:
                continue
            problem = record_problem(record, run.path, protocol.hash, key)
            if problem:
                raise HarnessError(f"its {name} is not this board's record — {problem}; "
                                   + ("make the controls again with 'empathy leaderboard controls'" if name == CONTROL
                                      else "verify the submission again with 'empathy leaderboard verify'"))
            if name == CONTROL:
                kind = record.get("control")
                if kind not in CONTROLS or not replies:
                    raise HarnessError(f"its {name} names control {kind!r} for a {'replies' if replies else 'model'} "
                                       f"run: a control is one of {list(CONTROLS)}, made from a replies file")
                return Standing("control", kind)
            if replies:
                break  # (a verification vouches for a model's replies: a replies file declares no model)
            verified = record.get("status") == "verified"
            return Standing("verified" if verified else "self-reported", disputed=not verified)
    if replies:
        raise HarnessError(
            "replies from a file are not a model: nothing ties them to a model and revision — submit the model's own "
            "run (empathy eval --model ORG/NAME --revision SHA), or have the board verify it. Control rows are made "
            "only by 'empathy leaderboard controls' (a name like control-<kind>.jsonl makes nothing a control)")
    candidate = run.manifest.get("candidate")
    if source == "runs" and not (isinstance(candidate, dict) and candidate.get("declared")):
        return Standing("maintainer")  # the maintainer's own run (a re-judged submission declares its model instead)
    known = ledger.get(rid)
    if known is not None and known.trust == "maintainer" and known.files_sha256 == run.files_sha256:
        return Standing("maintainer")  # byte for byte the run the board recorded as its own, wherever it lies now
    return Standing("self-reported")


def admit(paths: Sequence[Path], protocol: BoardProtocol, *, untrusted: Sequence[Path] = (),
          published: Sequence[Path] = (), ledger: Mapping[str, Arrival] | None = None, key: bytes | None = None,
          built_from: str | None = None, landed: Mapping[Path, tuple[str, str]] | None = None,
          cache: Path | None = None, workers: int | None = None,
          ) -> tuple[list[Entry], list[Rejection], dict[str, Arrival]]:
    """Admitted runs (one per model), refused ones with their reasons, and the board's updated ledger.

    Args:
        protocol: The board's protocol.
        paths: The maintainer's run folders (``--runs``): their own runs, re-judged submissions, controls.
        untrusted: Submission folders: admitted as self-reported, whatever they carry.
        published: The board's published ``results/`` (``--from-hub``): trusted only through the board's signed
            records and ledger.
        ledger: The board's record of the runs it has seen (:func:`leaderboard.ledger.load_ledger`).
        key: The board key that checks the records.
        built_from: The board repo commit the runs were read from (recorded for new arrivals).
        landed: For run folders read from the board repo: (date, commit) of the commit that last changed their
            results.json there — the order in which new submissions arrived.
        cache: Where what admission computed per run is kept (:mod:`leaderboard.loading`); None: nothing kept.
        workers: Processes that check runs in parallel (default: the CPU count, at most 8).
    """
    ledger = dict(ledger or {})
    rejected: list[Rejection] = []
    found: list[tuple[BoardRun, str, Standing, Source]] = []
    sources: list[tuple[Path, Source]] = [*((p, "runs") for p in find_runs(paths)),
                                          *((p, "published") for p in find_runs(published)),
                                          *((p, "submissions") for p in find_runs(untrusted))]
    loaded = load_board_runs([p for p, _ in sources], protocol.hash, cache, workers=workers, key=key)
    for path, source in sources:
        try:
            run = loaded[path]
            if isinstance(run, HarnessError):
                raise run
            problems = mismatches(run.result, protocol)
            if problems:
                raise HarnessError("; ".join(problems))
            rid = run_id(run)
            if not safe_run_id(rid):  # (run_id never makes one: a last guard before the id becomes a path)
                raise HarnessError(f"run id {rid!r} is not usable as a folder on the board")
            standing = _trust(run, source, protocol, key, ledger, rid)
        except HarnessError as exc:
            rejected.append(Rejection(run=str(path), reason=str(exc)))
            continue
        found.append((run, rid, standing, source))
    # the board's arrival order: runs it saw before keep their place; new ones follow — the maintainer's first, then
    # by when they landed in the board repo (the commit that added them), then by id
    stamp, nxt = now(), max((a.seq for a in ledger.values()), default=-1) + 1
    landed = dict(landed or {})
    for run, rid, standing, _ in sorted(found, key=lambda f: (_SOURCE_ORDER[f[3]], *landed.get(f[0].path, ("", "")),
                                                                 f[1])):
        if rid not in ledger:
            date, commit = landed.get(run.path, (stamp, built_from))
            ledger[rid] = Arrival(seq=nxt, arrived=date, built_from_commit=commit, trust=standing.trust,
                                  control=standing.control, files_sha256=run.files_sha256)
            nxt += 1
    candidates = [Entry(run, rid, st.trust, st.control, source, ledger[rid], st.disputed)
                  for run, rid, st, source in found]
    kept: dict[tuple[str, str | None], Entry] = {}
    # most trusted first; among equals, the board's own re-judged numbers (disputed) before the submitter's, then
    # the first arrival
    for entry in sorted(candidates, key=lambda e: (TRUST_RANK[e.trust], not e.disputed, e.arrival.seq,
                                                   _SOURCE_ORDER[e.source])):
        model = entry.run.result.provenance.systems["candidate"].model
        key_ = (model.fingerprint, model.revision)
        if key_ in kept:
            first = kept[key_]
            if first.run_id == entry.run_id:
                continue  # the very same run twice (e.g. a merged submission and its published copy)
            why = (f"{first.trust}, above {entry.trust}" if first.trust != entry.trust else
                   "the board re-judged it (disputed): its numbers are the board's" if first.disputed
                   and not entry.disputed else f"both {entry.trust}; the board saw it first: arrival "
                   f"#{first.arrival.seq}, this one #{entry.arrival.seq}")
            rejected.append(Rejection(run=str(entry.run.path), reason=(
                f"duplicate: the same model (fingerprint {model.fingerprint}, revision {model.revision}) is on the "
                f"board from {first.run.path} ({why})")))
            continue
        kept[key_] = entry
    # the ledger records the trust each run has now: the best any of its copies earned (a copy of a maintainer run
    # among the submissions does not lower it)
    for e in sorted(candidates, key=lambda e: -TRUST_RANK[e.trust]):
        ledger[e.run_id] = ledger[e.run_id].model_copy(update={"trust": e.trust, "control": e.control})
    return sorted(kept.values(), key=lambda e: e.run_id), rejected, ledger


def board_validity(entries: Sequence[Entry]) -> JudgeValidity | None:
    """The judge's validity figures carried by the runs the board judged itself (a submission's are its own claim).

    Every such run has the board's judge (load_run matched the figures to it); the most trusted, then the latest
    arrival (the newest measurement), is shown — expert figures preferred, since they answer more.
    """
    judged = sorted((e for e in entries if (e.trust in JUDGED_BY_THE_BOARD or e.control is not None)
                     and e.run.result.judge_validity is not None), key=lambda e: (TRUST_RANK[e.trust], -e.arrival.seq))
    found = [e.run.result.judge_validity for e in judged]
    best = [v for v in found if v is not None and v.experts_kappa is not None] or found
    return best[0] if best else None
