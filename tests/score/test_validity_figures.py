"""Validity at a glance: the pure figures against hand-computed values, the source prior's rules, validate-judge."""

from __future__ import annotations

import io
import math

import pytest
from rich.console import Console

from harness.core.errors import HarnessError
from harness.judge.judge import Judge
from harness.llm.cache import JudgeCache
from harness.llm.client import LLMClient
from harness.score.agreement import kendall_tau
from harness.score.validity import print_validity, validate_judge
from harness.score.validity_figures import (
    PairRecord,
    cross_fitted_prior,
    source_means,
    two_folds,
    validity_figures,
)
from tests.score.test_validity import SorryJudge, write_ratings

PRIOR = {"A": 3.0, "B": 2.0, "C": 1.0}
PAIRS = [  # dialogue, a, b, rating a, rating b, judge preference for a, words a, words b
    PairRecord("d1", "A", "B", 3, 1, 1.0, 5, 10),   # agree 1, longer 0, prior 1
    PairRecord("d1", "A", "C", 3, 2, 0.5, 5, 1),    # agree ½, longer 1, prior 1
    PairRecord("d1", "B", "C", 1, 2, 0.0, 10, 1),   # agree 1, longer 0, prior 0
    PairRecord("d2", "A", "B", 2, 2, 1.0, 3, 3),    # human tie: in the reply scores only
    PairRecord("d2", "A", "C", 2, 3, None, 3, 4),   # unscored: nowhere
    PairRecord("d2", "C", "B", 3, 2, 0.25, 4, 3),   # agree ¼, longer 1, prior 0
]


def test_figures_by_hand():
    f = validity_figures(PAIRS, PRIOR, seed=0)
    assert f["agreement"]["value"] == pytest.approx(2.75 / 4) and f["agreement"]["n"] == 4
    assert f["length_baseline"]["value"] == 0.5 and f["length_baseline"]["n"] == 4
    assert f["source_prior_baseline"]["value"] == 0.5 and f["source_prior_baseline"]["n"] == 4
    assert f["n_pairs"] == 6 and f["n_unscored"] == 1
    for entry in (f["agreement"], f["length_baseline"], f["source_prior_baseline"]):
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    # reply scores: d1 A .75, B 0, C .75; d2 A 1, B .375, C .25; human means A 2.5, B 1.5, C 2.5
    assert f["source_means"]["judge"] == pytest.approx({"A": 0.875, "B": 0.1875, "C": 0.5})
    assert f["source_means"]["human"] == {"A": 2.5, "B": 1.5, "C": 2.5}
    assert f["source_kendall_tau"] == pytest.approx(2 / math.sqrt(6))
    assert all(math.isnan(e["rho"]) for e in f["per_source_spearman"].values())  # two replies per source: no ρ
    assert f["summary"].startswith("agrees with people on 68.8 % of 4 non-tied pairs [")
    assert f["summary"].endswith("vs length 50.0 %, vs source prior 50.0 %")


def test_an_unknown_source_or_equal_means_are_a_coin_flip():
    f = validity_figures(PAIRS[:1], {"A": 2.0}, seed=0)
    assert f["source_prior_baseline"]["value"] == 0.5
    f = validity_figures(PAIRS[:1], {"A": 2.0, "B": 2.0}, seed=0)
    assert f["source_prior_baseline"]["value"] == 0.5


def test_per_source_spearman_ranks_replies_of_one_writer():
    # X's ratings vary across dialogues, Y is always 2; the judge's preference for X follows X's rating
    pairs = [PairRecord(f"d{i}", "X", "Y", 1 + i % 3, 2, (1 + i % 3) / 4, 3, 3) for i in range(9)]
    f = validity_figures(pairs, {}, seed=0)
    assert f["per_source_spearman"]["X"]["rho"] == pytest.approx(1.0) and f["per_source_spearman"]["X"]["n"] == 9
    assert math.isnan(f["per_source_spearman"]["Y"]["rho"])  # constant human rating
    assert f["per_source_spearman_mean"] == pytest.approx(1.0)
    assert f["agreement"]["n"] == 6  # the three X = Y = 2 pairs are tied


def test_kendall_tau_b():
    assert kendall_tau([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert kendall_tau([2.5, 1.5, 2.5], [0.875, 0.1875, 0.5]) == pytest.approx(2 / math.sqrt(6))
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3])) and math.isnan(kendall_tau([1], [1]))
    scipy_stats = pytest.importorskip("scipy.stats")
    x, y = [1, 2, 2, 3, 5, 4, 4], [2, 1, 3, 3, 4, 4, 5]
    assert kendall_tau(x, y) == pytest.approx(scipy_stats.kendalltau(x, y).statistic)


def test_cross_fitted_prior_never_uses_a_dialogues_own_ratings():
    ratings = {f"d{i}": {"A": float(i), "B": float(10 - i)} for i in range(10)}
    folds = two_folds(ratings, seed=3)
    assert sorted(folds.values()).count(0) == 5 and folds == two_folds(ratings, seed=3)
    prior = cross_fitted_prior(ratings, seed=3)
    for d in ratings:
        others = [e for e in ratings if folds[e] != folds[d]]
        assert d not in others
        assert prior(d) == source_means((s, r) for e in others for s, r in ratings[e].items())
    assert prior("unknown") == {"A": 4.5, "B": 5.5}


def test_validate_judge_reports_the_figures(tmp_path):
    ratings = write_ratings(tmp_path / "ratings.csv")
    judge = Judge(client=LLMClient(backend=SorryJudge(), mode="generate", cache=JudgeCache(tmp_path / "c.sqlite")))
    v = validate_judge(judge, ratings, tmp_path / "out", stress_limit=0)
    g = v["at_a_glance"]
    assert g["agreement"] == v["pairwise_agreement"]  # the same non-tied pairs, the same verdicts
    assert g["length_baseline"]["value"] == v["longer_wins_agreement"]["value"] == 0.0
    assert g["length_baseline"]["n"] == g["source_prior_baseline"]["n"] == g["agreement"]["n"]
    assert 0.0 <= g["source_prior_baseline"]["value"] <= 1.0
    assert v["source_prior"]["rule"].startswith("seeded 2-fold split by dialogue") and v["source_prior"]["n_dialogues"] == 8
    # within every source whose ratings vary, the judge ranks 'sorry' replies (rated 3) above the others
    assert {s: e["rho"] for s, e in g["per_source_spearman"].items() if s != "human"} == pytest.approx(
        {"GPT-4": 1.0, "LLaMA-2": 1.0, "Gemini": 1.0, "Mixtral": 1.0})
    assert math.isnan(g["per_source_spearman"]["human"]["rho"])  # every human reply is rated 3
    assert g["source_kendall_tau"] == pytest.approx(1.0)
    out = Console(file=io.StringIO(), width=200)
    print_validity(v, out)
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert "agrees with people on 100.0 %" in text and "vs length 0.0 %" in text
    assert "'source rated higher on average wins' rule" in text and "Kendall's τ" in text and "within GPT-4" in text


def test_the_source_prior_comes_from_other_ratings(tmp_path):
    ratings = write_ratings(tmp_path / "ratings.csv")
    judge = Judge(client=LLMClient(backend=SorryJudge(), mode="generate", cache=JudgeCache(tmp_path / "c.sqlite")))
    more = write_ratings(tmp_path / "more.csv", n=10)  # the same 8 dialogues and two others
    v = validate_judge(judge, ratings, tmp_path / "out", stress_limit=0, prior_ratings=more)
    assert v["source_prior"]["n_dialogues"] == 2  # the evaluated dialogues are dropped from the prior
    assert v["source_prior"]["means"] == {"human": 3.0, "GPT-4": 2.0, "LLaMA-2": 3.0, "Gemini": 2.0, "Mixtral": 1.0}
    with pytest.raises(HarnessError, match="no ratings to learn the source prior from"):
        validate_judge(judge, ratings, tmp_path / "out", stress_limit=0, prior_ratings=ratings)
    with pytest.raises(HarnessError, match="paper_test split of .*: no dialogues"):
        validate_judge(judge, ratings, tmp_path / "out", split="paper_train", stress_limit=0)
