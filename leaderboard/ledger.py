"""The board's own record of the runs it has seen (``ledger.json`` in the board folder, signed with the board key).

For every run that passed admission once: the order in which the board first saw it (``seq``), when (``arrived``,
and the board repo commit it was read from), and the trust it had. Duplicates of a model are decided by trust, then
by this order — never by a date inside a run, which its submitter writes. A rebuild from the Hub reads the ledger
it published last time; a ledger that is not signed with this board's key (edited, or added by a pull request) is
refused — or, when the maintainer says so (``--reset-ledger``), not used: the runs it would vouch for then count as
self-reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.core.errors import HarnessError
from leaderboard.models import ControlKind, Trust
from leaderboard.trust import LEDGER, read_record, sign, signature_problem


class Arrival(BaseModel):
    """One run in the board's record."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    seq: int
    """The order in which the board first saw the run (0 first)."""
    arrived: str
    """When the board first saw it (the build's time)."""
    built_from_commit: str | None = None
    """The board repo's commit the run was read from, when it came from the Hub."""
    trust: Trust
    control: ControlKind | None = None
    files_sha256: dict[str, str]
    """sha256 of each run file when the board recorded it: a changed file is not the run the board saw."""


def load_ledger(folders: Iterable[Path], protocol_hash: str, key: bytes | None) -> tuple[dict[str, Arrival], list[str]]:
    """The runs recorded by the ledgers in ``folders`` (earliest record of each run wins) and why any was not used."""
    runs: dict[str, Arrival] = {}
    notes: list[str] = []
    for folder in folders:
        path = folder / LEDGER
        try:
            record = read_record(path)
        except HarnessError as exc:
            notes.append(f"{exc}: not used")
            continue
        if record is None:
            continue
        problem = signature_problem(record, key)
        if problem is None and record.get("protocol_hash") != protocol_hash:
            problem = (f"protocol_hash: it records board protocol {record.get('protocol_hash')!r}, this board's is "
                       f"{protocol_hash!r}")
        if problem is None:
            try:
                found = {rid: Arrival.model_validate(a) for rid, a in dict(record.get("runs", {})).items()}
            except (ValidationError, TypeError, ValueError) as exc:
                problem = f"runs: not a list of arrivals ({str(exc).splitlines()[0]})"
        if problem is not None:
            notes.append(f"{path} is not this board's record ({problem})")
            continue
        for rid, arrival in found.items():
            if rid not in runs or arrival.seq < runs[rid].seq:
                runs[rid] = arrival
    return runs, notes


def ledger_record(runs: dict[str, Arrival], protocol_hash: str, key: bytes) -> dict[str, Any]:
    """The signed ``ledger.json`` for ``runs``."""
    body = {"protocol_hash": protocol_hash,
            "runs": {rid: a.model_dump(mode="json") for rid, a in sorted(runs.items(), key=lambda kv: kv[1].seq)}}
    return sign(body, key)
