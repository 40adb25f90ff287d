"""Work split over forked processes, where forking is safe; else done here, in order.

Forking copies this process, its imports and its data, without importing anything again (each call's arguments
are still pickled to the worker) — but a child also inherits every lock another thread held at that moment, held
forever. So work is forked only on Linux, with no other Python thread (one may hold the logging or import lock), no
OpenMP runtime loaded (its pool does not survive a fork: torch loads one), no Arrow pool (``datasets``), no Rust or
gRPC pool (``tokenizers``, ``grpc``) and CUDA untouched. A BLAS pool (numpy's OpenBLAS) may run: it parks its threads
at a fork through its own ``pthread_atfork`` handlers. Otherwise the work runs here, one item after the other, with
the same function and the same results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def cores() -> int:
    """The cores this process may use (cgroups and ``taskset`` included), not the machine's."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def fork_is_safe() -> bool:
    """Whether forking this process now is safe (see the module docstring)."""
    import sys
    import threading

    if not sys.platform.startswith("linux") or threading.active_count() > 1:
        return False
    if any(pool in sys.modules for pool in ("pyarrow", "tokenizers", "grpc")):
        return False
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return False
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            maps = f.read()
    except OSError:
        return False
    return not any(runtime in maps for runtime in ("libgomp", "libiomp", "libomp"))


def fork_map(fn: Callable[..., T], calls: Sequence[tuple[Any, ...]], workers: int) -> tuple[list[T], int]:
    """``[fn(*args) for args in calls]`` in up to ``workers`` forked processes: the results in order, and how many.

    One process means here. The first error is raised and the calls not started yet are cancelled.
    """
    workers = min(workers, len(calls))
    if workers < 2 or not fork_is_safe():
        return [fn(*args) for args in calls], 1
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    try:
        return list(pool.map(fn, *zip(*calls, strict=True))), workers
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
