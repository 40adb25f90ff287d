"""Bootstrap resample indices, drawn once per (seed, n, n_boot) in a process and shared by every statistic.

Every bootstrap in the harness draws its indices as ``np.random.default_rng(seed).integers(0, n, size=(n_boot, n))``;
a run's metrics share the seed and mostly the number of scored dialogues, so the draw (the costly part of a
bootstrap of a mean) is made once and reused — the indices, and so every CI, are exactly those of a fresh draw.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray


@lru_cache(maxsize=4)  # a run's CIs share one or two; a board worker keeps at most 4
def resample_indices(seed: int, n: int, n_boot: int) -> NDArray[np.int64]:
    """``default_rng(seed).integers(0, n, size=(n_boot, n))``, read-only (shared between callers)."""
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    idx.setflags(write=False)
    return idx


@lru_cache(maxsize=4)
def resample_counts(seed: int, n: int, n_boot: int) -> NDArray[np.float64]:
    """How often each item is drawn in each resample of :func:`resample_indices`: (n_boot × n), read-only.

    ``counts @ values / n`` gives every resample's mean of every column at once, without the (n_boot × n × columns)
    array that ``values[indices].mean(axis=1)`` builds.
    """
    idx = resample_indices(seed, n, n_boot)
    rows = np.repeat(np.arange(n_boot), n)
    counts = np.bincount(rows * n + idx.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)
    counts.setflags(write=False)
    return counts
