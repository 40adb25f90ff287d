"""The on-policy round's samples: N replies per training prompt from the SFT policy, appended to disk per batch.

The prompts are the SFT rows' own (with the chat template), so the policy answers what it was trained on; each
reply is cut at the end of the first answer, as evaluation replies are. A batch's replies are written (and
fsynced) as soon as they exist, so an interrupted round resumes after the last batch on disk.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.records import Dialogue
from harness.train.config import OnPolicySettings
from harness.train.datasets import read_rows
from harness.train.hardware import Hardware

PARTIAL = "samples.partial.jsonl"


@dataclass(frozen=True)
class Prompt:
    """One training dialogue: its id, the dialogue (for the judge) and the prompt messages (for the policy)."""

    id: str
    dialogue: Dialogue
    messages: list[dict[str, str]]


@dataclass(frozen=True)
class Sample:
    """One sampled reply: the answer as evaluation cuts it, and whether the model ended it."""

    text: str
    finished: bool


def read_prompts(sft_file: Path) -> list[Prompt]:
    """The training prompts of an SFT file (first row per dialogue); rows must carry their dialogue.

    Raises:
        HarnessError: a row without ``dialogue`` (an SFT file from before the on-policy round, or not made by
            ``empathy distill``), naming the line and the fix.
    """
    prompts: dict[str, Prompt] = {}
    for n, row in enumerate(read_rows(sft_file), start=1):
        raw, msgs = row.get("dialogue"), row.get("messages")
        if not isinstance(raw, dict) or not isinstance(msgs, list) or len(msgs) < 2:
            raise HarnessError(f"{sft_file}:{n}: the on-policy round needs each SFT row's 'dialogue' (the judge reads "
                               "it) and 'messages'; distil the data again with 'empathy distill' (rows written "
                               "before this version have no 'dialogue')")
        dialogue = Dialogue.model_validate(raw)
        prompts.setdefault(dialogue.id, Prompt(dialogue.id, dialogue, msgs[:-1]))
    return list(prompts.values())


def sample_replies(policy: Path, prompts: Sequence[Prompt], s: OnPolicySettings, hw: Hardware,
                   partial: Path) -> dict[str, list[Sample]]:
    """``s.samples`` replies per prompt from ``policy``; batches already in ``partial`` are kept, new ones appended."""
    import torch

    from harness.core.ui import progress_bar
    from harness.generate.replies import default_decoding
    from harness.train.models import load_model, load_tokenizer

    done = _read_partial(partial)
    batches = [list(prompts[k:k + s.batch_size]) for k in range(0, len(prompts), s.batch_size)]
    max_new = s.max_new_tokens or default_decoding().max_gen_toks
    model: Any = None
    tok = load_tokenizer(policy)
    tok.padding_side = "left"
    with progress_bar(f"on-policy: sampling {s.samples} replies per dialogue", total=len(prompts)) as advance:
        for k, batch in enumerate(batches):
            if all(p.id in done for p in batch):
                advance(len(batch))
                continue
            if model is None:
                model = load_model(policy, hw).eval()
            fresh = _sample_batch(model, tok, batch, s, max_new, seed=s.seed * 1_000_003 + k)
            _append(partial, fresh)
            done.update(fresh)
            advance(len(batch))
    del model
    if hw.cuda:
        torch.cuda.empty_cache()
    return {p.id: done[p.id] for p in prompts}


def _sample_batch(model: Any, tok: Any, batch: Sequence[Prompt], s: OnPolicySettings, max_new: int,
                  seed: int) -> dict[str, list[Sample]]:
    import torch

    from harness.core.prompts import cut_reply

    texts = [tok.apply_chat_template(p.messages, tokenize=False, add_generation_prompt=True) for p in batch]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    stops = model.generation_config.eos_token_id
    stops = {tok.eos_token_id, *(stops if isinstance(stops, list) else [stops])} - {None}
    torch.manual_seed(seed)
    with torch.inference_mode():
        out = model.generate(**enc, do_sample=True, temperature=s.temperature, top_p=s.top_p,
                             max_new_tokens=max_new, num_return_sequences=s.samples, pad_token_id=tok.pad_token_id)
    generated = out[:, enc["input_ids"].shape[1]:].tolist()
    result: dict[str, list[Sample]] = {}
    for i, p in enumerate(batch):
        replies = []
        for ids in generated[i * s.samples:(i + 1) * s.samples]:
            raw = tok.decode(ids, skip_special_tokens=True)
            text = cut_reply(raw)
            replies.append(Sample(text, finished=bool(stops & set(ids)) or text != raw.strip()))
        result[p.id] = replies
    return result


def _append(path: Path, fresh: dict[str, list[Sample]]) -> None:
    """One line per dialogue, flushed to disk (a crash loses at most the batch being written)."""
    lines = "".join(json.dumps({"dialogue_id": i, "replies": [[x.text, x.finished] for x in v]}, ensure_ascii=False)
                    + "\n" for i, v in fresh.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(lines)
        f.flush()
        os.fsync(f.fileno())


def _read_partial(path: Path) -> dict[str, list[Sample]]:
    """The dialogues sampled so far (a half-written last line is ignored: its batch is sampled again)."""
    done: dict[str, list[Sample]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                done[row["dialogue_id"]] = [Sample(str(t), bool(f)) for t, f in row["replies"]]
            except (ValueError, KeyError, TypeError):
                continue
    return done
