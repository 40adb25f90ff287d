"""Teacher replies, cleaned and checked; and the guard that keeps evaluation dialogues out of training data.

Cleaning repairs what teachers add around a reply (echoed labels, quotes, analysis before a labelled reply,
trailing notes) and rejects, with a counted reason, what is not a usable reply (empty, refusal, analysis only,
over the length limit). The overlap guard refuses training dialogues that are in the evaluation set, by id and by
normalised text.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.core.prompts import cut_reply
from harness.core.records import Dialogue

_LABEL = re.compile(  # "Improved response:", "**Reply:**", "Turn 3 reply:", "Here is an improved reply:" …
    r"(?:^|\n)[ \t]*(?:(?:sure|certainly|of course|okay|absolutely)[!.,]?[ \t]+)?[*_#]*[ \t]*"
    r"(?:here(?:'s| is)[^\n:]{0,40}|(?:[\w'-]+[ \t]+){0,3}(?:reply|response|answer|version)"
    r"(?:[ \t]*\([^)\n]{0,40}\))?)[ \t]*[*_]*:[*_]*[ \t]*",
    re.IGNORECASE,
)
_PREAMBLE = re.compile(r"^\s*(?:sure|certainly|of course|okay|ok|absolutely)\b[^\n]{0,60}?[.!:]\s*", re.IGNORECASE)
_ANALYSIS = re.compile(
    r"^\s*(?:the (?:original |listener'?s? )?(?:reply|response)\b|this (?:reply|response)\b|analysis\b|to improve\b|"
    r"the reply (?:lacks|shows)|in (?:the|this) (?:reply|response))",
    re.IGNORECASE,
)
_REFUSAL = re.compile(
    r"\b(?:I can(?:no|')t (?:help|assist|provide|comply|do that|fulfil)|I(?: am|'m) (?:not able|unable) to "
    r"(?:help|assist|provide)|as an AI(?: language model)?\b|I(?: must|'ll have to) decline)",
    re.IGNORECASE,
)
_QUOTES = "\"'“”‘’«»"


def normalise(text: str) -> str:
    """Lower case, no punctuation, single spaces: for duplicate and overlap checks."""
    table = str.maketrans("", "", string.punctuation + "“”‘’«»")
    return " ".join(text.lower().translate(table).split())


@dataclass(frozen=True)
class Cleaned:
    """A cleaned teacher reply, the repairs made, or the reason it was rejected."""

    text: str | None
    repairs: tuple[str, ...] = ()
    reason: str | None = None


def clean_reply(raw: str, *, max_words: int) -> Cleaned:
    """Clean one teacher reply.

    Repairs: echoed labels, wrapping quotes, analysis before a labelled reply, trailing notes. Rejections: empty,
    refusals, analysis without a reply, replies over ``max_words``.
    """
    repairs: list[str] = []
    text = raw.replace("\r\n", "\n").strip()
    if not text:
        return Cleaned(None, reason="empty")
    labels = list(_LABEL.finditer(text))
    if labels:
        last = labels[-1]
        if text[: last.start()].strip() and not _PREAMBLE.fullmatch(text[: last.start()].strip() + " "):
            repairs.append("analysis_before_reply")
        repairs.append("echoed_label")
        text = text[last.end() :].strip()
    elif _PREAMBLE.match(text) and "\n" in text.strip():
        repairs.append("echoed_label")
        text = text[_PREAMBLE.match(text).end() :].strip()  # type: ignore[union-attr]
    if _ANALYSIS.match(text):
        return Cleaned(None, tuple(repairs), reason="analysis")
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        repairs.append("quotes")
        text = text.strip(_QUOTES).strip()
    cut = cut_reply(text)
    if cut != text:
        repairs.append("trailing_text")
        text = cut
    text = text.strip(_QUOTES).strip() if text[:1] in _QUOTES and text[-1:] in _QUOTES else text
    if not text:
        return Cleaned(None, tuple(repairs), reason="empty")
    if _REFUSAL.search(text):
        return Cleaned(None, tuple(repairs), reason="refusal")
    if len(text.split()) > max_words:
        return Cleaned(None, tuple(repairs), reason="too_long")
    return Cleaned(text, tuple(repairs))


# -- the overlap guard ---------------------------------------------------------------------------------------


def dialogue_text_key(d: Dialogue) -> str:
    """Normalised situation + utterance: the same prompt under another id is still the same prompt."""
    return normalise(f"{d.situation} {d.utterance}")


def overlap_guard(train: Sequence[Dialogue], evaluation: Sequence[Dialogue]) -> tuple[list[Dialogue], dict[str, Any]]:
    """Training dialogues minus any in the evaluation set (same id, or same normalised text), and a report."""
    ids = {d.id for d in evaluation}
    texts = {dialogue_text_key(d) for d in evaluation}
    kept, by_id, by_text = [], [], []
    for d in train:
        if d.id in ids:
            by_id.append(d.id)
        elif dialogue_text_key(d) in texts:
            by_text.append(d.id)
        else:
            kept.append(d)
    report = {"eval_dialogues": len(evaluation), "checked": len(train), "refused": len(by_id) + len(by_text),
              "refused_by_id": len(by_id), "refused_by_text": len(by_text), "refused_ids": by_id + by_text}
    return kept, report
