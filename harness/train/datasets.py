"""The training sets as trl reads them: SFT rows as prompt/completion, DPO rows as prompt/chosen/rejected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError


def train_file(path: Path) -> Path:
    """A distil output's data folder (``sft/``, ``dpo/``) as its ``train.jsonl``; a file as itself."""
    return path / "train.jsonl" if path.is_dir() else path


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a distil output's ``train.jsonl``; a missing, empty or broken file is an error."""
    if not path.is_file():
        raise HarnessError(f"{path}: no such file (make it with 'empathy distill … --output DIR')")
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise HarnessError(f"{path}:{lineno}: not valid JSON ({exc})") from exc
    if not rows:
        raise HarnessError(f"{path}: no training rows")
    return rows


def sft_dataset(path: Path) -> Any:
    """SFT rows (``messages``) as trl prompt/completion rows, so the loss is on the reply only."""
    from datasets import Dataset

    rows = []
    for n, row in enumerate(read_rows(path), start=1):
        msgs = row.get("messages")
        if not (isinstance(msgs, list) and len(msgs) >= 2 and msgs[-1].get("role") == "assistant"):
            raise HarnessError(f"{path}:{n}: expected 'messages' ending with an assistant turn")
        rows.append({"prompt": msgs[:-1], "completion": msgs[-1:]})
    return Dataset.from_list(rows)


def dpo_dataset(path: Path) -> Any:
    """DPO rows (conversational prompt / chosen / rejected)."""
    from datasets import Dataset

    rows = []
    for n, row in enumerate(read_rows(path), start=1):
        if not all(k in row for k in ("prompt", "chosen", "rejected")):
            raise HarnessError(f"{path}:{n}: expected keys prompt, chosen, rejected")
        rows.append({k: row[k] for k in ("prompt", "chosen", "rejected")})
    return Dataset.from_list(rows)
