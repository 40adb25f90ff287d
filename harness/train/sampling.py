"""The on-policy round's samples: N replies per training prompt from the SFT policy, appended to disk per batch.

The prompts are the SFT rows' own (with the chat template), so the policy answers what it was trained on; each
reply is cut at the end of the first answer, as evaluation replies are. Decoding is set in full here (a fresh
``GenerationConfig``: temperature, top-p, top-k off, no repetition penalty), never inherited from the model's own
generation config, and recorded as used. Sampling is a step of its own (``OUTPUT/onpolicy/samples/step.json``),
so changing how replies are ranked reuses them. A batch's replies are written (and fsynced) as soon as they exist,
so an interrupted step resumes after the last batch on disk.
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

PARTIAL, SAMPLES = "samples.partial.jsonl", "samples.jsonl"


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
        HarnessError: a row without a valid ``dialogue`` (an SFT file from before the on-policy round, or not made
            by ``empathy distill``), naming the row and the fix.
    """
    from pydantic import ValidationError

    prompts: dict[str, Prompt] = {}
    for n, row in enumerate(read_rows(sft_file), start=1):
        raw, msgs = row.get("dialogue"), row.get("messages")
        if not isinstance(raw, dict) or not isinstance(msgs, list) or len(msgs) < 2:
            raise HarnessError(f"{sft_file}: row {n}: the on-policy round needs each SFT row's 'dialogue' (the judge "
                               "reads it) and 'messages'; distil the data again with 'empathy distill' (rows "
                               "written before this version have no 'dialogue')")
        try:
            dialogue = Dialogue.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise HarnessError(f"{sft_file}: row {n}: its 'dialogue' is not a dialogue ({problems}); distil the "
                               "data again with 'empathy distill'") from None
        prompts.setdefault(dialogue.id, Prompt(dialogue.id, dialogue, msgs[:-1]))
    return list(prompts.values())


def decoding(s: OnPolicySettings) -> dict[str, Any]:
    """The decoding every sample is drawn with (recorded in the step, the manifest and the model card)."""
    from harness.generate.replies import default_decoding

    return {"samples": s.samples, "temperature": s.temperature, "top_p": s.top_p, "top_k": 0,
            "repetition_penalty": 1.0, "max_new_tokens": s.max_new_tokens or default_decoding().max_gen_toks,
            "batch_size": s.batch_size, "seed": s.seed}


def samples_step(policy: Path, prompts: Sequence[Prompt], sft_file: Path, policy_identity: str, out: Path,
                 s: OnPolicySettings, hw: Hardware) -> dict[str, Any]:
    """Sample every prompt (skipped when done with the same inputs, resumed after the last batch written)."""
    from harness.core.io import file_hash, write_jsonl
    from harness.train.resume import begin_step, finish_step

    used = decoding(s)
    inputs = {"data_sha256": file_hash(sft_file), "base": policy_identity, "config": {"decoding": used}}
    start = begin_step(out, "onpolicy_samples", inputs, outputs=(SAMPLES,))
    if start.done is not None:
        return start.done
    samples = sample_replies(policy, prompts, used, hw, out / PARTIAL)
    write_jsonl(out / SAMPLES, [_row(i, v) for i, v in samples.items()])
    record = finish_step(out, "onpolicy_samples", start, {
        "data": str(out / SAMPLES), "data_sha256": file_hash(out / SAMPLES), "decoding": used,
        "dialogues": len(samples), "unfinished": sum(not x.finished for v in samples.values() for x in v)})
    (out / PARTIAL).unlink(missing_ok=True)  # after the record: a crash before it resumes from this file
    return record


def read_samples(path: Path) -> dict[str, list[Sample]]:
    """The replies of a samples file (or the partial one: a half-written last line is skipped)."""
    done: dict[str, list[Sample]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                done[row["dialogue_id"]] = [Sample(str(t), bool(f)) for t, f in row["replies"]]
            except (ValueError, KeyError, TypeError):
                continue
    return done


def sample_replies(policy: Path, prompts: Sequence[Prompt], used: dict[str, Any], hw: Hardware,
                   partial: Path) -> dict[str, list[Sample]]:
    """``used["samples"]`` replies per prompt from ``policy``; batches in ``partial`` are kept, new ones appended."""
    import torch

    from harness.core.ui import progress_bar
    from harness.train.models import load_model, load_tokenizer

    _cut_torn_line(partial)
    done = read_samples(partial)
    size = used["batch_size"]
    batches = [list(prompts[k:k + size]) for k in range(0, len(prompts), size)]
    model: Any = None
    tok = load_tokenizer(policy)
    tok.padding_side = "left"
    with progress_bar(f"on-policy: sampling {used['samples']} replies per dialogue", total=len(prompts)) as advance:
        for k, batch in enumerate(batches):
            if all(p.id in done for p in batch):
                advance(len(batch))
                continue
            if model is None:
                model = load_model(policy, hw).eval()
            fresh = _sample_batch(model, tok, batch, used, seed=used["seed"] * 1_000_003 + k)
            _append(partial, fresh)
            done.update(fresh)
            advance(len(batch))
    del model
    if hw.cuda:
        torch.cuda.empty_cache()
    return {p.id: done[p.id] for p in prompts}


def _sample_batch(model: Any, tok: Any, batch: Sequence[Prompt], used: dict[str, Any],
                  seed: int) -> dict[str, list[Sample]]:
    import torch
    from transformers import GenerationConfig

    from harness.core.prompts import cut_reply

    texts = [tok.apply_chat_template(p.messages, tokenize=False, add_generation_prompt=True) for p in batch]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    stops = model.generation_config.eos_token_id
    stops = {tok.eos_token_id, *(stops if isinstance(stops, list) else [stops])} - {None}
    n = used["samples"]
    config = GenerationConfig(  # type: ignore[no-untyped-call]
        do_sample=True, temperature=used["temperature"], top_p=used["top_p"], top_k=0,
        repetition_penalty=used["repetition_penalty"], max_new_tokens=used["max_new_tokens"], num_return_sequences=n,
        eos_token_id=sorted(stops), pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    with torch.inference_mode():
        out = model.generate(**enc, generation_config=config)
    generated = out[:, enc["input_ids"].shape[1]:].tolist()
    result: dict[str, list[Sample]] = {}
    for i, p in enumerate(batch):
        replies = []
        for ids in generated[i * n:(i + 1) * n]:
            raw = tok.decode(ids, skip_special_tokens=True)
            text = cut_reply(raw)
            replies.append(Sample(text, finished=bool(stops & set(ids)) or text != raw.strip()))
        result[p.id] = replies
    return result


def _append(path: Path, fresh: dict[str, list[Sample]]) -> None:
    """One line per dialogue, flushed to disk (a crash loses at most the batch being written)."""
    lines = "".join(json.dumps(_row(i, v), ensure_ascii=False) + "\n" for i, v in fresh.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(lines)
        f.flush()
        os.fsync(f.fileno())


def _row(dialogue_id: str, replies: Sequence[Sample]) -> dict[str, Any]:
    """A dialogue's replies as one line of a samples file (what :func:`read_samples` reads)."""
    return {"dialogue_id": dialogue_id, "replies": [[x.text, x.finished] for x in replies]}


def _cut_torn_line(path: Path) -> None:
    """Drop a half-written last line (a crash mid-write), so the next batch's first line is not glued to it."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
