import math

import numpy as np
import pytest

from harness.core.records import Judgment, PairVerdict, RubricScore
from harness.score.stats import bootstrap_ci, comparison_stats, rubric_stats


def J(i, w1, w2, cw=10, rw=10, p=None):
    return Judgment(
        dialogue_id=f"d{i}", comparison="vs_base", candidate="c", reference="base",
        verdicts=(PairVerdict(order="cand_first", winner=w1, p_candidate=p[0] if p else None),
                  PairVerdict(order="ref_first", winner=w2, p_candidate=p[1] if p else None)),
        outcome=None if None in (w1, w2) else ("candidate" if w1 == w2 == "candidate" else
                                               "reference" if w1 == w2 == "reference" else "tie"),
        candidate_words=cw, reference_words=rw,
    )


def test_win_rate_ties_flips_and_unscored_by_hand():
    js = [
        J(0, "candidate", "candidate"),  # win
        J(1, "candidate", "candidate"),  # win
        J(2, "reference", "reference"),  # loss
        J(3, "candidate", "reference"),  # tie by flip
        J(4, "tie", "tie"),              # explicit tie
        J(5, None, "candidate"),         # unscored
    ]
    s = comparison_stats(js, seed=0)
    # (2 wins + 0.5 * 2 ties) / 5 scored
    assert s["win_rate"] == pytest.approx(3 / 5)
    assert (s["wins"], s["losses"], s["ties"]) == (2, 1, 2)
    assert s["tie_rate"] == pytest.approx(2 / 5)
    assert s["n_scored"] == 5 and s["n_unscored"] == 1
    assert s["parse_rate"] == pytest.approx(5 / 6)
    assert s["position_flip_rate"] == pytest.approx(1 / 5)  # only d3 changed its mind
    # per order, over scored orders: cand_first = [1,1,0,1,.5] ; ref_first = [1,1,0,0,.5,1]
    assert s["win_rate_cand_first"] == pytest.approx(3.5 / 5)
    assert s["win_rate_ref_first"] == pytest.approx(3.5 / 6)
    assert s["ci_low"] <= s["win_rate"] <= s["ci_high"]


def test_bootstrap_ci_is_seeded_and_matches_numpy_by_hand():
    values = [1.0, 0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0]
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    rng = np.random.default_rng(3)
    arr = np.array(values)
    means = arr[rng.integers(0, 8, size=(2000, 8))].mean(axis=1)
    assert bootstrap_ci(values, seed=3) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])))
    assert bootstrap_ci([1.0] * 5, seed=1) == (1.0, 1.0)
    assert all(math.isnan(x) for x in bootstrap_ci([], seed=1))


def test_continuous_preference_is_mean_over_orders():
    js = [J(0, "candidate", "candidate", p=(0.8, 0.6)), J(1, "reference", "tie", p=(0.2, 0.4))]
    s = comparison_stats(js, seed=0)
    assert s["preference"] == pytest.approx((0.7 + 0.3) / 2)


def test_rubric_means_and_unscored():
    scores = [RubricScore(dialogue_id=f"d{i}", system="c", scores={"cognitive": c, "affective": a, "compassionate": 3.0})
              for i, (c, a) in enumerate([(4.0, 2.0), (2.0, None), (3.0, 5.0)])]
    s = rubric_stats(scores, seed=0)
    assert s["cognitive"]["mean"] == pytest.approx(3.0)
    assert s["affective"]["mean"] == pytest.approx(3.5) and s["affective"]["n_unscored"] == 1
    assert s["compassionate"]["ci_low"] == s["compassionate"]["ci_high"] == 3.0
