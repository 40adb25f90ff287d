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
import json
import os
import pickle
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from harness import __version__
from harness.core.errors import HarnessError
from harness.core.io import write_atomic_bytes
from harness.core.records import RunResult
from harness.evaluate.runs import load_run
from harness.score.stats import OUTCOME_SCORE
from leaderboard.trust import files_sha256

CACHE_FOLDER = "board-runs"
#: Bump when what a check does changes (a new check in load_run, a new field kept): older cache entries then miss.
LOADER_VERSION = "2"
#: Below this many runs to read, worker processes cost more than they save.
PARALLEL_FROM = 24


@dataclass(frozen=True)
class BoardRun:
    """What the board keeps of a run that :func:`load_run` accepted."""

    path: Path
    result: RunResult
    manifest: dict[str, Any]
    outcomes: dict[str, tuple[tuple[str, float], ...]]
    """Comparison → (dialogue id, score 1 / ½ / 0) of every scored dialogue, in file order."""
    files_sha256: dict[str, str]
    results_sha256: str


def board_run(path: Path, files: dict[str, str]) -> BoardRun:
    """Check ``path`` in full with :func:`load_run` and keep what the board uses."""
    run = load_run(path)
    outcomes: dict[str, list[tuple[str, float]]] = {name: [] for name in run.result.comparisons}
    for j in run.judgments:
        if j.outcome is not None:
            outcomes[j.comparison].append((j.dialogue_id, OUTCOME_SCORE[j.outcome]))
    return BoardRun(path=path, result=run.result, manifest=run.manifest,
                    outcomes={k: tuple(v) for k, v in outcomes.items()}, files_sha256=files,
                    results_sha256=files.get("results.json", ""))


def cache_key(files: dict[str, str], protocol_hash: str) -> str:
    """The cache key of a run: its files' sha256, the protocol hash, the harness and loader versions."""
    text = json.dumps({"files": files, "protocol": protocol_hash, "harness": __version__, "loader": LOADER_VERSION},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def load_board_runs(paths: Sequence[Path], protocol_hash: str, cache: Path | None, *,
                    workers: int | None = None) -> dict[Path, BoardRun | HarnessError]:
    """Every run folder, checked (from the cache when its files are unchanged) or the error that refuses it."""
    from harness.core.ui import new_progress

    out: dict[Path, BoardRun | HarnessError] = {}
    todo: list[tuple[Path, dict[str, str], Path | None]] = []
    with ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, 8)) as threads:  # sha256 releases the GIL
        hashes = list(threads.map(files_sha256, paths))
    for path, files in zip(paths, hashes, strict=True):
        entry = cache / f"{cache_key(files, protocol_hash)}.pickle" if cache is not None else None
        hit = _read_cached(entry, path) if entry is not None else None
        if hit is not None:
            out[path] = hit
        else:
            todo.append((path, files, entry))
    if not todo:
        return out
    n = workers if workers is not None else min(os.cpu_count() or 1, 8)
    with new_progress() as progress:
        task = progress.add_task(f"checking {len(todo)} run folders ({len(out)} unchanged, from the cache)",
                                 total=len(todo))
        if n > 1 and len(todo) >= PARALLEL_FROM:
            context = get_context("fork" if "fork" in _methods() else "spawn")
            with ProcessPoolExecutor(max_workers=n, mp_context=context) as pool:
                for path, got in zip((t[0] for t in todo), pool.map(_load_one, todo, chunksize=8), strict=True):
                    out[path] = got
                    progress.advance(task)
        else:
            for item in todo:
                out[item[0]] = _load_one(item)
                progress.advance(task)
    return out


def _methods() -> list[str]:
    from multiprocessing import get_all_start_methods

    return get_all_start_methods()


def _load_one(item: tuple[Path, dict[str, str], Path | None]) -> BoardRun | HarnessError:
    """One run checked in full (in a worker process or not), and remembered when it passed."""
    path, files, entry = item
    try:
        run = board_run(path, files)
    except HarnessError as exc:
        return HarnessError(str(exc))  # (a plain error: it crosses the process boundary unchanged)
    if entry is not None:
        try:
            write_atomic_bytes(entry, pickle.dumps(run, protocol=pickle.HIGHEST_PROTOCOL), sync=False)
        except OSError:
            pass  # a cache that cannot be written only makes the next build slower
    return run


def _read_cached(entry: Path, path: Path) -> BoardRun | None:
    try:
        run = pickle.loads(entry.read_bytes())  # noqa: S301 (the maintainer's own cache, keyed by content)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError):
        return None
    return replace(run, path=path) if isinstance(run, BoardRun) else None
