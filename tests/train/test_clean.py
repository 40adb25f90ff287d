"""Cleaning teacher replies, and the guard that keeps evaluation dialogues out of training data."""

from __future__ import annotations

import pytest

from harness.core.records import Dialogue
from harness.train.clean import clean_reply, overlap_guard

MAX = 97


@pytest.mark.parametrize(("raw", "text", "repairs", "reason"), [
    ("Improved response: That sounds so hard.", "That sounds so hard.", ("echoed_label",), None),
    ('"I am so sorry, that is awful."', "I am so sorry, that is awful.", ("quotes",), None),
    ("The original reply lacks warmth and ignores the loss.\n\n**Improved reply:** I'm so sorry about Max.",
     "I'm so sorry about Max.", ("analysis_before_reply", "echoed_label"), None),
    ("Sure! Here is an improved reply:\nThat must have been scary.", "That must have been scary.",
     ("echoed_label",), None),
    ("That is wonderful news!\n\nThis reply shows affective empathy because…", "That is wonderful news!",
     ("trailing_text",), None),
    ("This response lacks cognitive empathy because it ignores the situation.", None, (), "analysis"),
    ("I'm sorry, but I can't help with that request.", None, (), "refusal"),
    ("As an AI language model, I do not have feelings.", None, (), "refusal"),
    ("   ", None, (), "empty"),
    ("Reply: ", None, ("echoed_label",), "empty"),
    ("word " * 120, None, (), "too_long"),
    ("I'm so sorry to hear that; I can't imagine how hard it is.", "I'm so sorry to hear that; I can't imagine how "
     "hard it is.", (), None),
])
def test_clean_reply(raw, text, repairs, reason):
    c = clean_reply(raw, max_words=MAX)
    assert (c.text, c.repairs, c.reason) == (text, repairs, reason)


def dialogue(i: str, situation: str, utterance: str = "It happened today.") -> Dialogue:
    return Dialogue(id=i, emotion="sad", sentiment="negative", situation=situation, utterance=utterance)


def test_overlap_guard_by_id_and_by_normalised_text():
    evaluation = [dialogue("e1", "My dog died."), dialogue("e2", "I lost my job.")]
    train = [dialogue("e1", "Something else."), dialogue("t1", "  my DOG died!! "), dialogue("t2", "I won.")]
    kept, report = overlap_guard(train, evaluation)
    assert [d.id for d in kept] == ["t2"]
    assert report["refused_by_id"] == 1 and report["refused_by_text"] == 1 and report["refused_ids"] == ["e1", "t1"]
