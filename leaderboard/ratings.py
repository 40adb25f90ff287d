"""Anchored Bradley–Terry ratings with dialogue-bootstrap CIs and Arena-style rank ranges.

The model: P(a beats b) = 1 / (1 + 10^((R_b − R_a) / scale)). A battle's ``score_a`` is its target (1 win, ½ tie,
0 loss, or any fraction in between), so a tie is half a win for each side. The ratings are the maximum-likelihood
fit (``scipy.optimize.minimize``, L-BFGS-B with the analytic gradient) with the anchor's rating held at
``anchor_value``: the anchor has no parameter, so its score and CI are exactly ``anchor_value``.

Penalty: the likelihood carries a tiny L2 term, ``L2 / 2 · Σ θ²`` on the log-odds ratings θ (θ = 0 is the anchor).
Without it a model that wins (or loses) every battle — which happens in bootstrap resamples even when the full data
are fine — has no finite maximum. It moves a rating by about L2·θ / (n·p(1 − p)) log-odds (n battles, p the
win probability): under 0.002 points for a system within ±400 points of the anchor over 250 dialogues, about 0.07
points at ±900. A system that wins (loses) every battle gets a large finite rating instead, ≈ +(−)2,100 points at
250 dialogues: read it as "beyond measure", not as a number.

CIs: 95 % percentile bootstrap over *dialogues* (every battle of a drawn dialogue comes with it). Battles are first
aggregated into per-pair totals per dialogue; a resample's totals are then (draw counts) × (per-dialogue totals), so
each refit costs O(pairs), not O(battles), and all resamples are refitted together (:mod:`leaderboard.bt_batch`:
batched damped Newton, the per-resample optimiser as its fallback). A resample that leaves a model with no path to the anchor cannot rate it;
that model's percentiles use the resamples that can.

Ranks (Arena style), among the ``ranked`` systems only (see :class:`Rating` and :func:`rank_ranges`): systems whose
CIs overlap get overlapping ranges. The style-controlled column is :mod:`leaderboard.style_ratings`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.optimize import minimize
from scipy.sparse.csgraph import connected_components
from scipy.special import expit

from leaderboard.bt_batch import bootstrap, polish

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

L2 = 1e-4  # strength of the L2 penalty on the log-odds ratings (see the module docstring)


class Battle(NamedTuple):
    """One dialogue's pairwise outcome between two systems (both answer orders already combined).

    A named tuple, not a frozen dataclass: a 1,000-model board makes 250,000 of them, about 4× faster.

    Attributes:
        dialogue_id: The dialogue both systems answered; the bootstrap resamples these.
        a: One system.
        b: The other system.
        score_a: ``a``'s share of the win: 1 = ``a`` wins, 0.5 = tie, 0 = ``b`` wins (fractions allowed).
    """

    dialogue_id: str
    a: str
    b: str
    score_a: float


@dataclass(frozen=True)
class Rating:
    """One system's anchored Bradley–Terry rating, its 95 % CI and its rank range.

    ``score`` is the maximum-likelihood rating (the anchor's is exactly the anchor value); ``ci_low`` / ``ci_high``
    the 2.5th / 97.5th percentiles of the dialogue-bootstrap ratings; ``rank`` = ``rank_low`` = 1 + the ranked
    systems whose ``ci_low`` exceeds this ``ci_high`` (the best rank the CIs allow); ``rank_high`` = 1 + the *other*
    ranked systems whose ``ci_high`` is at least this ``ci_low`` (the worst).
    """

    model: str
    score: float
    ci_low: float
    ci_high: float
    rank: int
    rank_low: int
    rank_high: int


@dataclass(frozen=True)
class Design:
    """Battles aggregated per (dialogue, pair); the anchor is parameter slot ``n_free`` (held at 0)."""

    models: tuple[str, ...]
    """Free models (sorted), then the anchor last."""
    left: IntArray
    right: IntArray
    """Each pair's two slots, ``left < right``."""
    games: sparse.csr_matrix
    """(n_dialogues × n_pairs): how many battles the dialogue holds for the pair."""
    wins: sparse.csr_matrix
    """(n_dialogues × n_pairs): the summed scores of the pair's ``left`` side."""

    @property
    def n_free(self) -> int:
        """How many systems have a free rating (all but the anchor)."""
        return len(self.models) - 1


def fit_ratings(
    battles: Sequence[Battle],
    *,
    anchor: str,
    anchor_value: float = 1000.0,
    scale: float = 400.0,
    n_boot: int = 1000,
    seed: int = 0,
    ranked: Collection[str] | None = None,
) -> dict[str, Rating]:
    """Fit anchored Bradley–Terry ratings with dialogue-bootstrap CIs and rank ranges.

    Args:
        battles: Pairwise outcomes; the same (dialogue, pair) may appear more than once (they add up), and a pair
            may be given either way round (``Battle(d, b, a, 1 − s)`` is the same battle as ``Battle(d, a, b, s)``).
        anchor: The system whose rating is fixed at ``anchor_value``; every other system must be linked to it
            by a chain of battles.
        anchor_value: The anchor's rating.
        scale: Rating points per factor of 10 in the odds (400 as in Elo).
        n_boot: Bootstrap resamples of the dialogues; 0 skips the bootstrap (each CI collapses to the score).
        seed: Seed of ``np.random.default_rng`` for the resamples.
        ranked: The systems ranks count (e.g. leave out control rows); default all. Every system, ranked or
            not, gets a rank against this set.

    Returns:
        Every system in the battles (the anchor included) → its ``Rating``.

    Raises:
        ValueError: No battles; a battle of a system against itself or with a score outside [0, 1]; the anchor
            or a name in ``ranked`` absent from the battles; a system with no chain of battles to the anchor;
            ``scale`` not positive or ``n_boot`` negative.
    """
    check_scale(scale, n_boot)
    raw = fit_raw(battles, anchor=anchor, n_boot=n_boot, seed=seed)
    return ratings_of(raw.design, np.append(raw.theta, 0.0), raw.boot, anchor_value=anchor_value, scale=scale,
                      mask=ranked_mask(raw.design.models, ranked))


@dataclass(frozen=True)
class RawFit:
    """The raw fit in log-odds, before it becomes ratings (the style-controlled fit builds on it)."""

    design: Design
    theta: Array
    """The free systems' log-odds ratings (the anchor's is 0)."""
    boot: Array | None
    """(n_boot × all systems, anchor last = 0) refitted log-odds; NaN = unrated in that resample; None: n_boot 0."""


def check_scale(scale: float, n_boot: int) -> None:
    """Refuse a scale that is not a positive number and a negative ``n_boot``."""
    if scale <= 0 or not math.isfinite(scale):
        raise ValueError(f"scale={scale}: must be a positive number of rating points (e.g. 400)")
    if n_boot < 0:
        raise ValueError(f"n_boot={n_boot}: must be ≥ 0 (0 skips the bootstrap)")


def fit_raw(battles: Sequence[Battle], *, anchor: str, n_boot: int, seed: int) -> RawFit:
    """The raw point fit and its dialogue-bootstrap refits (see :func:`fit_ratings`)."""
    design = aggregate(battles, anchor)
    check_connected(design, anchor)
    theta = fit_pairs(design, design.games.sum(axis=0).A1, design.wins.sum(axis=0).A1, np.zeros(design.n_free))
    theta = polish(design, theta, L2)  # solved as exactly as its resamples (bt_batch)
    return RawFit(design, theta, bootstrap(design, theta, n_boot, seed) if n_boot else None)


def ratings_of(design: Design, theta: Array, boot: Array | None, *, anchor_value: float, scale: float,
               mask: npt.NDArray[np.bool_]) -> dict[str, Rating]:
    """Ratings, CIs and rank ranges from log-odds (all systems, anchor last) and their resamples."""
    points = scale / math.log(10.0)
    score = anchor_value + points * theta
    if boot is None:
        low, high = score.copy(), score.copy()
    else:
        low, high = percentile_intervals(anchor_value + points * boot, score)
    low[-1] = high[-1] = score[-1] = anchor_value  # exact, free of rounding
    rank_low, rank_high = rank_ranges(low, high, mask)
    return {
        name: Rating(model=name, score=float(score[k]), ci_low=float(low[k]), ci_high=float(high[k]),
                     rank=int(rank_low[k]), rank_low=int(rank_low[k]), rank_high=int(rank_high[k]))
        for k, name in enumerate(design.models)
    }


def aggregate(battles: Sequence[Battle], anchor: str) -> Design:
    """Validate the battles and sum them per (dialogue, unordered pair)."""
    if not battles:
        raise ValueError("no battles to rate: give at least one Battle against the anchor")
    names: set[str] = set()
    for bt in battles:
        if bt.a == bt.b:
            raise ValueError(f"battle on dialogue {bt.dialogue_id!r} pits {bt.a!r} against itself: drop it "
                             "(an anchor-vs-itself control is reported, not rated)")
        if not 0.0 <= bt.score_a <= 1.0:  # also refuses NaN
            raise ValueError(f"battle {bt.a!r} vs {bt.b!r} on dialogue {bt.dialogue_id!r} has score_a="
                             f"{bt.score_a}: must lie in [0, 1] (1 win, 0.5 tie, 0 loss)")
        names.update((bt.a, bt.b))
    if anchor not in names:
        raise ValueError(f"anchor {anchor!r} is in no battle{_hint(anchor, names)}: every board battle needs "
                         "the anchor on one side, or a chain of battles leading to it")
    models = (*sorted(names - {anchor}), anchor)
    slot = {name: k for k, name in enumerate(models)}
    dialogues = {d: k for k, d in enumerate(sorted({bt.dialogue_id for bt in battles}))}

    pair_index: dict[tuple[int, int], int] = {}
    rows, cols, games, wins = [], [], [], []
    for bt in battles:
        i, j, s = slot[bt.a], slot[bt.b], bt.score_a
        if i > j:
            i, j, s = j, i, 1.0 - s
        rows.append(dialogues[bt.dialogue_id])
        cols.append(pair_index.setdefault((i, j), len(pair_index)))
        games.append(1.0)
        wins.append(s)
    # Pairs in sorted order, so the fit does not depend on the order (or the sides) the battles came in.
    pairs = np.array(sorted(pair_index), dtype=np.intp).reshape(-1, 2)
    column = np.empty(len(pair_index), dtype=np.intp)
    column[[pair_index[(i, j)] for i, j in pairs.tolist()]] = np.arange(len(pair_index))
    cols_sorted = column[np.asarray(cols, dtype=np.intp)]
    shape = (len(dialogues), len(pair_index))
    # csr_matrix sums duplicate (dialogue, pair) entries, which is the aggregation wanted.
    return Design(
        models=models, left=pairs[:, 0], right=pairs[:, 1],
        games=sparse.csr_matrix((games, (rows, cols_sorted)), shape=shape),
        wins=sparse.csr_matrix((wins, (rows, cols_sorted)), shape=shape),
    )


def _hint(value: str, names: Collection[str]) -> str:
    close = difflib.get_close_matches(value, sorted(names), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _components(n_nodes: int, left: IntArray, right: IntArray) -> IntArray:
    graph = sparse.coo_matrix((np.ones(len(left)), (left, right)), shape=(n_nodes, n_nodes))
    _, labels = connected_components(graph, directed=False)
    return np.asarray(labels, dtype=np.intp)


def check_connected(design: Design, anchor: str) -> None:
    """Refuse systems with no chain of battles to the anchor, naming them."""
    labels = _components(len(design.models), design.left, design.right)
    cut = [name for name, label in zip(design.models, labels, strict=True) if label != labels[-1]]
    if cut:
        shown = ", ".join(repr(name) for name in cut[:10]) + (f" and {len(cut) - 10} more" if len(cut) > 10 else "")
        raise ValueError(f"{len(cut)} system(s) have no chain of battles to the anchor {anchor!r}: {shown} — "
                         "judge them against the anchor (or against a system that is)")


def ranked_mask(models: tuple[str, ...], ranked: Collection[str] | None) -> npt.NDArray[np.bool_]:
    """Which of ``models`` count in ranks (all when ``ranked`` is None); unknown names are refused."""
    if ranked is None:
        return np.ones(len(models), dtype=bool)
    unknown = sorted(set(ranked) - set(models))
    if unknown:
        raise ValueError(f"ranked names {unknown[0]!r}{_hint(unknown[0], models)} (of {len(unknown)} unknown) are "
                         "in no battle: rank only systems that were judged")
    wanted = set(ranked)
    return np.array([name in wanted for name in models], dtype=bool)


def fit_pairs(design: Design, games: Array, wins: Array, start: Array) -> Array:
    """Penalised maximum likelihood of the log-odds ratings of the free models, given per-pair totals."""
    left, right, n_free = design.left, design.right, design.n_free
    total = max(float(games.sum()), 1.0)  # the loss is a mean, so the tolerances do not depend on the data size

    def loss_and_grad(theta: Array) -> tuple[float, Array]:
        full = np.append(theta, 0.0)
        margin = full[left] - full[right]
        # −[w log σ(m) + (n − w) log σ(−m)] = n softplus(m) − w m
        loss = float(np.dot(games, np.logaddexp(0.0, margin)) - np.dot(wins, margin))
        residual = games * expit(margin) - wins
        grad = (np.bincount(left, residual, minlength=n_free + 1)
                - np.bincount(right, residual, minlength=n_free + 1))[:n_free]
        return (loss + 0.5 * L2 * float(np.dot(theta, theta))) / total, (grad + L2 * theta) / total

    result = minimize(loss_and_grad, start, jac=True, method="L-BFGS-B",
                      options={"maxiter": 10_000, "ftol": 1e-15, "gtol": 1e-10 / total})
    return np.asarray(result.x, dtype=np.float64)


def draw_counts(n_boot: int, n_dialogues: int, seed: int) -> Array:
    """(n_boot × n_dialogues): how often each dialogue (in sorted-id order) is drawn in each resample."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_dialogues, size=(n_boot, n_dialogues))
    offsets = (np.arange(n_boot) * n_dialogues)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=n_boot * n_dialogues)
    return counts.reshape(n_boot, n_dialogues).astype(np.float64)


def unrated_slots(design: Design, games: Array) -> IntArray:
    """Slots with no chain of battles to the anchor in this resample (only the penalty would set them)."""
    played = games > 0
    if played.all():
        return np.empty(0, dtype=np.intp)
    labels = _components(len(design.models), design.left[played], design.right[played])
    return np.flatnonzero(labels != labels[-1])


def percentile_intervals(boot: Array, score: Array) -> tuple[Array, Array]:
    """95 % percentile interval per model; ±inf where no resample could rate the model."""
    low, high = np.full_like(score, -np.inf), np.full_like(score, np.inf)
    rated = ~np.isnan(boot).all(axis=0)
    if rated.any():
        low[rated], high[rated] = np.nanpercentile(boot[:, rated], [2.5, 97.5], axis=0)
    return low, high


def rank_ranges(low: Array, high: Array, ranked: npt.NDArray[np.bool_]) -> tuple[IntArray, IntArray]:
    """Best and worst rank each model's CI allows among the ranked models.

    best  = 1 + #{ranked m : low[m] > high[x]}   (those surely above x)
    worst = 1 + #{ranked m ≠ x : high[m] ≥ low[x]}   (those possibly above or level with x)
    """
    order_low = np.sort(low[ranked])
    order_high = np.sort(high[ranked])
    above = len(order_low) - np.searchsorted(order_low, high, side="right")
    maybe = len(order_high) - np.searchsorted(order_high, low, side="left")
    maybe -= ranked & (high >= low)  # a ranked model does not count itself
    return (1 + above).astype(np.intp), (1 + maybe).astype(np.intp)
