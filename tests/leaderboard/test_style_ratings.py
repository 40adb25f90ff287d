"""Style-controlled Bradley–Terry ratings (leaderboard.style_ratings) on constructed boards."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.score.style import style_difference
from leaderboard.ratings import Battle, draw_counts, fit_ratings
from leaderboard.style_ratings import fit_style_ratings

POINTS = 400.0 / math.log(10.0)


def _board(rng: np.random.Generator, true: dict[str, float], words: dict[str, float], *, beta: float,
           n_dialogues: int = 200, cross: bool = False) -> tuple[list[Battle], np.ndarray]:
    """Battles vs the anchor (and model vs model when ``cross``) judged by P = σ(θa − θb + beta·relative length)."""
    lengths = {m: rng.normal(w, 0.25 * w, n_dialogues).clip(5) for m, w in {**words, "anchor": 100.0}.items()}
    questions = {m: rng.integers(0, 2, n_dialogues).astype(float) for m in lengths}  # the judge ignores them
    theta = {**true, "anchor": 0.0}
    pairs = [(m, "anchor") for m in true]
    if cross:
        names = sorted(true)
        pairs += [(a, b) for a, b in zip(names, names[1:], strict=False)]
    battles, diffs = [], []
    for a, b in pairs:
        for d in range(n_dialogues):
            x = style_difference(np.array([[lengths[a][d], questions[a][d]]]),
                                 np.array([[lengths[b][d], questions[b][d]]]),
                                 ["words", "questions"])[0]
            p = 1.0 / (1.0 + math.exp(-(theta[a] - theta[b] + beta * x[0] / 0.3)))
            battles.append(Battle(f"d{d:03d}", a, b, float((rng.random(2) < p).mean())))
            diffs.append(x)
    return battles, np.array(diffs)


def test_style_difference_relative_for_counts_plain_for_grade() -> None:
    a = np.array([[30.0, 0.0, 8.0], [10.0, 2.0, -1.0]])
    b = np.array([[10.0, 0.0, 6.0], [10.0, 0.0, 3.0]])
    got = style_difference(a, b, ["words", "emoji", "grade"])
    assert got.tolist() == [[0.5, 0.0, 2.0], [0.0, 1.0, -4.0]]


def test_no_style_difference_gives_the_raw_ratings() -> None:
    rng = np.random.default_rng(1)
    true = {"m-a": 0.8, "m-b": 0.1, "m-c": -0.5, "m-d": 1.6}
    battles, _ = _board(rng, true, dict.fromkeys(true, 100.0), beta=0.0, cross=True)
    zeros = np.zeros((len(battles), 3))
    raw = fit_ratings(battles, anchor="anchor", n_boot=300, seed=4)
    fit = fit_style_ratings(battles, zeros, ["words", "sympathy", "bold"], anchor="anchor", n_boot=300, seed=4)
    for name, r in raw.items():
        s = fit.ratings[name]
        assert s.score == pytest.approx(r.score, abs=1e-3)
        assert s.ci_low == pytest.approx(r.ci_low, abs=1e-3) and s.ci_high == pytest.approx(r.ci_high, abs=1e-3)
        assert (s.rank_low, s.rank_high) == (r.rank_low, r.rank_high)
    assert [(c.points, c.varies) for c in fit.coefficients] == [(0.0, False)] * 3
    assert fit.ratings["anchor"].score == fit.ratings["anchor"].ci_low == 1000.0


def test_a_model_that_only_pads_loses_its_gain_under_style_control() -> None:
    rng = np.random.default_rng(7)
    # Honest models answer about as long as the anchor; "padder" is exactly as good as the anchor but 3x longer.
    true = {"honest-1": 0.6, "honest-2": -0.3, "honest-3": 0.2, "padder": 0.0}
    words = {"honest-1": 100.0, "honest-2": 120.0, "honest-3": 80.0, "padder": 300.0}
    battles, x = _board(rng, true, words, beta=1.2, n_dialogues=250)
    raw = fit_ratings(battles, anchor="anchor", n_boot=400, seed=0)
    fit = fit_style_ratings(battles, x, ["words", "questions"], anchor="anchor", n_boot=400, seed=0)
    pad_raw, pad = raw["padder"], fit.ratings["padder"]
    assert pad_raw.ci_low > 1080  # the judge pays for length: padding looks like a large gain ...
    assert pad.ci_low <= 1000.0 <= pad.ci_high  # ... which style control takes away
    assert abs(pad.score - 1000.0) < 40
    words_coef, questions_coef = fit.coefficients
    assert words_coef.feature == "words" and words_coef.ci_low > 0 and words_coef.varies
    assert questions_coef.varies and questions_coef.ci_low < 0 < questions_coef.ci_high  # not what the judge pays for
    # the honest models keep their order and roughly their ratings
    assert fit.ratings["honest-1"].score > fit.ratings["honest-3"].score > fit.ratings["honest-2"].score
    assert abs(fit.ratings["honest-1"].score - (1000 + POINTS * 0.6)) < 45


def test_the_score_bootstrap_stays_close_to_exact_refits() -> None:
    rng = np.random.default_rng(3)
    true = {"m1": 1.4, "m2": 0.5, "m3": -0.2, "m4": -1.1}
    words = {"m1": 150.0, "m2": 90.0, "m3": 110.0, "m4": 60.0}
    battles, x = _board(rng, true, words, beta=0.8, n_dialogues=120, cross=True)
    n_boot, seed = 150, 2
    fit = fit_style_ratings(battles, x, ["words", "questions"], anchor="anchor", n_boot=n_boot, seed=seed)
    # exact: refit each resample (the same draw counts) from scratch
    ids = sorted({b.dialogue_id for b in battles})
    counts = draw_counts(n_boot, len(ids), seed).astype(int)
    exact: dict[str, list[float]] = {m: [] for m in true}
    for row in counts:
        weight = dict(zip(ids, row.tolist(), strict=True))
        keep = [k for k, b in enumerate(battles) for _ in range(weight[b.dialogue_id])]
        refit = fit_style_ratings([battles[k] for k in keep], x[keep], ["words", "questions"], anchor="anchor",
                                  n_boot=0)
        for m in true:
            exact[m].append(refit.ratings[m].score)
    for m in true:
        low, high = np.percentile(exact[m], [2.5, 97.5])
        width = high - low
        assert abs(fit.ratings[m].ci_low - low) < 0.1 * width, m
        assert abs(fit.ratings[m].ci_high - high) < 0.1 * width, m


def test_bad_differences_are_refused() -> None:
    battles = [Battle("d1", "m", "anchor", 1.0), Battle("d2", "m", "anchor", 0.0)]
    with pytest.raises(ValueError, match="one row per battle"):
        fit_style_ratings(battles, np.zeros((3, 1)), ["words"], anchor="anchor", n_boot=0)
    with pytest.raises(ValueError, match="NaN"):
        fit_style_ratings(battles, np.array([[np.nan], [0.0]]), ["words"], anchor="anchor", n_boot=0)
    with pytest.raises(ValueError, match="anchor 'anchr' is in no battle"):
        fit_style_ratings(battles, np.zeros((2, 1)), ["words"], anchor="anchr", n_boot=0)


def test_only_the_shapers_battles_set_the_coefficients() -> None:
    """A system outside ``shapers`` (a self-reported run) is rated with the others' coefficients: its verdicts —
    here forged to say the judge punishes length — change neither the coefficients nor any other rating."""
    rng = np.random.default_rng(11)
    true = {"m-long": 0.3, "m-short": 0.5, "m-mid": 0.1}
    battles, x = _board(rng, true, {"m-long": 180.0, "m-short": 60.0, "m-mid": 100.0}, beta=0.8, n_dialogues=250)
    honest = fit_style_ratings(battles, x, ["words", "questions"], anchor="anchor", n_boot=300, seed=5)
    # the forger: its reply is longer than the anchor's on half the dialogues, and it "wins" exactly where shorter
    forged, fx = [], []
    for k, d in enumerate(sorted({b.dialogue_id for b in battles})):
        rel = 0.4 if k % 2 else -0.4
        forged.append(Battle(d, "forger", "anchor", 0.0 if rel > 0 else 1.0))
        fx.append([rel, 0.0])
    all_battles, all_x = [*battles, *forged], np.vstack([x, np.array(fx)])
    open_board = fit_style_ratings(all_battles, all_x, ["words", "questions"], anchor="anchor", n_boot=300, seed=5)
    assert open_board.coefficients[0].points < honest.coefficients[0].points - 50  # unguarded, it bends the fit
    guarded = fit_style_ratings(all_battles, all_x, ["words", "questions"], anchor="anchor", n_boot=300, seed=5,
                                shapers=list(true))
    assert [c.points for c in guarded.coefficients] == pytest.approx([c.points for c in honest.coefficients], abs=1e-6)
    for name in (*true, "anchor"):
        g, h = guarded.ratings[name], honest.ratings[name]
        assert (g.score, g.ci_low, g.ci_high) == pytest.approx((h.score, h.ci_low, h.ci_high), abs=1e-4), name
    forger = guarded.ratings["forger"]  # still rated: half its battles won, symmetric in length, so at parity
    assert forger.score == pytest.approx(1000.0, abs=1e-3) and forger.ci_low < 990 < 1010 < forger.ci_high


def test_a_feature_only_one_model_shows_is_left_out_not_fitted_by_the_penalty() -> None:
    """Emoji in every reply of one model and in no other reply: nothing separates their effect from that model's
    rating, so the feature is reported as not identified (β = 0), not given the model's whole edge."""
    rng = np.random.default_rng(2)
    true = {"emo": 1.0, "plain-1": 0.2, "plain-2": -0.3}
    battles, x = _board(rng, true, {"emo": 100.0, "plain-1": 130.0, "plain-2": 80.0}, beta=0.6, n_dialogues=250)
    emoji = np.array([[1.0 if b.a == "emo" else 0.0] for b in battles])  # relative difference vs the anchor's 0
    fit = fit_style_ratings(battles, np.hstack([x[:, :1], emoji]), ["words", "emoji"], anchor="anchor",
                            n_boot=300, seed=1)
    words, emo = fit.coefficients
    assert words.identified and words.within_share is not None and words.within_share > 0.5 and words.ci_low > 0
    assert not emo.identified and emo.varies and emo.within_share is not None and emo.within_share < 0.01
    assert emo.points == 0.0 == emo.ci_low == emo.ci_high
    without = fit_style_ratings(battles, x[:, :1], ["words"], anchor="anchor", n_boot=300, seed=1)
    assert fit.ratings["emo"].score == pytest.approx(without.ratings["emo"].score, abs=1e-4)
    assert abs(fit.ratings["emo"].score - (1000 + POINTS * 1.0)) < 60  # its real edge is kept
