"""Statistics of agreement with people: rank correlation and CIs that resample whole dialogues.

Pairs (and replies) of one dialogue are not independent, so every CI here resamples dialogues (clusters).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from harness.score.stats import N_BOOTSTRAP, mean_or_nan


def rankdata(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    a = np.asarray(values, dtype=float)
    sorter = np.argsort(a, kind="mergesort")
    inv = np.empty(a.size, dtype=int)
    inv[sorter] = np.arange(a.size)
    s = a[sorter]
    first = np.r_[True, s[1:] != s[:-1]]
    dense = np.cumsum(first)[inv]
    bounds = np.r_[np.nonzero(first)[0], a.size]
    return np.asarray(0.5 * (bounds[dense] + bounds[dense - 1] + 1), dtype=float)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho (Pearson on average ranks); NaN when either side is constant or n < 3."""
    if len(x) < 3:
        return math.nan
    rx, ry = rankdata(x), rankdata(y)
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def cluster_bootstrap(
    clusters: Sequence[Sequence[Any]], statistic: Callable[[list[Any]], float], *, seed: int,
    n_boot: int = N_BOOTSTRAP,
) -> tuple[float, float]:
    """95 % percentile CI of ``statistic`` over the pooled items, resampling whole clusters (dialogues)."""
    clusters = [c for c in clusters if len(c)]
    if not clusters:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(clusters), size=len(clusters))
        v = statistic([item for i in pick for item in clusters[i]])
        if not math.isnan(v):
            values.append(v)
    if not values:
        return math.nan, math.nan
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def rate_entry(clusters: dict[str, list[float]], seed: int) -> dict[str, Any]:
    """Mean of the pooled 0/½/1 values with its cluster-bootstrap CI and count (dialogue id → values)."""
    pooled = [v for vs in clusters.values() for v in vs]
    low, high = cluster_bootstrap(list(clusters.values()), mean_or_nan, seed=seed)
    return {"value": mean_or_nan(pooled), "ci_low": low, "ci_high": high, "n": len(pooled)}


def spearman_entry(points: dict[str, list[tuple[float, float]]], seed: int) -> dict[str, Any]:
    """Spearman's rho of pooled (score, rating) points with its cluster-bootstrap CI (dialogue id → points)."""
    pooled = [p for ps in points.values() for p in ps]

    def rho(items: list[tuple[float, float]]) -> float:
        return spearman([a for a, _ in items], [b for _, b in items])

    low, high = cluster_bootstrap(list(points.values()), rho, seed=seed, n_boot=500)
    return {"rho": rho(pooled), "ci_low": low, "ci_high": high, "n": len(pooled)}


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's τ-b (ties on either side handled as in scipy's default); NaN when n < 2 or a side is constant."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.size < 2:
        return math.nan
    i, j = np.triu_indices(a.size, k=1)
    sa, sb = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    pairs_a, pairs_b = int(np.count_nonzero(sa)), int(np.count_nonzero(sb))
    if pairs_a == 0 or pairs_b == 0:
        return math.nan
    return float(np.sum(sa * sb) / math.sqrt(pairs_a * pairs_b))


def quadratic_kappa(a: Sequence[float], b: Sequence[float], categories: Sequence[int] = (1, 2, 3, 4, 5)) -> float:
    """Cohen's κ with quadratic weights of two raters' integer ratings on the ordered ``categories``.

    κ = 1 − Σ w·O / Σ w·E with w_ij = (i − j)² / (K − 1)² on the category indices, O the observed joint
    proportions and E the product of the two marginals — ``sklearn.metrics.cohen_kappa_score(a, b,
    weights="quadratic")`` whenever every category between the lowest and highest observed one is observed
    (sklearn indexes only the labels it sees). NaN when there are no ratings or no disagreement is expected
    (both raters constant on the same value). A rating outside ``categories`` is a ValueError.
    """
    cats = list(categories)
    index = {c: k for k, c in enumerate(cats)}
    if len(a) != len(b):
        raise ValueError(f"two raters must rate the same items: {len(a)} vs {len(b)} ratings")
    try:
        ia = np.array([index[int(v)] if float(v) == int(v) else -1 for v in a], dtype=int)
        ib = np.array([index[int(v)] if float(v) == int(v) else -1 for v in b], dtype=int)
    except KeyError as exc:
        raise ValueError(f"rating {exc.args[0]} is not one of {cats}") from None
    if (ia < 0).any() or (ib < 0).any():
        raise ValueError(f"ratings must be integers among {cats} (round them first)")
    if ia.size == 0:
        return math.nan
    k = len(cats)
    observed = np.zeros((k, k))
    np.add.at(observed, (ia, ib), 1.0)
    observed /= ia.size
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    grid = np.arange(k)
    weights = (grid[:, None] - grid[None, :]) ** 2 / max(k - 1, 1) ** 2
    denominator = float(np.sum(weights * expected))
    if denominator == 0.0:
        return math.nan
    return 1.0 - float(np.sum(weights * observed)) / denominator
