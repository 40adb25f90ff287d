"""The batched bootstrap refits against the one-at-a-time optimiser they replace."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from leaderboard.bt_batch import refit
from leaderboard.ratings import L2, Battle, aggregate, draw_counts, fit_pairs, unrated_slots

POINTS = 400 / np.log(10)


def _board(seed: int = 0, models: int = 30, dialogues: int = 60) -> list[Battle]:
    """Models vs the anchor and vs a shared reference (the board's shape), one that always wins and one that
    always loses, and one met only through another model on a few dialogues (cut off in some resamples)."""
    rng = np.random.default_rng(seed)
    battles = []
    for m, strength in enumerate(rng.normal(0.0, 1.0, models)):
        for d in range(dialogues):
            for ref, level in (("base", 0.0), ("direct", 0.5)):
                p = expit(strength - level)
                battles.append(Battle(f"d{d}", f"m{m}", ref, 0.5 * (rng.random() < p) + 0.5 * (rng.random() < p)))
    battles += [Battle(f"d{d}", "always-wins", "base", 1.0) for d in range(dialogues)]
    battles += [Battle(f"d{d}", "always-loses", "direct", 0.0) for d in range(dialogues)]
    battles += [Battle(f"d{d}", "rare", "m0", 0.5 + 0.5 * (d % 2)) for d in range(3)]
    return battles


def _gradient(design, theta, games, wins) -> float:
    full = np.append(theta, 0.0)
    residual = games * expit(full[design.left] - full[design.right]) - wins
    grad = (np.bincount(design.left, residual, minlength=len(full))
            - np.bincount(design.right, residual, minlength=len(full)))[:-1] + L2 * theta
    return float(np.abs(grad).max())


def test_batched_refits_match_the_optimiser_and_are_at_least_as_exact():
    design = aggregate(_board(), "base")
    theta = fit_pairs(design, design.games.sum(axis=0).A1, design.wins.sum(axis=0).A1, np.zeros(design.n_free))
    counts = draw_counts(120, design.games.shape[0], seed=3)
    games = np.asarray(design.games.T.tocsr() @ counts.T).T
    wins = np.asarray(design.wins.T.tocsr() @ counts.T).T
    frozen = np.zeros((len(games), design.n_free), dtype=bool)
    cut_off = [unrated_slots(design, g) for g in games]
    for k, slots in enumerate(cut_off):
        frozen[k, slots] = True
    assert 0 < sum(len(s) > 0 for s in cut_off) < len(games)  # 'rare' is cut off in some resamples, not all
    batched, converged = refit(design.left, design.right, design.n_free, games, wins, theta, frozen, L2)
    assert converged.all()
    extreme = [design.models.index(m) for m in ("always-wins", "always-loses")]
    for k in range(len(games)):
        one = fit_pairs(design, games[k], wins[k], theta)
        rated = np.ones(design.n_free, dtype=bool)
        rated[cut_off[k]] = False
        assert np.array_equal(batched[k, ~rated], theta[~rated])  # held where they started (the caller marks them)
        normal = rated.copy()
        normal[extreme] = False
        assert np.abs(batched[k, normal] - one[normal]).max() * POINTS < 0.01
        # 'beyond measure' ratings (±2,000 points) may differ by a few points: the batched fit is the exacter one
        free = np.where(rated, batched[k], 0.0)
        assert _gradient(design, free, games[k] * 1, wins[k]) <= max(_gradient(design, np.where(rated, one, 0.0),
                                                                               games[k], wins[k]), 1e-8)


def test_one_resample_equals_a_full_data_refit_from_elsewhere():
    """From a start far away, the batched Newton reaches the optimiser's fit (the line search keeps it a descent)."""
    design = aggregate(_board(seed=1, models=8), "base")
    games, wins = design.games.sum(axis=0).A1, design.wins.sum(axis=0).A1
    theta = fit_pairs(design, games, wins, np.zeros(design.n_free))
    start = np.full(design.n_free, 5.0)
    batched, converged = refit(design.left, design.right, design.n_free, games[None], wins[None], start,
                               np.zeros((1, design.n_free), dtype=bool), L2)
    assert converged.all()
    normal = [k for k, m in enumerate(design.models[:-1]) if not m.startswith("always")]
    assert np.abs(batched[0, normal] - theta[normal]).max() * POINTS < 0.01


def test_refits_do_not_depend_on_how_resamples_are_chunked(monkeypatch):
    import leaderboard.bt_batch as bt_batch
    from leaderboard.ratings import fit_ratings

    battles = _board(seed=2, models=10, dialogues=40)
    whole = fit_ratings(battles, anchor="base", n_boot=64, seed=5)
    monkeypatch.setattr(bt_batch, "CHUNK_CELLS", 50)  # a few resamples per batch
    chunked = fit_ratings(battles, anchor="base", n_boot=64, seed=5)
    for name, rating in whole.items():
        assert (chunked[name].ci_low, chunked[name].ci_high) == pytest.approx((rating.ci_low, rating.ci_high), abs=1e-9)


def test_every_score_lies_in_its_own_ci_even_beyond_measure():
    """The point fit is solved as exactly as its resamples: an always-winning model's score is inside its CI.

    (With the point fit left where L-BFGS-B stops, on this board it lay ~60 points outside: 3,743.5 vs a CI of
    [3,685.6, 3,685.6].)
    """
    from leaderboard.ratings import fit_ratings

    battles = _board(seed=4, models=20, dialogues=2000) * 4  # four battles per pair and dialogue
    ratings = fit_ratings(battles, anchor="base", n_boot=100, seed=0)
    for name, r in ratings.items():
        assert r.ci_low - 1e-6 <= r.score <= r.ci_high + 1e-6, (name, r)
    assert ratings["always-wins"].score > 2000 and ratings["always-loses"].score < -1000
