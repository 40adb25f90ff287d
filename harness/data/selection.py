"""Which dialogues a run evaluates: one rule for ``empathy eval`` and the lm-eval tasks.

The dialogues of a dataset are put in a stable, emotion-interleaved order; a run takes the first ``limit`` of
them. A reference set must cover every one of them, or the run is refused — both front ends, same n.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from harness.core.errors import HarnessError
from harness.core.records import Dialogue
from harness.data.sources import DatasetSpec, dataset_hash, interleave_by_emotion, load_dialogues


def select_dialogues(spec: str, ids: Sequence[str] | None = None) -> tuple[list[Dialogue], str]:
    """The dataset's dialogues in their stable (emotion-interleaved) order, and the dataset hash."""
    dialogues = load_dialogues(DatasetSpec.parse(spec))
    digest = dataset_hash(dialogues)
    ordered = interleave_by_emotion(dialogues)
    if ids is not None:
        wanted = set(ids)
        ordered = [d for d in ordered if d.id in wanted]
    return ordered, digest


def run_dialogues(dataset: str, limit: int | None) -> tuple[list[Dialogue], str]:
    """The run's dialogues (first ``limit`` of the stable order) and the dataset hash."""
    dialogues, digest = select_dialogues(dataset)
    if not dialogues:
        raise HarnessError(f"--dataset {dataset} holds no dialogues: give a .jsonl file with one dialogue per line "
                           "(id, emotion, sentiment, situation, utterance; see the README), or --dataset bundled")
    if limit is not None:
        if limit < 1:
            raise HarnessError(f"--limit must be at least 1 (got {limit})")
        dialogues = dialogues[:limit]
    return dialogues, digest


def ids_hash(ids: Sequence[str]) -> str:
    """Short hash of the run's dialogue ids in order (two runs on the same dialogues share it)."""
    return hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()[:16]
