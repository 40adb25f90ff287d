"""Dialogue sources: the bundled set, EmpatheticDialogues from the Hub, the Welivita & Pu ratings CSV.

Every source yields :class:`~harness.core.records.Dialogue` records with stable ids; a dataset is identified by a
hash of its content (ids and text), so reference sets built on other data are refused.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from harness.core.errors import HarnessError
from harness.core.records import Dialogue
from harness.core.resources import bundled_dialogues_path

#: The 32 EmpatheticDialogues emotions and their sentiment (as in the Welivita & Pu release).
EMOTION_SENTIMENT: dict[str, str] = {
    **dict.fromkeys(
        "anticipating caring confident content excited faithful grateful hopeful impressed joyful "
        "prepared proud surprised trusting".split(),
        "positive",
    ),
    **dict.fromkeys(
        "afraid angry annoyed anxious apprehensive ashamed devastated disappointed disgusted embarrassed "
        "furious guilty jealous lonely nostalgic sad sentimental terrified".split(),
        "negative",
    ),
}

ED_REPO = "Estwld/empathetic_dialogues_llm"
#: Revision whose splits (19,533 / 2,770 / 2,547 conversations) this loader was written against.
ED_REVISION = "e85c6e0"
ED_SPLITS = ("train", "valid", "test")
WELIVITA_SOURCES = ("human", "chatgpt_empathy", "llama_empathy", "gemini_empathy", "mixtral_empathy")
WELIVITA_SPLITS = ("all", "paper_test", "paper_train")


class DatasetError(HarnessError):
    """A dialogue source could not be read."""


@dataclass(frozen=True)
class DatasetSpec:
    """Which dialogues to use, parsed from the ``--dataset`` option.

    Forms: ``bundled``; ``ed`` / ``ed:SPLIT`` / ``ed:SPLIT@REVISION`` (EmpatheticDialogues from the Hub);
    ``welivita:PATH.csv`` / ``welivita:PATH.csv:SPLIT``; a path to a ``.jsonl`` file of dialogues.
    """

    kind: str
    path: str | None = None
    split: str | None = None
    revision: str | None = None

    @classmethod
    def parse(cls, text: str) -> DatasetSpec:
        """Parse a ``--dataset`` value; raises DatasetError naming the accepted forms."""
        text = text.strip()
        if text in ("", "bundled"):
            return cls(kind="bundled")
        if text == "ed" or text.startswith("ed:"):
            rest = text[3:] if text.startswith("ed:") else ""
            split, _, revision = rest.partition("@")
            split = split or "test"
            if split not in ED_SPLITS:
                raise DatasetError(f"unknown EmpatheticDialogues split {split!r}; use one of {', '.join(ED_SPLITS)}")
            return cls(kind="ed", split=split, revision=revision or ED_REVISION)
        if text.startswith("welivita:"):
            path, split = text[len("welivita:") :], "all"
            head, sep, tail = path.rpartition(":")
            if sep and tail in WELIVITA_SPLITS:
                path, split = head, tail
            return cls(kind="welivita", path=path, split=split)
        if text.endswith(".jsonl"):
            return cls(kind="jsonl", path=text)
        if text.endswith(".csv"):
            return cls(kind="welivita", path=text, split="all")
        raise DatasetError(
            f"unknown dataset {text!r}: use 'bundled', 'ed:test[@REVISION]', 'welivita:FILE.csv[:paper_test]' "
            "or a path to a dialogues .jsonl file"
        )

    def __str__(self) -> str:
        if self.kind == "bundled":
            return "bundled"
        if self.kind == "ed":
            return f"ed:{self.split}@{self.revision}"
        if self.kind == "welivita":
            return f"welivita:{self.path}:{self.split}"
        return str(self.path)


def load_dialogues(spec: DatasetSpec | str) -> list[Dialogue]:
    """Load the dialogues a spec names, in a stable order."""
    if isinstance(spec, str):
        spec = DatasetSpec.parse(spec)
    if spec.kind == "bundled":
        return load_jsonl(bundled_dialogues_path(), source="bundled")
    if spec.kind == "jsonl":
        return load_jsonl(Path(str(spec.path)), source="jsonl")
    if spec.kind == "welivita":
        return load_welivita(Path(str(spec.path)), split=spec.split or "all")
    return load_empathetic_dialogues(split=spec.split or "test", revision=spec.revision or ED_REVISION)


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DatasetError(f"dialogue file not found: {path}")
    try:
        return path.read_text(encoding="utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte-order mark
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{path} is not valid UTF-8 (byte {exc.start}): re-save it as UTF-8, e.g. "
            f"'iconv -f latin1 -t utf-8 {path.name} > fixed.{path.suffix.lstrip('.')}'"
        ) from exc


def load_jsonl(path: Path, *, source: str = "jsonl") -> list[Dialogue]:
    """Read dialogues from a JSON-lines file (keys: id, emotion, sentiment, situation, utterance)."""
    dialogues: list[Dialogue] = []
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("expected a JSON object")
            row.setdefault("source", source)
            dialogue = Dialogue(**row)
        except (ValueError, TypeError, ValidationError) as exc:
            detail = str(exc).splitlines()
            reason = "; ".join(s.strip() for s in detail[:3])
            raise DatasetError(f"{path}:{lineno}: malformed dialogue row ({reason})") from exc
        _check_dialogue(dialogue, f"{path}:{lineno}")
        dialogues.append(dialogue)
    _check_unique(dialogues, str(path))
    return dialogues


def _check_dialogue(dialogue: Dialogue, where: str) -> None:
    if dialogue.emotion not in EMOTION_SENTIMENT:
        raise DatasetError(f"{where}: unknown emotion {dialogue.emotion!r}; use one of the 32 EmpatheticDialogues emotions")
    if not dialogue.utterance.strip():
        raise DatasetError(f"{where}: dialogue {dialogue.id!r} has an empty utterance")


def _check_unique(dialogues: Sequence[Dialogue], where: str) -> None:
    seen: set[str] = set()
    for d in dialogues:
        if d.id in seen:
            raise DatasetError(f"{where}: duplicate dialogue id {d.id!r}; ids must be unique")
        seen.add(d.id)


def read_welivita_rows(path: Path) -> list[dict[str, str]]:
    """Read the Welivita & Pu ratings CSV as rows, checking its columns."""
    text = _read_text(path)
    reader = csv.DictReader(text.splitlines())
    needed = {"dialog_id", "emotion", "situation", "speaker_uttr"}
    needed |= {f"response_{s}" for s in WELIVITA_SOURCES} | {f"rating_{s}" for s in WELIVITA_SOURCES}
    missing = needed - set(reader.fieldnames or [])
    if missing:
        raise DatasetError(f"{path}: not a Welivita & Pu ratings CSV, missing columns: {', '.join(sorted(missing))}")
    return list(reader)


def welivita_is_paper_test(row: dict[str, str]) -> bool:
    """The paper's rule: a dialogue is test when fewer than 2 of its 5 responses are rated 3 (Good)."""
    good = sum(1 for s in WELIVITA_SOURCES if row.get(f"rating_{s}", "").strip() == "3")
    return good < 2


def load_welivita(path: Path, *, split: str = "all") -> list[Dialogue]:
    """Dialogues of the Welivita & Pu CSV; ``paper_test`` / ``paper_train`` reproduce the paper's split."""
    return [d for d, _ in welivita_records(path, split=split)]


def welivita_records(path: Path, *, split: str = "all") -> list[tuple[Dialogue, dict[str, str]]]:
    """(dialogue, CSV row) pairs of the Welivita & Pu CSV, checked; the row keeps responses and ratings."""
    if split not in WELIVITA_SPLITS:
        raise DatasetError(f"unknown Welivita split {split!r}; use one of {', '.join(WELIVITA_SPLITS)}")
    records = []
    for lineno, row in enumerate(read_welivita_rows(path), start=2):
        is_test = welivita_is_paper_test(row)
        if (split == "paper_test" and not is_test) or (split == "paper_train" and is_test):
            continue
        emotion = row["emotion"].strip()
        dialogue = Dialogue(
            id=row["dialog_id"].strip(),
            emotion=emotion,
            sentiment=row.get("sentiment", "").strip() or EMOTION_SENTIMENT.get(emotion, "negative"),  # type: ignore[arg-type]
            situation=row["situation"].strip(),
            utterance=row["speaker_uttr"].strip(),
            source="welivita",
            split="test" if is_test else "train",
            reply=(row.get("response_human") or "").strip() or None,
        )
        _check_dialogue(dialogue, f"{path}:{lineno}")
        records.append((dialogue, {**row, "_line": str(lineno)}))
    _check_unique([d for d, _ in records], str(path))
    return records


def load_empathetic_dialogues(*, split: str = "test", revision: str = ED_REVISION) -> list[Dialogue]:
    """EmpatheticDialogues from the Hub's parquet mirror, one dialogue per conversation.

    The mirror's card says apache-2.0, but the upstream EmpatheticDialogues licence is CC BY-NC 4.0:
    non-commercial use only.
    """
    import datasets  # heavy import, only for this source

    hf_split = {"valid": "validation"}.get(split, split)
    try:
        ds = datasets.load_dataset(ED_REPO, split=hf_split, revision=revision)
    except Exception as exc:
        raise DatasetError(
            f"could not load {ED_REPO}@{revision} split {split!r} from the Hugging Face Hub ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). This source needs internet access (or a warm HF cache); "
            "offline, use the bundled dialogues (--dataset bundled) or a local .jsonl file"
        ) from exc
    return list(_ed_rows_to_dialogues(ds, split=split))


def _ed_rows_to_dialogues(rows: Iterable[dict[str, object]], *, split: str) -> Iterable[Dialogue]:
    for row in rows:
        conversation = row.get("conversations")
        turns = conversation if isinstance(conversation, list) else []
        first = next((t for t in turns if isinstance(t, dict) and t.get("role") == "user"), None)
        if first is None:
            continue
        answer = next((t for t in turns[turns.index(first) + 1 :] if isinstance(t, dict)
                       and t.get("role") == "assistant"), None)
        emotion = str(row.get("emotion", "")).strip()
        yield Dialogue(
            id=str(row["conv_id"]),
            emotion=emotion,
            sentiment=EMOTION_SENTIMENT.get(emotion, "negative"),  # type: ignore[arg-type]
            situation=str(row.get("situation", "")).strip(),
            utterance=str(first.get("content", "")).strip(),
            source="empathetic_dialogues",
            split=split,
            reply=str(answer.get("content", "")).strip() or None if answer else None,
        )


def dataset_hash(dialogues: Sequence[Dialogue]) -> str:
    """A content hash of a dialogue set (order-independent, keyed by id)."""
    h = hashlib.sha256()
    for d in sorted(dialogues, key=lambda d: d.id):
        h.update(json.dumps([d.id, d.emotion, d.situation, d.utterance], ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:16]


def interleave_by_emotion(dialogues: Sequence[Dialogue]) -> list[Dialogue]:
    """A stable order that cycles through emotions, so that the first N dialogues are varied.

    ``--limit N`` takes the first N of this order, in the CLI and in lm-eval alike.
    """
    by_emotion: dict[str, list[Dialogue]] = {}
    for d in sorted(dialogues, key=lambda d: (d.emotion, d.id)):
        by_emotion.setdefault(d.emotion, []).append(d)
    queues = [by_emotion[e] for e in sorted(by_emotion)]
    out: list[Dialogue] = []
    depth = max((len(q) for q in queues), default=0)
    for i in range(depth):
        out.extend(q[i] for q in queues if i < len(q))
    return out
