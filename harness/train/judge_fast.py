"""The ``fast`` reward-model recipe: a frozen BERT-family encoder (MiniLM), its top layers and head trained on CPU.

The saved model is a plain ``BertForSequenceClassification`` with one output: [CLS] → (the last ``train_layers``
encoder layers) → pooler (dense + tanh) → classifier. Everything below the trained layers is frozen, so its output
for every reply is computed once ("encoding") and cached; each epoch then runs only the trained layers, the pooler
and the classifier. The loss is Bradley–Terry over every pair of a dialogue: −log σ(r_better − r_worse) (minus the
rating difference inside σ with ``margin``, as trl's RewardTrainer does). Batches are whole dialogues, so every
reply is scored once per epoch however many pairs it is in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.train.judge_data import Group
from harness.train.judge_model import batches, encode, load_reward_model


@dataclass(frozen=True)
class FastSettings:
    """Hyper-parameters of the fast recipe."""

    epochs: int = 3
    learning_rate: float = 1e-4
    batch_dialogues: int = 16
    max_length: int = 256
    train_layers: int = 1
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    margin: bool = False
    seed: int = 0

    def as_json(self) -> dict[str, Any]:
        """The settings as recorded in training.json and the model card."""
        return asdict(self)


@dataclass
class Trained:
    """A trained reward model (in memory), its tokenizer, validation scores per group, and the epoch history."""

    model: Any
    tokenizer: Any
    val_scores: list[list[float]]
    history: list[dict[str, float]]
    encoding_seconds: float


def train_fast(backbone: Path, train: Sequence[Group], val: Sequence[Group], s: FastSettings, device: str) -> Trained:
    """Train the fast recipe; the model stays in memory (saved by the caller)."""
    import time

    import torch

    from harness.core.ui import new_progress

    torch.manual_seed(s.seed)
    model, tokenizer = load_reward_model(backbone)
    if type(model).__name__ != "BertForSequenceClassification":
        raise HarnessError(f"--recipe fast trains the top of a BERT-family encoder (such as minilm), and {backbone} is "
                           f"a {model.config.model_type} model: use --recipe lora for it")
    n_layers = model.config.num_hidden_layers
    if not 0 <= s.train_layers <= n_layers:
        raise HarnessError(f"--train-layers {s.train_layers}: give 0 (pooler and classifier only) to {n_layers}")
    model.to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    tail = list(model.bert.encoder.layer[n_layers - s.train_layers :])
    trained = [*tail, model.bert.pooler, model.classifier]
    for module in trained:
        for p in module.parameters():
            p.requires_grad_(True)

    groups = [*train, *val]
    offsets: list[int] = []
    encodings: list[dict[str, list[int]]] = []
    for g in groups:
        offsets.append(len(encodings))
        encodings.extend(encode(tokenizer, g.dialogue, t, s.max_length) for t in g.texts)
    t0 = time.perf_counter()
    with new_progress() as progress:
        task = progress.add_task("encoding replies (frozen layers)", total=len(encodings))
        features = _frozen_features(model, tokenizer, encodings, n_layers - s.train_layers, device,
                                    lambda n: progress.advance(task, n))
    encoding_seconds = time.perf_counter() - t0

    def scores(gs: Sequence[int]) -> list[Any]:
        idx = [offsets[k] + j for k in gs for j in range(len(groups[k].texts))]
        # replies of similar length together: the trained layers pad each micro-batch to its longest reply only
        parts = batches([len(encodings[i]["input_ids"]) for i in idx], 32)
        flat = torch.cat([_head(model, tail, [features[idx[i]] for i in part], device) for part in parts])
        out = flat[torch.argsort(torch.tensor([i for part in parts for i in part], device=flat.device))]
        per, at = [], 0
        for k in gs:
            per.append(out[at : at + len(groups[k].texts)])
            at += len(groups[k].texts)
        return per

    params = [p for m in trained for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=s.learning_rate, weight_decay=s.weight_decay)
    steps = s.epochs * math.ceil(len(train) / s.batch_dialogues)
    warmup = max(1, round(steps * s.warmup_fraction))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup))))
    rng = random.Random(s.seed)
    history: list[dict[str, float]] = []
    val_scores: list[list[float]] = []
    val_idx = list(range(len(train), len(groups)))
    with new_progress() as progress:
        for epoch in range(1, s.epochs + 1):
            order = list(range(len(train)))
            rng.shuffle(order)
            task = progress.add_task(f"epoch {epoch}/{s.epochs}", total=len(order))
            for m in trained:
                m.train()
            losses = []
            for k in range(0, len(order), s.batch_dialogues):
                chunk = order[k : k + s.batch_dialogues]
                loss = pair_loss([groups[i] for i in chunk], scores(chunk), margin=s.margin)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                losses.append(float(loss.detach()))
                progress.advance(task, len(chunk))
            val_scores = _eval_scores(model, scores, val_idx)
            history.append({"epoch": epoch, "train_loss": sum(losses) / len(losses),
                            "val_pair_accuracy": pair_accuracy(val, val_scores)})
    return Trained(model.eval().cpu(), tokenizer, val_scores, history, encoding_seconds)


def pair_loss(groups: Sequence[Group], scores: Sequence[Any], *, margin: bool) -> Any:
    """Mean Bradley–Terry loss over every pair of the groups (scores: one tensor per group)."""
    import torch
    from torch.nn.functional import logsigmoid

    diffs = [r[i] - r[j] - (m if margin else 0.0) for g, r in zip(groups, scores, strict=True) for i, j, m in g.pairs]
    return -logsigmoid(torch.stack(diffs)).mean()


def pair_accuracy(groups: Sequence[Group], scores: Sequence[Sequence[float]]) -> float:
    """Share of pairs whose better reply scores higher (a score tie counts ½)."""
    values = [1.0 if r[i] > r[j] else 0.5 if r[i] == r[j] else 0.0
              for g, r in zip(groups, scores, strict=True) for i, j, _ in g.pairs]
    return sum(values) / len(values) if values else math.nan


def _eval_scores(model: Any, scores: Any, idx: list[int]) -> list[list[float]]:
    import torch

    model.eval()
    out: list[list[float]] = []
    with torch.no_grad():
        for k in range(0, len(idx), 64):
            out.extend([float(x) for x in r] for r in scores(idx[k : k + 64]))
    return out


def _frozen_features(model: Any, tokenizer: Any, encodings: Sequence[dict[str, list[int]]], layer: int, device: str,
                     advance: Any) -> list[Any]:
    """Per reply, the output of encoder layer ``layer`` (0 = embeddings); only the layers up to it run.

    Its [CLS] vector when nothing above it trains, else every token's vector (the trained layers attend to all).
    """
    import torch

    cls_only = layer == model.config.num_hidden_layers
    features: list[Any] = [None] * len(encodings)
    with torch.no_grad():  # not inference_mode: the trained layers take these as inputs to backward through
        for idx in batches([len(e["input_ids"]) for e in encodings], 32):
            batch = tokenizer.pad([encodings[i] for i in idx], return_tensors="pt").to(device)
            hidden = model.bert.embeddings(input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids"))
            additive = _additive(batch["attention_mask"], hidden.dtype)
            hidden = _run(model.bert.encoder.layer[:layer], hidden, additive)
            for j, i in enumerate(idx):
                n = len(encodings[i]["input_ids"])
                features[i] = (hidden[j, 0] if cls_only else hidden[j, :n]).clone()
            advance(len(idx))
    return features


def _additive(mask: Any, dtype: Any) -> Any:
    """A [batch, 1, 1, tokens] additive attention mask: 0 on tokens, the dtype's minimum on padding."""
    import torch

    return (1.0 - mask.to(dtype))[:, None, None, :] * torch.finfo(dtype).min


def _head(model: Any, tail: Sequence[Any], features: Sequence[Any], device: str) -> Any:
    """Scores from cached features: the trained layers (the last at [CLS] only), pooler, dropout, classifier."""
    import torch

    if not tail:
        hidden = torch.stack(list(features)).unsqueeze(1)
    else:
        longest = max(f.shape[0] for f in features)
        hidden = torch.zeros(len(features), longest, features[0].shape[-1], device=device)
        mask = torch.zeros(len(features), longest, device=device)
        for j, f in enumerate(features):
            hidden[j, : f.shape[0]] = f
            mask[j, : f.shape[0]] = 1.0
        additive = _additive(mask, hidden.dtype)
        hidden = _cls_layer(tail[-1], _run(tail[:-1], hidden, additive), additive)
    return model.classifier(model.dropout(model.bert.pooler(hidden)))[:, 0]


def _run(blocks: Sequence[Any], hidden: Any, additive: Any) -> Any:
    """Hidden states through whole encoder layers (transformers 4.x layers return a tuple, 5.x a tensor)."""
    for block in blocks:
        out = block(hidden, attention_mask=additive)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


def _cls_layer(block: Any, hidden: Any, additive: Any) -> Any:
    """A BERT layer's output at the [CLS] position only — what the pooler reads — as [batch, 1, hidden].

    Every token's key and value, but one query: the feed-forward part runs for one token instead of all, which
    makes a trained top layer about six times cheaper. The saved model computes the full layer; its [CLS] output
    is the same (checked when the model is saved).
    """
    from torch.nn.functional import scaled_dot_product_attention

    att = block.attention.self
    b, t, _ = hidden.shape
    heads, size = att.num_attention_heads, att.attention_head_size

    def split(x: Any, n: int) -> Any:
        return x.view(b, n, heads, size).transpose(1, 2)

    context = scaled_dot_product_attention(
        split(att.query(hidden[:, :1]), 1), split(att.key(hidden), t), split(att.value(hidden), t),
        attn_mask=additive, dropout_p=att.dropout.p if att.training else 0.0, scale=size**-0.5)
    attended = block.attention.output(context.transpose(1, 2).reshape(b, 1, heads * size), hidden[:, :1])
    return block.output(block.intermediate(attended), attended)
