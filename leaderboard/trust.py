"""How far the board trusts a run: decided by the board alone, from where the run came and its own signed records.

Never from anything a submitter wrote.

Trust levels, highest first:

- ``maintainer``: a run the maintainer made and gave to ``leaderboard build --runs`` (or one a signed ledger of this
  board recorded as such): its replies and verdicts are the board's own;
- ``verified``: a submission re-judged by ``leaderboard verify`` with the board's judge for *every* comparison the
  protocol requires, whose numbers agreed (and whose replies were regenerated, when asked);
- ``self-reported``: a submission as sent. It is rated against the anchor only: its other comparisons (a
  reference that is another board model) are its own word and never move another model's rating;
- ``control``: made by ``leaderboard controls`` (never by a file's name).

The records that raise a run above self-reported (``verification.json``, ``control.json``) and the board's ledger
(``ledger.json``: which runs the board has seen, in which order, at which trust) are signed with the board's key
(HMAC-SHA256 over the record, which names the protocol hash and the sha256 of every run file). Anyone can compute
the fields; only the holder of the key can sign them, so a record copied into a submission or added by a pull
request means nothing. The key is ``$EMPATHY_BOARD_KEY`` (in CI: a secret), else the file
``$XDG_CONFIG_HOME/empathy-harness/board.key``, made on first use.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.evaluate.runs import FILES, PROBE, RESULTS
from harness.evaluate.style_check import STYLE

#: Duplicates of a model keep the most trusted run (lowest rank), then the one the board saw first.
TRUST_RANK: dict[str, int] = {"maintainer": 0, "verified": 1, "self-reported": 2, "control": 3}
#: The runs whose every comparison the board's judge made: only they may rate a model against another board model.
JUDGED_BY_THE_BOARD: frozenset[str] = frozenset({"maintainer", "verified"})

KEY_ENV = "EMPATHY_BOARD_KEY"
VERIFICATION = "verification.json"
CONTROL = "control.json"
LEDGER = "ledger.json"
#: The files a record vouches for (every run file but the records themselves).
RUN_FILES = (RESULTS, *FILES, PROBE, STYLE)
MIN_KEY_CHARS = 32


def key_file() -> Path:
    """Where the board's key is kept when ``$EMPATHY_BOARD_KEY`` is not set."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "empathy-harness" / "board.key"


def board_key(*, create: bool = False) -> bytes | None:
    """The board's signing key: ``$EMPATHY_BOARD_KEY``, else the key file (made, mode 0600, when ``create``).

    Raises:
        HarnessError: a key shorter than 32 characters.
    """
    given = os.environ.get(KEY_ENV, "").strip()
    where = KEY_ENV
    if not given:
        path = key_file()
        where = str(path)
        if path.is_file():
            given = path.read_text(encoding="utf-8").strip()
        elif create:
            path.parent.mkdir(parents=True, exist_ok=True)
            given = secrets.token_hex(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(given + "\n")
            from harness.core.ui import console

            console.print(f"created the board's signing key {path} — keep it: the board's records are signed with "
                          f"it (on another machine or in CI, set {KEY_ENV} to its contents)", soft_wrap=True)
        else:
            return None
    if len(given) < MIN_KEY_CHARS:
        raise HarnessError(f"the board key in {where} has {len(given)} characters, at least {MIN_KEY_CHARS} are "
                           "needed: make one with python -c 'import secrets; print(secrets.token_hex(32))'")
    return given.encode()


def key_id(key: bytes) -> str:
    """A public name for a key (which key signed a record), revealing nothing of it."""
    return hashlib.sha256(b"empathy-board-key:" + key).hexdigest()[:12]


def _canonical(record: dict[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign(record: dict[str, Any], key: bytes) -> dict[str, Any]:
    """``record`` with ``key_id`` and ``signature`` (HMAC-SHA256 over every other field)."""
    out = {**record, "key_id": key_id(key)}
    return {**out, "signature": hmac.new(key, _canonical(out), hashlib.sha256).hexdigest()}


def signature_problem(record: dict[str, Any], key: bytes | None) -> str | None:
    """Why ``record`` is not signed with ``key`` (naming the field), or None when it is."""
    if key is None:
        return (f"signature: no board key here ({KEY_ENV} is not set and {key_file()} does not exist) to check it "
                "with")
    if record.get("key_id") != key_id(key):
        return f"key_id: the record was signed with key {record.get('key_id')!r}, this board's key is {key_id(key)!r}"
    expected = hmac.new(key, _canonical(record), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(str(record.get("signature", "")), expected):
        return "signature: it does not match the record (edited after signing, or not signed by this board)"
    return None


def files_sha256(folder: Path) -> dict[str, str]:
    """sha256 of each run file present in ``folder`` (what a record vouches for)."""
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
            for name in RUN_FILES if (folder / name).is_file()}


def read_record(path: Path) -> dict[str, Any] | None:
    """A record file as a dict; None when absent. Unreadable or not an object: an error naming the file."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{path}: not a readable record ({exc})") from exc
    if not isinstance(record, dict):
        raise HarnessError(f"{path}: not a record (a JSON object)")
    return record


def record_problem(record: dict[str, Any], folder: Path, protocol_hash: str, key: bytes | None) -> str | None:
    """Why a record does not vouch for the run in ``folder`` on this board (naming the field), or None."""
    problem = signature_problem(record, key)
    if problem:
        return problem
    if record.get("protocol_hash") != protocol_hash:
        return f"protocol_hash: the record is for board protocol {record.get('protocol_hash')!r}, this board's is " \
               f"{protocol_hash!r}"
    vouched = record.get("files_sha256")
    here = files_sha256(folder)
    if not isinstance(vouched, dict) or vouched != here:
        changed = sorted(n for n in set(here) | set(vouched or {}) if (vouched or {}).get(n) != here.get(n))
        return f"files_sha256: {', '.join(changed) or 'the file list'} differ(s) from the files the record was " \
               "signed for"
    return None
