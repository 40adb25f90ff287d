"""Human ratings of empathetic replies (Welivita & Pu) as the judge-validity run reads them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.core.records import Dialogue
from harness.data.sources import WELIVITA_SOURCES, DatasetError, interleave_by_emotion, welivita_records

SOURCE_NAMES = {"human": "human", "chatgpt_empathy": "GPT-4", "llama_empathy": "LLaMA-2",
                "gemini_empathy": "Gemini", "mixtral_empathy": "Mixtral"}


@dataclass(frozen=True)
class RatedDialogue:
    """One dialogue with its rated replies (source → text, source → rating 1-3)."""

    dialogue: Dialogue
    responses: dict[str, str]
    ratings: dict[str, int]


def load_rated(path: Path, *, split: str = "all", limit: int | None = None) -> list[RatedDialogue]:
    """Rated dialogues of a Welivita & Pu CSV (emotion-interleaved, first ``limit``); bad ratings are errors."""
    records = welivita_records(path, split=split)
    rated = []
    for dialogue, row in records:
        responses: dict[str, str] = {}
        ratings: dict[str, int] = {}
        for source in WELIVITA_SOURCES:
            text = (row.get(f"response_{source}") or "").strip()
            value = (row.get(f"rating_{source}") or "").strip()
            if not value:
                continue  # unrated reply: left out of every pair
            if value not in ("1", "2", "3"):
                raise DatasetError(f"{path}:{row['_line']}: rating_{source} is {value!r}; ratings are 1, 2 or 3 "
                                   "(or empty for an unrated reply)")
            responses[source] = text
            ratings[source] = int(value)
        rated.append(RatedDialogue(dialogue, responses, ratings))
    by_id = {r.dialogue.id: r for r in rated}
    order = interleave_by_emotion([r.dialogue for r in rated])
    chosen = [by_id[d.id] for d in order][: limit if limit else None]
    if not chosen:
        raise DatasetError(f"{path}: no dialogues to validate on (split {split!r})")
    return chosen
