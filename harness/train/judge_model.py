r"""The reward model's input contract, loading a backbone quietly, and scoring replies with a saved reward model.

A reward model scores one reply to one dialogue: r(dialogue, reply), a single logit; P(reply a is better than b) =
σ(r_a − r_b). It reads exactly what ``--judge-mode reward`` judges give it (:mod:`harness.judge.reward`,
:mod:`harness.llm.classifier`), so training and judging see the same input: the tokenizer's text pair (context,
reply), ``tokenizer(context, reply, truncation=True, max_length=...)``, padded on the right, where the context is
:func:`harness.judge.reward.context_text` ("Situation: …\nSpeaker: …") and the reply is the one the judge is shown
(:func:`harness.core.prompts.prepare_for_judge`). The saved tokenizer's ``model_max_length`` is the length trained
on, which is what the judge truncates to. The contract is also written into ``config.json`` as ``empathy_reward``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.records import Dialogue

CONTRACT_VERSION = 1


def contract(max_length: int) -> dict[str, Any]:
    """The ``empathy_reward`` entry of a reward model's config: what it reads (see the module doc)."""
    from harness.judge.reward import CONTEXT_TEMPLATE, INPUT_VERSION

    return {"version": CONTRACT_VERSION, "judge_input": INPUT_VERSION, "input": "text pair (context, reply)",
            "context": CONTEXT_TEMPLATE, "max_length": max_length,
            "preference": "P(a better than b) = sigmoid(r_a - r_b)"}


def encode(tokenizer: Any, dialogue: Dialogue, reply: str, max_length: int) -> dict[str, list[int]]:
    """The token ids (type ids, mask) of one reply to one dialogue, exactly as a reward judge encodes it."""
    from harness.core.prompts import prepare_for_judge
    from harness.judge.reward import context_text

    shown = prepare_for_judge(reply)[0]
    return dict(tokenizer(context_text(dialogue), shown, truncation=True, max_length=max_length))


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No load report or weight-loading bar (the new head is expected to be missing from a backbone)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def check_backbone(backbone: Path) -> None:
    """A backbone folder holds a transformers model: a config and weights."""
    if not backbone.is_dir():
        raise HarnessError(f"--backbone {backbone}: no such folder (give a model folder, or fetch the default with "
                           "'empathy models fetch minilm')")
    weights = [*backbone.glob("*.safetensors"), *backbone.glob("*.bin")]
    if not (backbone / "config.json").is_file() or not weights:
        missing = "config.json" if not (backbone / "config.json").is_file() else "weights (*.safetensors)"
        raise HarnessError(f"--backbone {backbone} holds no model (no {missing}): give the folder of a transformers "
                           "model, e.g. the one 'empathy models fetch minilm' prints")


def load_reward_model(folder: Path | str, **kwargs: Any) -> tuple[Any, Any]:
    """A one-output sequence-classification model (float32, eval mode) and its tokenizer, with a pad token."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    with quiet_transformers():
        try:
            model = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=1, dtype=torch.float32,
                                                                       **kwargs)
        except (OSError, ValueError) as exc:
            raise HarnessError(f"cannot load {folder} as a sequence-classification model: "
                               f"{str(exc).splitlines()[0]}") from exc
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer


def batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (little padding)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]


def score_encodings(model: Any, tokenizer: Any, encodings: Sequence[dict[str, list[int]]], *, batch_size: int = 32,
                    advance: Callable[[int], None] | None = None) -> list[float]:
    """The reward of every encoded (context, reply), in order (eval mode, no gradients)."""
    import torch

    device = next(model.parameters()).device
    scores = [0.0] * len(encodings)
    model.eval()
    with torch.inference_mode():
        for idx in batches([len(e["input_ids"]) for e in encodings], batch_size):
            batch = tokenizer.pad([encodings[i] for i in idx], return_tensors="pt").to(device)
            logits = model(**batch).logits[:, 0].float().tolist()
            for i, r in zip(idx, logits, strict=True):
                scores[i] = float(r)
            if advance is not None:
                advance(len(idx))
    return scores
