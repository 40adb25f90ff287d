"""The style profile: each feature counted on replies the test writes, the phrase file as data, per-run summaries."""

from __future__ import annotations

import numpy as np
import pytest

from harness.core.errors import HarnessError
from harness.score.style import FEATURES, StyleCounter, largest_differences, load_counter, summarise


@pytest.fixture(scope="module")
def counter() -> StyleCounter:
    return load_counter()


def test_each_feature_is_counted(counter):
    reply = ("I’m so sorry to hear that. That sounds really hard! Have you tried talking to your sister? "
             "Try to rest tonight. 😊🙏\n- one thing\n2) **another**\n# Steps")
    p = counter.profile(reply, "My sister stopped talking to me after the wedding.")
    assert list(p) == list(FEATURES)
    assert p["words"] == len(reply.split())
    assert (p["questions"], p["exclamations"], p["emoji"]) == (1, 1, 2)
    assert (p["list_items"], p["bold"], p["headers"]) == (2, 1, 1)
    assert p["second_person"] == 2  # you, your
    assert p["sympathy"] == 2  # "i’m so sorry" (curly quote straightened), "that sounds really hard"
    assert p["advice"] == 2 and p["imperatives"] == 1  # "have you tried", "try to"; the sentence "Try to rest …"
    assert p["echo"] == 0.5  # sister, talking of the content words sister, stopped, talking, wedding
    assert p["validation"] == p["apology"] == p["ai_disclaimer"] == 0


def test_disclaimers_validation_and_an_empty_reply(counter):
    p = counter.profile("As an AI language model, I don't have feelings, but it makes sense that you feel this way. "
                        "I apologize if this is unhelpful.")
    assert p["ai_disclaimer"] == 2 and p["validation"] == 1 and p["apology"] == 1
    empty = counter.profile("")
    assert all(v == 0 for v in empty.values())
    plain = counter.profile("The cat sat on the mat. The dog ran.")
    assert plain["grade"] < 2 and counter.profile(
        "Understandably, unemployment-related uncertainty characteristically precipitates considerable "
        "psychological deterioration.")["grade"] > 15


def test_the_phrase_file_is_data_and_part_of_the_fingerprint(tmp_path, counter):
    text = (counter.phrases.model_dump_json())
    import json

    import yaml

    data = json.loads(text)
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(data))
    same = load_counter(str(tmp_path / "a.yaml"))
    assert same.fingerprint == counter.fingerprint
    data["validation"] = [*data["validation"], "you are allowed to"]
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(data))
    other = load_counter(str(tmp_path / "b.yaml"))
    assert other.fingerprint != counter.fingerprint
    assert other.profile("You are allowed to rest.")["validation"] == 1
    (tmp_path / "bad.yaml").write_text("version: x\nstock_sympathy: []\nunknown: 1\n")
    with pytest.raises(HarnessError, match=r"style phrase file .*bad\.yaml"):
        load_counter(str(tmp_path / "bad.yaml"))


def test_run_summary_and_largest_differences(counter):
    rng = np.random.default_rng(0)
    cand = counter.matrix([("I'm so sorry. " * int(k) + "What happened?", "") for k in rng.integers(1, 4, 60)])
    ref = counter.matrix([("ok.", "") for _ in range(60)])
    s = summarise(cand, seed=3)
    assert s["words"]["mean"] == pytest.approx(cand[:, 0].mean())
    assert s["words"]["ci_low"] <= s["words"]["mean"] <= s["words"]["ci_high"] and s["words"]["n"] == 60
    assert s["questions"] == {"mean": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": 60}
    assert summarise(cand, seed=3) == s  # seeded
    top = largest_differences(cand, ref)
    assert len(top) == 3 and {t["feature"] for t in top} <= set(FEATURES)
    assert all(t["difference_sd"] > 0 for t in top)  # the candidate says more of everything here
    assert summarise(np.zeros((0, len(FEATURES))), seed=1)["words"]["mean"] is None
