import math

import numpy as np
import pytest

from leaderboard.ratings import Battle, fit_ratings, rank_ranges

POINTS = 400.0 / math.log(10.0)  # rating points per unit of log-odds at scale 400


def elo(p: float) -> float:
    """Rating above the anchor of a system scoring p against it (closed form of the anchor-only fit)."""
    return POINTS * math.log(p / (1.0 - p))


def simulate(true: dict[str, float], n_dialogues: int, rng: np.random.Generator,
             anchor: str = "anchor", anchor_value: float = 1000.0) -> list[Battle]:
    """Model-vs-anchor battles from BT with the true ratings; each battle averages two verdicts (one per answer
    order), so ties (0.5) occur and E[score] is exactly the BT win probability."""
    battles = []
    for name, rating in true.items():
        p = 1.0 / (1.0 + 10.0 ** ((anchor_value - rating) / 400.0))
        for d, score in enumerate((rng.random((n_dialogues, 2)) < p).mean(axis=1)):
            battles.append(Battle(f"d{d:03d}", name, anchor, float(score)))
    return battles


def record(model: str, scores: list[float], opponent: str = "anchor", first: int = 0) -> list[Battle]:
    return [Battle(f"d{first + d:03d}", model, opponent, s) for d, s in enumerate(scores)]


TRUE = {"m1": 700.0, "m2": 830.0, "m3": 960.0, "m4": 1090.0, "m5": 1220.0, "m6": 1350.0}


def test_recovers_true_order_and_cis_cover_true_ratings_across_seeds():
    covered, total = 0, 0
    for seed in range(20):
        battles = simulate(TRUE, 150, np.random.default_rng(seed))
        ratings = fit_ratings(battles, anchor="anchor", n_boot=200, seed=seed)
        fitted = sorted(TRUE, key=lambda m: ratings[m].score)
        assert fitted == sorted(TRUE, key=TRUE.__getitem__), f"seed {seed}: {fitted}"
        for name, truth in TRUE.items():
            r = ratings[name]
            assert r.ci_low < r.score < r.ci_high
            covered += r.ci_low <= truth <= r.ci_high
            total += 1
    assert covered / total >= 0.8  # nominal 95 %


def test_anchor_score_and_ci_are_exactly_the_anchor_value():
    battles = simulate({"a": 1100.0, "b": 900.0}, 60, np.random.default_rng(1), anchor="ref", anchor_value=1500.0)
    ratings = fit_ratings(battles, anchor="ref", anchor_value=1500.0, scale=200.0, n_boot=100)
    ref = ratings["ref"]
    assert (ref.score, ref.ci_low, ref.ci_high) == (1500.0, 1500.0, 1500.0)
    assert set(ratings) == {"a", "b", "ref"}


def test_ties_are_half_wins():
    battles = (record("tier", [0.5] * 40)                                  # ties every dialogue
               + record("coin", [1.0, 0.0] * 20)                           # same mean, by wins and losses
               + record("mixed", [1.0] * 24 + [0.5] * 8 + [0.0] * 8))      # (24 + 4) / 40 = 0.7
    ratings = fit_ratings(battles, anchor="anchor", n_boot=300)
    tier, coin, mixed = ratings["tier"], ratings["coin"], ratings["mixed"]
    assert tier.score == pytest.approx(1000.0, abs=1e-6)
    assert tier.ci_low == pytest.approx(1000.0, abs=1e-6) and tier.ci_high == pytest.approx(1000.0, abs=1e-6)
    assert coin.score == pytest.approx(1000.0, abs=1e-3)
    assert coin.ci_high - coin.ci_low > 100.0  # a coin flipper is uncertain; a steady tie is not
    assert mixed.score == pytest.approx(1000.0 + elo(0.7), abs=0.01)  # = 1147.19


def test_swapping_sides_and_order_gives_the_same_ratings():
    battles = simulate(TRUE, 40, np.random.default_rng(2))
    battles += record("m1", [0.75, 0.25, 1.0] * 10, opponent="m2")
    rng = np.random.default_rng(3)
    swapped = [Battle(b.dialogue_id, b.b, b.a, 1.0 - b.score_a) if rng.random() < 0.5 else b for b in battles]
    swapped = [swapped[k] for k in rng.permutation(len(swapped))]
    one = fit_ratings(battles, anchor="anchor", n_boot=100, seed=5)
    two = fit_ratings(swapped, anchor="anchor", n_boot=100, seed=5)
    assert two == one  # exactly: pairs are canonical, and the scores here are dyadic, so every sum is exact


def test_model_vs_model_battles_move_ratings_the_right_way():
    vs_anchor = record("a", [1.0, 0.0, 1.0, 0.5] * 10) + record("b", [1.0, 0.0, 1.0, 0.5] * 10)
    alone = fit_ratings(vs_anchor, anchor="anchor", n_boot=0)
    assert alone["a"].score == pytest.approx(alone["b"].score, abs=1e-6)
    assert alone["a"].score == pytest.approx(1000.0 + elo(0.625), abs=0.01)

    a_beats_b = record("a", [1.0, 0.5, 1.0] * 10, opponent="b", first=100)
    both = fit_ratings(vs_anchor + a_beats_b, anchor="anchor", n_boot=0)
    assert both["a"].score > alone["a"].score + 20.0
    assert both["b"].score < alone["b"].score - 20.0
    assert both["anchor"].score == 1000.0


def test_model_linked_only_through_another_model_is_rated():
    battles = record("mid", [1.0, 0.0, 0.5] * 10) + record("far", [0.75] * 30, opponent="mid", first=100)
    ratings = fit_ratings(battles, anchor="anchor", n_boot=50)
    assert ratings["far"].score == pytest.approx(ratings["mid"].score + elo(0.75), abs=0.01)


def test_resamples_that_cut_a_model_off_do_not_drag_it_to_the_anchor():
    # 'far' meets only 'mid', and 'mid' meets the anchor on 2 of 10 dialogues: ~11 % of resamples leave 'far'
    # with no path to the anchor, where only the penalty would set it (→ 1000). Those resamples must not count.
    battles = record("mid", [0.5, 0.5]) + record("far", [0.75] * 8, opponent="mid", first=2)
    ratings = fit_ratings(battles, anchor="anchor", n_boot=400, seed=0)
    far = ratings["far"]
    assert far.score == pytest.approx(1000.0 + elo(0.75), abs=0.1)  # 8 battles: the penalty shows a little
    assert far.ci_low == pytest.approx(far.score, abs=0.1) and far.ci_high == pytest.approx(far.score, abs=0.1)


def test_disconnected_model_is_refused_by_name():
    battles = record("ok", [1.0, 0.0]) + record("x", [1.0, 0.5], opponent="y", first=5)
    with pytest.raises(ValueError, match=r"2 system\(s\) have no chain of battles to the anchor 'anchor': 'x', 'y'"):
        fit_ratings(battles, anchor="anchor")


@pytest.mark.parametrize(("battles", "anchor", "message"), [
    ([], "anchor", "no battles"),
    (record("a", [1.0]), "ancor", r"anchor 'ancor' is in no battle \(did you mean 'anchor'\?\)"),
    ([Battle("d0", "a", "a", 1.0)], "a", "'a' against itself"),
    (record("a", [1.5]), "anchor", r"score_a=1.5: must lie in \[0, 1\]"),
    (record("a", [math.nan]), "anchor", r"score_a=nan"),
])
def test_bad_battles_are_refused(battles, anchor, message):
    with pytest.raises(ValueError, match=message):
        fit_ratings(battles, anchor=anchor)


def test_bad_settings_are_refused():
    battles = record("a", [1.0, 0.0])
    with pytest.raises(ValueError, match="scale=0"):
        fit_ratings(battles, anchor="anchor", scale=0)
    with pytest.raises(ValueError, match="n_boot=-1"):
        fit_ratings(battles, anchor="anchor", n_boot=-1)
    with pytest.raises(ValueError, match=r"ranked names 'b'"):
        fit_ratings(battles, anchor="anchor", ranked=["a", "b"])


def test_bootstrap_is_reproducible_with_the_seed():
    battles = simulate(TRUE, 50, np.random.default_rng(4))
    one = fit_ratings(battles, anchor="anchor", n_boot=150, seed=11)
    assert fit_ratings(battles, anchor="anchor", n_boot=150, seed=11) == one
    other = fit_ratings(battles, anchor="anchor", n_boot=150, seed=12)
    assert all(other[m].score == one[m].score for m in TRUE)  # the point fit does not depend on the seed
    assert any(other[m].ci_low != one[m].ci_low for m in TRUE)
    none = fit_ratings(battles, anchor="anchor", n_boot=0)
    assert all(r.ci_low == r.score == r.ci_high for r in none.values())


def test_rank_ranges_by_hand():
    #            A        B        C       D        E (not ranked)
    low = np.array([10.0, 15.0, 0.0, 30.0, 18.0])
    high = np.array([20.0, 25.0, 5.0, 40.0, 19.0])
    ranked = np.array([True, True, True, True, False])
    best, worst = rank_ranges(low, high, ranked)
    # D clear first; A and B overlap → share 2–3; C clear last; E sits inside A and B, below D: 2–4
    assert best.tolist() == [2, 2, 4, 1, 2]
    assert worst.tolist() == [3, 3, 4, 1, 4]


def test_rank_ranges_from_fitted_cis_with_overlap_and_controls():
    battles = (record("top", [1.0] * 30 + [0.5] * 10)              # far above everyone
               + record("twin1", [1.0, 0.0, 1.0, 0.5] * 10)         # twins: identical records, overlapping CIs
               + record("twin2", [1.0, 0.0, 1.0, 0.5] * 10)
               + record("low", [0.0] * 30 + [0.5] * 10)             # far below everyone
               + record("null", [0.0] * 40))                        # a control row, never ranked
    ratings = fit_ratings(battles, anchor="anchor", n_boot=300, ranked=["top", "twin1", "twin2", "low", "anchor"])
    ranks = {m: (r.rank, r.rank_low, r.rank_high) for m, r in ratings.items()}
    assert ranks["top"] == (1, 1, 1)
    assert ranks["twin1"] == ranks["twin2"]
    assert ranks["twin1"][1] == 2 and ranks["twin1"][2] >= 3  # the twins overlap each other
    assert ranks["low"] == (5, 5, 5)
    assert ratings["null"].score < ratings["low"].score
    assert ranks["null"] == (6, 6, 6)  # ranked against the board, but it does not push 'low' down
    for r in ratings.values():
        assert r.rank == r.rank_low <= r.rank_high


def test_rank_ranges_come_from_the_cis_not_the_point_scores():
    # 'a' and 'b' differ in score but, on 20 dialogues each, their CIs overlap: they share ranks 1–2 although 'a'
    # scores higher. 'c' loses nearly everything: its CI lies below both, so its range is exactly 3.
    battles = (record("a", [1.0, 1.0, 0.0, 1.0, 0.5] * 4)
               + record("b", [1.0, 0.0, 0.0, 1.0, 0.5] * 4)
               + record("c", [0.0] * 18 + [0.5] * 2))
    ratings = fit_ratings(battles, anchor="anchor", n_boot=300, ranked=["a", "b", "c"])
    a, b, c = ratings["a"], ratings["b"], ratings["c"]
    assert a.score > b.score > c.score
    assert b.ci_high >= a.ci_low  # the overlap the ranges must reflect (by about 110 points)
    assert c.ci_high < b.ci_low  # 'c' is clearly separated (by about 200 points)
    ranks = {m: (r.rank, r.rank_low, r.rank_high) for m, r in ratings.items() if m != "anchor"}
    assert ranks == {"a": (1, 1, 2), "b": (1, 1, 2), "c": (3, 3, 3)}
