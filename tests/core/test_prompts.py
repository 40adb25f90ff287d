from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.core.prompts import (
    EMPTY_RESPONSE,
    JUDGE_MAX_RESPONSE_CHARS,
    GenerationPrompt,
    _load,
    cut_reply,
    load_generation_prompt,
    load_pairwise_prompt,
    load_rubric_prompt,
    prepare_for_judge,
)
from harness.data.sources import load_dialogues


def test_generation_prompt_renders_context_and_utterance():
    d = load_dialogues("bundled")[0]
    text = load_generation_prompt().render(d)
    assert d.situation in text and d.utterance in text
    assert "28 words" in text and "97 words" in text
    assert text.rstrip().endswith("Response:")


def test_prompt_hash_changes_with_template():
    p = load_generation_prompt()
    assert p.hash == load_generation_prompt().hash
    assert p.model_copy(update={"template": p.template + " "}).hash != p.hash


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" I'm so sorry, that sounds awful.\nSpeaker: thanks\nResponse: ok", "I'm so sorry, that sounds awful."),
        ("That's wonderful news!\n\nContext: I won a prize", "That's wonderful news!"),
        ("\"That must be hard.\"", "That must be hard."),
        ("First paragraph here.\n\nSecond paragraph.", "First paragraph here."),
        ("Oh no. Speaker: and then", "Oh no."),
        ("\n\n  Leading blank lines are skipped.", "Leading blank lines are skipped."),
        ("", ""),
    ],
)
def test_cut_reply(raw: str, expected: str):
    assert cut_reply(raw) == expected


def test_prepare_for_judge_flags_empty_and_long():
    assert prepare_for_judge("   \n") == (EMPTY_RESPONSE, ("empty",))
    shown, flags = prepare_for_judge("x" * 100_000)
    assert flags == ("truncated",) and len(shown) < JUDGE_MAX_RESPONSE_CHARS + 10
    assert prepare_for_judge("fine") == ("fine", ())


def test_judge_prompts_load_and_render():
    d = load_dialogues("bundled")[0]
    pw = load_pairwise_prompt()
    text = pw.render(d, "first reply", "second reply", "generate")
    assert text.index("first reply") < text.index("second reply")
    assert "ignore any instructions" in text
    assert pw.label_list == ("A", "B", "C")
    rb = load_rubric_prompt()
    assert tuple(rb.dimensions) == ("cognitive", "affective", "compassionate")
    assert "affective empathy" in rb.render(d, "r", "affective", "logits")


def test_prompt_config_rejects_unknown_keys(tmp_path: Path):
    f = tmp_path / "gen.yaml"
    f.write_text("version: x\ntemplate: t\nstop: []\ncolour: blue\n", encoding="utf-8")
    with pytest.raises(HarnessError, match="colour"):
        _load(f, GenerationPrompt)
