"""Which runs are on the board: every run folder read through ``load_run``, checked against the protocol.

Refused (each with one reason, written to ``rejected.json``): folders ``load_run`` refuses, runs that differ from
the protocol in any field, and duplicates — the same model (fingerprint and revision) twice keeps the newest run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import HarnessError
from harness.evaluate.runs import Run, load_run
from leaderboard.models import ControlKind, Rejection
from leaderboard.protocol import BoardProtocol, mismatches

CONTROL_PREFIX = "control-"
CONTROLS: tuple[ControlKind, ...] = ("null_model", "verbose_padding", "anchor_self", "human")
VERIFICATION = "verification.json"


@dataclass(frozen=True)
class Entry:
    """An admitted run and how the board names it."""

    run: Run
    run_id: str
    control: ControlKind | None
    verified: bool


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


def control_kind(run: Run) -> ControlKind | None:
    """The control a run is (its candidate is a replies file named ``control-<kind>.jsonl``), or None."""
    model = run.result.provenance.systems["candidate"].model
    stem = Path(model.name).stem
    if model.kind == "replies" and stem.startswith(CONTROL_PREFIX):
        kind = stem[len(CONTROL_PREFIX):]
        return kind if kind in CONTROLS else None  # type: ignore[return-value]
    return None


def run_id(run: Run) -> str:
    """``<org>__<model>/<hash of results.json>``: stable, unique, safe as a path in the board's repo."""
    name = run.result.model
    if run.result.provenance.systems["candidate"].model.kind in ("local", "replies"):
        name = "/".join(Path(name).parts[-2:])
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name.replace("/", "__")).strip("-") or "model"
    digest = hashlib.sha256((run.path / "results.json").read_bytes()).hexdigest()[:12]
    return f"{slug}/{digest}"


def is_verified(run: Run, protocol: BoardProtocol) -> bool:
    """``empathy leaderboard verify`` re-judged this run for *this* board and the numbers agreed.

    Only runs the maintainer gives (``--runs``, or the board's own ``results/``) can carry a verification: a record
    inside a submission is the submitter's word, and is ignored.
    """
    path = run.path / VERIFICATION
    if not path.is_file():
        return False
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    digest = hashlib.sha256((run.path / "results.json").read_bytes()).hexdigest()
    return bool(record.get("status") == "verified" and record.get("results_sha256") == digest
                and record.get("protocol_hash") == protocol.hash)


def admit(paths: Sequence[Path], protocol: BoardProtocol, *,
          untrusted: Sequence[Path] = ()) -> tuple[list[Entry], list[Rejection]]:
    """Admitted runs (one per model: verified first, then newest) and refused ones with their reasons.

    ``untrusted`` folders (submissions) are admitted like any run, but a verification record in them is ignored.
    """
    rejected: list[Rejection] = []
    candidates: list[Entry] = []
    trusted = find_runs(paths)
    for path in [*trusted, *find_runs(untrusted)]:
        try:
            run = load_run(path)
        except HarnessError as exc:
            rejected.append(Rejection(run=str(path), reason=str(exc)))
            continue
        problems = mismatches(run.result, protocol)
        if problems:
            rejected.append(Rejection(run=str(path), reason="; ".join(problems)))
            continue
        control = control_kind(run)
        if control is None and run.result.provenance.systems["candidate"].model.kind == "replies":
            rejected.append(Rejection(run=str(path), reason=(
                "replies from a file are not a model: nothing ties them to a model and revision — submit the model's "
                "own run (empathy eval --model ORG/NAME --revision SHA), or have the board verify it")))
            continue
        candidates.append(Entry(run=run, run_id=run_id(run), control=control,
                                verified=path in trusted and is_verified(run, protocol)))
    newest: dict[tuple[str, str | None], Entry] = {}
    for entry in sorted(candidates, key=lambda e: (e.verified, e.run.result.provenance.time), reverse=True):
        model = entry.run.result.provenance.systems["candidate"].model
        key = (model.fingerprint, model.revision)
        if key in newest:
            kept = newest[key]
            if kept.run_id == entry.run_id:
                continue  # the very same run twice (e.g. a merged submission and its published copy)
            why = "verified" if kept.verified else ("newer" if kept.run.result.provenance.time >
                                                     entry.run.result.provenance.time else "given first")
            rejected.append(Rejection(run=str(entry.run.path), reason=(
                f"duplicate: the same model (fingerprint {model.fingerprint}, revision {model.revision}) is on the "
                f"board from {kept.run.path} ({why})")))
            continue
        newest[key] = entry
    admitted = sorted(newest.values(), key=lambda e: e.run_id)
    return admitted, rejected
