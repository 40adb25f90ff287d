"""Reading a board's run folders: every run checked in full once, in parallel, and remembered by its content.

The board reads each run folder through :func:`~harness.evaluate.runs.load_run` (a full recomputation of every
number: the tamper check) and keeps only what it uses — a :class:`BoardRun`: the path, the typed results, the
manifest, and each comparison's per-dialogue outcomes (for the Bradley–Terry battles). The verdict records,
replies and rubric scores are dropped once checked, so a board of thousands of runs fits in memory.

What admission computed is kept in a cache (``<cache>/board-runs/<key>.pickle``), keyed by the sha256 of the
run's files, the board's protocol hash and the harness and loader versions: a rebuild re-reads only runs it has not seen, and
a changed or tampered file changes the key and is checked in full again. The cache lives in the maintainer's own
cache folder (never in a board or a submission) and is trusted like the harness code itself. Runs not in the
cache are loaded in worker processes when there are many (``workers``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import harness
from harness import __version__
from harness.core.allocator import keep_freed_memory
from harness.core.errors import HarnessError
from harness.core.forks import cores
from harness.core.io import write_atomic_bytes
from harness.core.records import RunResult
from harness.evaluate.runs import load_run
from harness.score.stats import OUTCOME_SCORE
from harness.score.style import FEATURES
from leaderboard.trust import files_sha256

CACHE_FOLDER = "board-runs"
#: Below this many runs to read, worker processes cost more than they save.
PARALLEL_FROM = 24


@dataclass(frozen=True, eq=False)
class BoardRun:
    """What the board keeps of a run that :func:`load_run` accepted."""

    path: Path
    result: RunResult
    manifest: dict[str, Any]
    outcomes: dict[str, tuple[tuple[str, float], ...]]
    """Comparison → (dialogue id, score 1 / ½ / 0) of every scored dialogue, in file order."""
    files_sha256: dict[str, str]
    results_sha256: str
    style: dict[str, npt.NDArray[np.float64]] | None = None
    """Comparison → (scored dialogues × 2 × features): the candidate's and the reference's style features
    (:data:`harness.score.style.FEATURES` order) per outcome, row k for ``outcomes[comparison][k]``; None for a run
    without a style profile (schema 2)."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BoardRun):
            return NotImplemented
        mine, theirs = self.style or {}, other.style or {}
        return ((self.path, self.result, self.manifest, self.outcomes, self.files_sha256, self.results_sha256)
                == (other.path, other.result, other.manifest, other.outcomes, other.files_sha256,
                    other.results_sha256)
                and (self.style is None) == (other.style is None) and mine.keys() == theirs.keys()
                and all(np.array_equal(v, theirs[k]) for k, v in mine.items()))


def board_run(path: Path, files: dict[str, str]) -> BoardRun:
    """Check ``path`` in full with :func:`load_run` and keep what the board uses."""
    run = load_run(path)
    outcomes: dict[str, list[tuple[str, float]]] = {name: [] for name in run.result.comparisons}
    for j in run.judgments:
        if j.outcome is not None:
            outcomes[j.comparison].append((j.dialogue_id, OUTCOME_SCORE[j.outcome]))
    style = None
    if run.style is not None:
        features = {(row.system, row.dialogue_id): [row.features[f] for f in FEATURES] for row in run.style}
        style = {name: np.array([[features[("candidate", d)], features[(name.removeprefix("vs_"), d)]]
                                 for d, _ in pairs], dtype=np.float64).reshape(len(pairs), 2, len(FEATURES))
                 for name, pairs in outcomes.items()
                 if all((name.removeprefix("vs_"), d) in features for d, _ in pairs)}
    return BoardRun(path=path, result=run.result, manifest=run.manifest,
                    outcomes={k: tuple(v) for k, v in outcomes.items()}, files_sha256=files,
                    results_sha256=files.get("results.json", ""), style=style)


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 of the harness's and the board's own source and the style phrase file: what a check does."""
    from harness.score.style import load_counter

    digest = hashlib.sha256(f"{__version__}:{load_counter().fingerprint}".encode())
    for package in (Path(__file__).resolve().parent, Path(harness.__file__).resolve().parent):
        for source in sorted(package.rglob("*.py")):
            digest.update(source.read_bytes())
    return digest.hexdigest()


def cache_key(files: dict[str, str], protocol_hash: str) -> str:
    """The cache key of a run: its files' sha256, the protocol hash, and the code that checks it."""
    text = json.dumps({"files": files, "protocol": protocol_hash, "code": code_fingerprint()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def load_board_runs(paths: Sequence[Path], protocol_hash: str, cache: Path | None, *,
                    workers: int | None = None, key: bytes | None = None) -> dict[Path, BoardRun | HarnessError]:
    """Every run folder, checked (from the cache when its files are unchanged) or the error that refuses it.

    ``key`` (the board key): cache entries are signed with it (HMAC-SHA256) and an entry whose signature does not
    hold is a miss, so a cache folder others can write to cannot forge an admission.
    """
    from harness.core.ui import new_progress

    out: dict[Path, BoardRun | HarnessError] = {}
    todo: list[tuple[Path, dict[str, str], Path | None, bytes | None]] = []
    with ThreadPoolExecutor(max_workers=min(cores(), 8)) as threads:  # sha256 releases the GIL
        hashes = list(threads.map(files_sha256, paths))
    for path, files in zip(paths, hashes, strict=True):
        entry = cache / f"{cache_key(files, protocol_hash)}.pickle" if cache is not None else None
        hit = _read_cached(entry, path, key) if entry is not None else None
        if hit is not None:
            out[path] = hit
        else:
            todo.append((path, files, entry, key))
    if not todo:
        return out
    n = workers if workers is not None else min(cores(), 8)
    pool = None
    if n > 1 and len(todo) >= PARALLEL_FROM:  # a fresh server process forks the workers, never this threaded one
        pool = ProcessPoolExecutor(max_workers=n, initializer=keep_freed_memory, mp_context=get_context(
            "forkserver" if "forkserver" in get_all_start_methods() else "spawn"))
    try:
        with new_progress() as progress:
            task = progress.add_task(f"checking {len(todo)} run folders ({len(out)} unchanged, from the cache)",
                                     total=len(todo))
            results = pool.map(_load_one, todo, chunksize=8) if pool else map(_load_one, todo)
            for item, got in zip(todo, results, strict=True):
                out[item[0]] = got
                progress.advance(task)
    finally:
        if pool is not None:
            pool.shutdown()
    return out


def _load_one(item: tuple[Path, dict[str, str], Path | None, bytes | None]) -> BoardRun | HarnessError:
    """One run checked in full (in a worker process or not), and remembered when it passed and did not change."""
    path, files, entry, key = item
    try:
        run = board_run(path, files)
    except HarnessError as exc:
        return HarnessError(str(exc))  # (a plain error: it crosses the process boundary unchanged)
    except Exception as exc:  # noqa: BLE001 — one malformed run must not stop the board
        return HarnessError(f"could not be read ({type(exc).__name__}: {exc})")
    if files_sha256(path) != files:
        return HarnessError("its files changed while the board was reading them: build again")
    if entry is not None:
        data = pickle.dumps(run, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            write_atomic_bytes(entry, _sign(key, data) + data, sync=False)
        except OSError:
            pass  # a cache that cannot be written only makes the next build slower
    return run


def _sign(key: bytes | None, data: bytes) -> bytes:
    return hmac.new(key or b"unsigned", data, hashlib.sha256).digest()


def _read_cached(entry: Path, path: Path, key: bytes | None) -> BoardRun | None:
    try:
        raw = entry.read_bytes()
        signature, data = raw[:32], raw[32:]
        if not hmac.compare_digest(signature, _sign(key, data)):
            return None
        run = pickle.loads(data)  # noqa: S301 (the maintainer's own cache: keyed by content, signed with the key)
    except Exception:  # noqa: BLE001 — any unreadable entry (truncated, from older code) is only a miss
        return None
    return replace(run, path=path) if isinstance(run, BoardRun) else None
