"""Reward-model data for ``empathy judge train``: rated replies grouped by dialogue, their pairs, the split.

Two inputs: the Welivita & Pu ratings CSV (five rated replies per dialogue, :func:`harness.score.ratings.load_rated`),
or JSON lines, each either ``{dialogue | situation + utterance, chosen, rejected[, margin]}`` (a preference pair) or
``{dialogue | situation + utterance, reply, rating}`` (one rated reply); rows of one dialogue (the same ``id``, or
the same text) are grouped. Pairs are replies of the same dialogue with different ratings (the better one first,
margin = the rating difference); ties give no pair. Dialogues of the evaluation set are refused with the
distillation's overlap guard (:func:`harness.train.clean.overlap_guard`), and the validation split is drawn by
dialogue (seeded), never by pair, so no dialogue is on both sides.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.io import short_hash
from harness.core.records import Dialogue


@dataclass
class Group:
    """One dialogue's replies: text, source (CSV column, if any), rating (if any); pairs (better, worse, margin)."""

    dialogue: Dialogue
    texts: list[str] = field(default_factory=list)
    sources: list[str | None] = field(default_factory=list)
    ratings: list[float | None] = field(default_factory=list)
    pairs: list[tuple[int, int, float]] = field(default_factory=list)

    def add(self, text: str, source: str | None = None, rating: float | None = None) -> int:
        """The index of reply ``text`` (added once; a rating given later fills a missing one)."""
        if text in self.texts:
            i = self.texts.index(text)
            if self.ratings[i] is None:
                self.ratings[i] = rating
            return i
        self.texts.append(text)
        self.sources.append(source)
        self.ratings.append(rating)
        return len(self.texts) - 1


def load_groups(path: Path) -> list[Group]:
    """Rated replies of a Welivita & Pu CSV or a JSONL file, grouped by dialogue, with their pairs."""
    if not path.is_file():
        raise HarnessError(f"--ratings {path}: no such file (give a Welivita & Pu ratings CSV or a JSONL file of "
                           "chosen/rejected pairs or rated replies)")
    groups = _csv_groups(path) if path.suffix.lower() == ".csv" else _jsonl_groups(path)
    for g in groups:
        for i in range(len(g.texts)):
            for j in range(i + 1, len(g.texts)):
                ri, rj = g.ratings[i], g.ratings[j]
                if ri is not None and rj is not None and ri != rj:
                    g.pairs.append((i, j, ri - rj) if ri > rj else (j, i, rj - ri))
    _check_pairs(path, groups)
    return groups


def _csv_groups(path: Path) -> list[Group]:
    from harness.score.ratings import load_rated

    groups = []
    for r in load_rated(path):
        g = Group(r.dialogue)
        for source, rating in r.ratings.items():
            if r.responses[source]:
                g.add(r.responses[source], source, float(rating))
        groups.append(g)
    return groups


def _jsonl_groups(path: Path) -> list[Group]:
    groups: dict[str, Group] = {}
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise HarnessError(f"{where}: not valid JSON ({exc})") from exc
        if not isinstance(row, dict):
            raise HarnessError(f"{where}: expected a JSON object")
        dialogue = _dialogue(row, where)
        g = groups.setdefault(dialogue.id, Group(dialogue))
        if "chosen" in row or "rejected" in row:
            chosen, rejected = _text(row, "chosen", where), _text(row, "rejected", where)
            margin = _number(row.get("margin", 1.0), "margin", where)
            if chosen == rejected:
                raise HarnessError(f"{where}: chosen and rejected are the same reply")
            g.pairs.append((g.add(chosen), g.add(rejected), margin))
        elif "reply" in row:
            g.add(_text(row, "reply", where), None, _number(row.get("rating"), "rating", where))
        else:
            raise HarnessError(f"{where}: expected 'chosen' and 'rejected' (a preference pair) or 'reply' and "
                               "'rating' (a rated reply)")
    if not groups:
        raise HarnessError(f"{path}: no rows")
    return list(groups.values())


def _dialogue(row: dict[str, Any], where: str) -> Dialogue:
    if isinstance(row.get("dialogue"), str) and row["dialogue"].strip():
        situation, utterance = "", row["dialogue"].strip()
    else:
        situation, utterance = str(row.get("situation") or "").strip(), str(row.get("utterance") or "").strip()
    if not utterance:
        raise HarnessError(f"{where}: no dialogue: give 'dialogue' (its text) or 'situation' and 'utterance'")
    given = row.get("id", row.get("dialogue_id"))
    key = str(given) if given not in (None, "") else f"text-{short_hash(situation, utterance)}"
    return Dialogue(id=key, emotion=str(row.get("emotion") or ""), sentiment="negative", situation=situation,
                    utterance=utterance, source="jsonl", split="train")


def _text(row: dict[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise HarnessError(f"{where}: '{key}' must be a non-empty reply text")
    return value.strip()


def _number(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HarnessError(f"{where}: '{key}' must be a number, not {value!r}")
    return float(value)


def _check_pairs(path: Path, groups: Sequence[Group]) -> None:
    if any(g.pairs for g in groups):
        return
    if not any(sum(r is not None for r in g.ratings) >= 2 for g in groups):
        raise HarnessError(f"{path}: every dialogue has one rated reply, so there is nothing to compare: a reward "
                           "model learns from two or more rated replies of the same dialogue (or chosen/rejected "
                           "pairs) — give several replies per dialogue")
    raise HarnessError(f"{path}: all ratings within each dialogue are equal, so there is no better reply to learn "
                       "from: give ratings that differ between replies of the same dialogue (ties give no pair)")


def guard(groups: Sequence[Group], eval_dataset: str, eval_limit: int | None) -> tuple[list[Group], dict[str, Any]]:
    """Groups minus those whose dialogue is in the evaluation set (the distillation's overlap guard), and a report."""
    from harness.data.sources import interleave_by_emotion, load_dialogues
    from harness.train.clean import overlap_guard

    evaluation = load_dialogues(eval_dataset)
    if eval_limit:
        evaluation = interleave_by_emotion(evaluation)[:eval_limit]
    kept, report = overlap_guard([g.dialogue for g in groups], evaluation)
    report["eval_dataset"] = eval_dataset
    report["eval_limit"] = eval_limit
    keep = {d.id for d in kept}
    left = [g for g in groups if g.dialogue.id in keep]
    if not any(g.pairs for g in left):
        raise HarnessError(f"every dialogue with a pair is in the evaluation set ({eval_dataset}"
                           f"{f', first {eval_limit}' if eval_limit else ''}); train on other data or narrow "
                           "--eval-dataset / --eval-limit")
    return left, report


def split_by_dialogue(groups: Sequence[Group], val_fraction: float, seed: int) -> tuple[list[Group], list[Group]]:
    """Train and validation groups: a seeded shuffle of the dialogues with a pair, cut at ``val_fraction``."""
    if not 0 < val_fraction < 1:
        raise HarnessError(f"--val-fraction {val_fraction}: give a fraction between 0 and 1 (e.g. 0.25) of the "
                           "dialogues to hold out for the validity figures")
    usable = sorted((g for g in groups if g.pairs), key=lambda g: g.dialogue.id)
    if len(usable) < 2:
        raise HarnessError(f"only {len(usable)} dialogue has a pair of differently rated replies: a validation "
                           "split needs at least 2 (one to train on, one to hold out) — give more dialogues")
    random.Random(seed).shuffle(usable)
    n_val = min(max(1, round(len(usable) * val_fraction)), len(usable) - 1)
    return usable[n_val:], usable[:n_val]


def split_summary(train: Sequence[Group], val: Sequence[Group], seed: int, fraction: float) -> dict[str, Any]:
    """Dialogue, reply and pair counts of both sides of the split."""
    def side(gs: Sequence[Group]) -> dict[str, int]:
        return {"dialogues": len(gs), "replies": sum(len(g.texts) for g in gs), "pairs": sum(len(g.pairs) for g in gs)}

    return {"seed": seed, "val_fraction": fraction, "by": "dialogue", "train": side(train), "validation": side(val),
            "validation_ids": sorted(g.dialogue.id for g in val)}
