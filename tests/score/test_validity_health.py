"""validate-judge beside the discrete verdict: the continuous preference (logits mode) and the judge's health.

``LeaningTieJudge`` is a mock backend (no model) shaped like SmolLM2-135M as a judge: its most likely label is
always the tie, but it puts a little more probability on the reply that says "sorry". The discrete verdicts say
nothing; the continuous preference still agrees with people a little; the health block says the judge is useless.
"""

from __future__ import annotations

import json

import pytest

from harness.judge.judge import Judge
from harness.llm.cache import JudgeCache
from harness.llm.client import LLMClient
from harness.score.health import UNHEALTHY
from harness.score.validity import print_validity, validate_judge
from tests.score.test_validity import write_ratings


class LeaningTieJudge:
    """Mock backend: P(C) = 0.5 always; 0.3 on the reply with 'sorry' (or on the caring probe reply), 0.2 on the other."""

    name, model_id, revision = "scripted", "leaning-tie-judge", None

    def label_probs(self, requests):
        out = []
        for r in requests:
            a = r.user.split("<<<RESPONSE A>>>")[1].split("<<<END OF RESPONSE A>>>")[0]
            b = r.user.split("<<<RESPONSE B>>>")[1].split("<<<END OF RESPONSE B>>>")[0]
            first = ("sorry" in a.lower()) or len(a) > len(b) and "sorry" not in b.lower()
            out.append({"A": 0.3 if first else 0.2, "B": 0.2 if first else 0.3, "C": 0.5, "_mass": 0.9})
        yield list(range(len(requests))), out

    def generate(self, requests, max_new_tokens):
        raise AssertionError("logits mode only")

    def close(self):
        pass


def test_continuous_preference_and_health_of_an_all_ties_judge(tmp_path, capsys):
    ratings = write_ratings(tmp_path / "ratings.csv", n=4)
    judge = Judge(client=LLMClient(backend=LeaningTieJudge(), mode="logits", cache=JudgeCache(tmp_path / "c.sqlite")))
    v = validate_judge(judge, ratings, tmp_path / "out", stress_limit=10)
    assert v["pairwise_agreement"]["value"] == 0.5  # every discrete verdict is the tie label
    # P(higher-rated preferred) = 0.3 + 0.5 / 2 on every pair whose ratings differ, in both orders
    assert v["preference_agreement"]["value"] == pytest.approx(0.55)
    assert v["preference_agreement"]["n"] == v["pairwise_agreement"]["n"]
    h = v["judge_health"]
    assert h["tie_rate"] == 1.0 and h["probe_accuracy"] == 0.0 and h["probe_n"] >= 6
    assert h["judge_ok"] is False and "100% of its verdicts are the tie label" in h["judge_problem"]
    assert json.loads((tmp_path / "out" / "validity.json").read_text())["judge_health"] == h
    print_validity(v)
    err = " ".join(capsys.readouterr().err.split())  # the rich console writes to stderr, wrapping lines
    assert "continuous preference" in err and UNHEALTHY in err


def test_generate_mode_has_no_continuous_preference(tmp_path):
    from tests.score.test_validity import SorryJudge

    ratings = write_ratings(tmp_path / "ratings.csv", n=4)
    judge = Judge(client=LLMClient(backend=SorryJudge(), mode="generate", cache=JudgeCache(tmp_path / "c.sqlite")))
    v = validate_judge(judge, ratings, tmp_path / "out", stress_limit=10)
    assert v["preference_agreement"]["n"] == 0
    assert v["judge_health"]["position_bias"] == 0.0 and v["judge_health"]["probe_n"] >= 6
