"""Style sensitivity: a judge that follows length is named as such; one that follows people is not."""

from __future__ import annotations

import random

from harness.core.records import Dialogue, Judgment
from harness.score.ratings import RatedDialogue
from harness.score.style_sensitivity import style_sensitivity

FILL = "well okay then so it goes and we carry on with the day as it comes".split()


def data(n: int = 150, seed: int = 0):
    """Two replies per dialogue: lengths vary at random; people rate the one that says 'sorry' higher."""
    rng = random.Random(seed)
    rated, pairs = [], []
    for k in range(n):
        texts, ratings = {}, {}
        for src in ("human", "chatgpt_empathy"):
            words = [rng.choice(FILL) for _ in range(rng.randint(3, 40))]
            kind = rng.random() < 0.5
            texts[src] = ("I'm so sorry. " if kind else "") + " ".join(words) + "."
            ratings[src] = 3 if kind else 1
        d = Dialogue(id=f"d{k}", emotion="sad", sentiment="negative", situation="s", utterance="my dog died")
        rated.append(RatedDialogue(dialogue=d, responses=texts, ratings=ratings))
        pairs.append((d.id, texts))
    return rated, pairs


def judgments(pairs, prefer):
    out = []
    for dialogue_id, texts in pairs:
        a, b = texts["human"], texts["chatgpt_empathy"]
        winner = prefer(a, b)
        out.append(Judgment(dialogue_id=dialogue_id, comparison="validity", candidate="human",
                            reference="chatgpt_empathy", verdicts=(), outcome=winner,
                            candidate_words=len(a.split()), reference_words=len(b.split())))
    return out


def test_a_length_driven_judge_is_named_and_a_people_like_one_is_not():
    rated, pairs = data()
    longer = judgments(pairs, lambda a, b: "candidate" if len(a.split()) > len(b.split()) else
                       "reference" if len(a.split()) < len(b.split()) else "tie")
    found = style_sensitivity(rated, longer)
    assert found["judge"]["words"] > 1.0 and abs(found["people"]["words"]) < 0.5
    assert "words" in found["named"] and "far more than people" in found["line"]
    assert found["people"]["sympathy"] > 1.0  # people follow "sorry" here
    like_people = judgments(pairs, lambda a, b: "candidate" if a.startswith("I'm so sorry") > b.startswith(
        "I'm so sorry") else "reference" if a.startswith("I'm so sorry") < b.startswith("I'm so sorry") else "tie")
    found = style_sensitivity(rated, like_people)
    assert found["named"] == [] and found["judge"]["sympathy"] > 1.0
    assert found["n_judge"] == 150 and found["n_human"] == sum(r.ratings["human"] != r.ratings["chatgpt_empathy"]
                                                              for r in rated)


def test_too_few_pairs_give_a_line_not_an_error():
    rated, pairs = data(n=1)
    found = style_sensitivity(rated, judgments(pairs, lambda a, b: "tie"))
    assert found["named"] == [] and "too few pairs" in found["line"]
