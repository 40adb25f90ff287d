"""The batched LC refit (one vectorised Newton solve over every bootstrap resample) equals the per-resample fit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.score.lc import (
    L2_SLOPE,
    _lc,
    lc_batch,
    lc_bootstrap_ci,
    length_controlled_win_rate,
    length_feature,
)


def per_resample(y, d, idx, start):
    return np.array([_lc(y[i], length_feature(d[i]), l2=L2_SLOPE, start=start)[0] for i in idx])


def case(kind: str, n: int, rng):
    d = rng.normal(0, 20, n).round()
    y = rng.choice([0.0, 0.5, 1.0], n)
    if kind == "all wins":
        y = np.ones(n)
    elif kind == "one outcome":
        y = np.full(n, 0.5)
    elif kind == "x = 0":
        d = np.zeros(n)
    elif kind == "perfect separation":
        d = np.where(np.arange(n) % 2 == 0, 10.0, -10.0) * (1 + np.arange(n))
        y = (d > 0).astype(float)
    elif kind == "length decides":
        y = (rng.random(n) < 1 / (1 + np.exp(-d / 10))).astype(float)
    return y, d


@pytest.mark.parametrize("kind", ["random", "all wins", "one outcome", "x = 0", "perfect separation", "length decides"])
@pytest.mark.parametrize("n", [1, 2, 5, 24, 250])
def test_batched_refits_equal_the_per_resample_fits(kind, n):
    rng = np.random.default_rng(n)
    y, d = case(kind, n, rng)
    idx = rng.integers(0, n, size=(300, n))
    _, beta = _lc(y, length_feature(d), l2=L2_SLOPE, start=None)
    expected = per_resample(y, d, idx, beta)
    got = lc_batch(y[idx], d[idx], start=beta)
    assert got.shape == (300,)
    assert np.allclose(got, expected, atol=1e-6, rtol=0), np.max(np.abs(got - expected))
    # and without a start (the gate's refits start where fit_length_model does)
    assert np.allclose(lc_batch(y[idx], d[idx]), per_resample(y, d, idx, None), atol=1e-6, rtol=0)


def test_degenerate_rows_get_the_raw_rate_exactly_and_empty_is_nan():
    y = np.array([[1.0, 1.0, 1.0], [0.5, 0.5, 0.5], [1.0, 0.0, 0.5], [1.0, 0.0, 1.0]])
    d = np.array([[3.0, -4.0, 9.0], [1.0, 2.0, 3.0], [5.0, 5.0, 5.0], [0.0, 0.0, 0.0]])
    assert lc_batch(y, d).tolist() == [1.0, 0.5, 0.5, 2 / 3]  # one outcome, or x ≡ 0: no fit
    assert all(math.isnan(v) for v in lc_batch(np.zeros((2, 0)), np.zeros((2, 0))))
    # a resample of one dialogue: nothing to fit either
    assert lc_batch(np.array([[0.5]]), np.array([[7.0]])).tolist() == [0.5]


def test_a_row_alone_gives_the_full_data_lc():
    rng = np.random.default_rng(7)
    y, d = case("length decides", 120, rng)
    assert lc_batch(y[None], d[None])[0] == pytest.approx(length_controlled_win_rate(y.tolist(), d.tolist()), abs=1e-7)


def test_the_lc_ci_is_todays_to_1e_6():
    """Same seed, same resamples: the CI from the batched fit equals the per-resample loop it replaced."""
    rng = np.random.default_rng(3)
    for kind in ("random", "length decides", "perfect separation"):
        y, d = case(kind, 80, rng)
        idx = np.random.default_rng(11).integers(0, y.size, size=(1000, y.size))
        _, beta = _lc(y, length_feature(d), l2=L2_SLOPE, start=None)
        old = np.percentile(per_resample(y, d, idx, beta), [2.5, 97.5])
        assert lc_bootstrap_ci(y.tolist(), d.tolist(), seed=11) == pytest.approx(tuple(old), abs=1e-6)


def test_the_gates_paired_lc_bootstrap_is_todays_to_1e_6():
    from harness.gate.metrics import PairedMetric
    from harness.gate.stats import _paired_boot

    rng = np.random.default_rng(5)
    n = 60
    ids = [f"d{i}" for i in range(n)]
    yb, db = case("length decides", n, rng)
    yc, dc = case("random", n, rng)
    metric = PairedMetric(name="win_rate:vs_base", baseline=dict(zip(ids, yb, strict=True)),
                          candidate=dict(zip(ids, yc, strict=True)), margin=0.05, statistic="lc",
                          baseline_len=dict(zip(ids, db, strict=True)), candidate_len=dict(zip(ids, dc, strict=True)))
    boot = _paired_boot(metric, n_boot=500, seed=9)
    order = sorted(range(n), key=lambda i: ids[i])  # the gate orders dialogues by id
    b, c, bl, cl = (a[order] for a in (yb, yc, db, dc))
    idx = np.random.default_rng(9).integers(0, n, size=(500, n))
    old = np.sort(per_resample(c, cl, idx, None) - per_resample(b, bl, idx, None))
    assert np.allclose(boot.deltas, old, atol=1e-6, rtol=0)
