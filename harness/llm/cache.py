"""SQLite cache of model answers (judge and teacher), so that re-runs and crashed runs never ask twice.

The key (built by :class:`harness.llm.client.LLMClient`) is a hash of everything that determines an answer: the
client's answer fingerprint (model identity, backend, mode, decoding, dtype) and the fully rendered request. Answers are committed batch by batch (WAL mode), so a run
interrupted with Ctrl-C keeps every answer already made.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError


def cache_key(*parts: str | None) -> str:
    """A stable key for the given identity parts."""
    return hashlib.sha256(json.dumps([p or "" for p in parts], ensure_ascii=False).encode("utf-8")).hexdigest()


class JudgeCache:
    """A key → JSON value store in one SQLite file; counts hits and misses."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
        except (OSError, sqlite3.Error) as exc:
            raise HarnessError(f"cannot open the cache {self.path} ({type(exc).__name__}: {exc}): give --cache-dir a "
                               "folder you can write to") from exc
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
        )
        self._db.commit()
        self.hits = 0
        self.misses = 0

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The cached values among ``keys`` (counting hits and misses)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, Any] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self._db.execute(f"SELECT key, value FROM answers WHERE key IN ({marks})", chunk):
                found[key] = json.loads(value)
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def peek(self, key: str) -> Any:
        """One cached value or None, without counting a hit or miss (for bookkeeping entries)."""
        row = self._db.execute("SELECT value FROM answers WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_many(self, items: dict[str, Any]) -> None:
        """Store answers and commit at once (one transaction per judge batch)."""
        now = time.time()
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO answers (key, value, created) VALUES (?, ?, ?)",
                [(k, json.dumps(v, ensure_ascii=False), now) for k, v in items.items()],
            )

    def __len__(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM answers").fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def stats(self) -> dict[str, int]:
        """Hits and misses so far, for the run manifest."""
        return {"hits": self.hits, "misses": self.misses}
