"""Length-controlled win rate: same outcomes as the raw rate, length effect removed, checked against brute force."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from harness.score.lc import (
    L2_SLOPE,
    fit_length_model,
    lc_bootstrap_ci,
    length_controlled_win_rate,
    length_feature,
)
from harness.score.stats import comparison_stats
from tests.score.test_stats import J

WIN, TIE, LOSS = ("candidate", "candidate"), ("candidate", "reference"), ("reference", "reference")


def words(diff: int) -> dict[str, int]:
    return {"cw": 100 + diff, "rw": 100}


def test_candidate_then_tie_at_equal_length_gives_raw_rate():
    # The defect: the old per-order fit saw 20 × (1, 0.5) → 0.75 while every dialogue is a tie → raw 0.5.
    s = comparison_stats([J(i, "candidate", "tie") for i in range(20)], seed=0)
    assert s["win_rate"] == 0.5
    assert s["lc_win_rate"] == 0.5
    assert s["lc_ci_low"] == s["lc_ci_high"] == 0.5


def test_no_length_variation_or_no_length_effect_gives_raw_rate():
    outcomes = [1.0, 1.0, 0.5, 0.0, 1.0, 0.0, 0.5]
    raw = sum(outcomes) / len(outcomes)
    assert length_controlled_win_rate(outcomes, [12] * 7) == raw  # every Δ equal: exact, no fit
    # every length difference carries the same mix of outcomes: the slope is 0 and LC is the raw rate
    mix = [1.0, 1.0, 0.5, 0.0]
    diffs = [d for d in (-40, -10, 10, 40) for _ in mix]
    assert length_controlled_win_rate(mix * 4, diffs) == pytest.approx(sum(mix) / 4, abs=1e-6)


def test_unscored_dialogues_do_not_enter_the_fit():
    scored = [J(i, *o, **words(d)) for i, (o, d) in enumerate([(WIN, 5), (TIE, -3), (LOSS, -8), (WIN, 2), (TIE, 0),
                                                                (LOSS, 4), (WIN, -1), (TIE, 7)])]
    unscored = [J(100, None, "candidate", **words(900)), J(101, "reference", None, **words(-95)),
                J(102, None, None, **words(500))]
    clean, noisy = comparison_stats(scored, seed=3), comparison_stats(scored + unscored, seed=3)
    assert noisy["n_unscored"] == 3
    for key in ("win_rate", "lc_win_rate", "lc_ci_low", "lc_ci_high"):
        assert noisy[key] == clean[key]


def test_length_effect_is_removed():
    # The candidate wins exactly when it is longer and loses when shorter; at equal length both orders split.
    balanced = [(WIN, 20)] * 8 + [(LOSS, -20)] * 8 + [(TIE, 0)] * 4
    s = comparison_stats([J(i, *o, **words(d)) for i, (o, d) in enumerate(balanced)], seed=0)
    assert s["win_rate"] == 0.5 and s["lc_win_rate"] == pytest.approx(0.5, abs=1e-6)
    # A length-biased sample of the same judge: the candidate is longer three times as often.
    biased = [(WIN, 20)] * 12 + [(LOSS, -20)] * 4 + [(TIE, 0)] * 4
    s = comparison_stats([J(i, *o, **words(d)) for i, (o, d) in enumerate(biased)], seed=0)
    assert s["win_rate"] == pytest.approx(0.7)
    assert abs(s["lc_win_rate"] - 0.5) < 0.02 < abs(s["win_rate"] - 0.5)


def test_length_biased_sample_lc_follows_the_equal_length_dialogues():
    diffs = [30] * 8 + [-30] * 2 + [0] * 4
    outcomes = [1.0] * 8 + [0.0] * 2 + [1.0, 0.0, 0.0, 0.0]
    lc = length_controlled_win_rate(outcomes, diffs)
    assert lc < sum(outcomes) / len(outcomes)
    assert lc == pytest.approx(0.25, abs=0.02)  # the equal-length dialogues: 1 win in 4


def test_constant_and_separable_outcomes_stay_finite():
    diffs = [1e6, -1e6, 3, 0, -50, 1e9]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or divide warnings either
        assert length_controlled_win_rate([1.0] * 6, diffs) == 1.0
        assert length_controlled_win_rate([0.0] * 6, diffs) == 0.0
        assert lc_bootstrap_ci([1.0] * 6, diffs, seed=0) == (1.0, 1.0)
        # perfectly separated by length, with huge differences
        lc = length_controlled_win_rate([1.0, 0.0, 1.0, 0.0, 0.0, 1.0], diffs)
        low, high = lc_bootstrap_ci([1.0, 0.0, 1.0, 0.0, 0.0, 1.0], diffs, seed=0)
    assert 0.0 <= low <= lc <= high <= 1.0
    assert all(math.isnan(v) for v in (length_controlled_win_rate([], []), *lc_bootstrap_ci([], [], seed=0)))


def test_ci_contains_lc_narrows_with_more_dialogues_and_is_seeded():
    pattern = [(1.0, 25), (1.0, 10), (0.5, -5), (0.0, -30), (1.0, 0), (0.5, 15), (0.0, 5), (1.0, -10)]
    widths = []
    for reps in (5, 50):
        outcomes = [o for o, _ in pattern] * reps
        diffs = [d for _, d in pattern] * reps
        lc = length_controlled_win_rate(outcomes, diffs)
        low, high = lc_bootstrap_ci(outcomes, diffs, seed=7)
        assert low <= lc <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2
    # the draws follow bootstrap_ci's convention: one (n_boot, n) integer draw from default_rng(seed)
    outcomes, diffs = [o for o, _ in pattern] * 5, [d for _, d in pattern] * 5
    idx = np.random.default_rng(7).integers(0, 40, size=(200, 40))
    by_hand = [length_controlled_win_rate([outcomes[k] for k in i], [diffs[k] for k in i]) for i in idx]
    assert lc_bootstrap_ci(outcomes, diffs, seed=7, n_boot=200) == pytest.approx(
        tuple(np.percentile(by_hand, [2.5, 97.5])), abs=1e-6)


def _penalised_nll(b0: np.ndarray, b1: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    z = b0[..., None] + b1[..., None] * x
    return np.sum(np.logaddexp(0.0, z) - y * z, axis=-1) + 0.5 * L2_SLOPE * b1**2


def _grid_search(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Brute force: a coarse grid, then two finer grids around the best point."""
    c0, c1, half, step = 0.0, 0.0, 4.0, 0.02
    for _ in range(3):
        g0, g1 = np.meshgrid(np.arange(c0 - half, c0 + half, step), np.arange(c1 - half, c1 + half, step))
        nll = _penalised_nll(g0, g1, x, y)
        k = np.unravel_index(np.argmin(nll), nll.shape)
        c0, c1 = float(g0[k]), float(g1[k])
        half, step = half / 50, step / 50
    return c0, c1


@pytest.mark.parametrize("fractional", [False, True])
def test_fit_agrees_with_brute_force_and_score_equations(fractional):
    rng = np.random.default_rng(11)
    diffs = rng.normal(10, 40, size=60).round()
    x = length_feature(diffs)
    y = (rng.random(60) < 1 / (1 + np.exp(-(0.4 + 1.2 * x)))).astype(float)
    if fractional:
        y[::4] = 0.5
    b0, b1 = fit_length_model(y, x)
    g0, g1 = _grid_search(x, y)
    assert (b0, b1) == pytest.approx((g0, g1), abs=1e-3)
    p = 1 / (1 + np.exp(-(b0 + b1 * x)))
    # the intercept is not penalised: the fitted mean equals the raw mean; the slope's equation carries the penalty
    assert p.mean() == pytest.approx(y.mean(), abs=1e-8)
    assert float((y - p) @ x) == pytest.approx(L2_SLOPE * b1, abs=1e-7)
    assert length_controlled_win_rate(y, diffs) == pytest.approx(1 / (1 + math.exp(-b0)), abs=1e-12)
