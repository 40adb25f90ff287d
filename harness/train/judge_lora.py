"""The ``lora`` reward-model recipe: trl's RewardTrainer with a peft LoRA adapter on any backbone, merged after.

Meant for a GPU and a larger backbone (any model ``AutoModelForSequenceClassification`` builds with one output: a
decoder reads its score at the last token, an encoder at [CLS]); it also runs on a CPU for tiny models. The pairs
are tokenized here by the reward model's input contract (:mod:`harness.train.judge_model`), so training and every
later judge read the same text; trl's own tokenization is skipped. The new score head is trained in full (peft's
``SEQ_CLS`` task keeps it trainable), LoRA goes where peft puts it for the architecture, and the adapter is merged
into the backbone before saving, so the folder loads without peft. bf16 only on a GPU that has it; no gradient
checkpointing (trl 1.x turns both on by default).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.train.judge_data import Group
from harness.train.judge_fast import Trained
from harness.train.judge_model import encode, load_reward_model, score_encodings


@dataclass(frozen=True)
class LoraSettings:
    """Hyper-parameters of the lora recipe."""

    epochs: int = 1
    learning_rate: float = 1e-4
    batch_size: int = 8
    max_length: int = 512
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    seed: int = 0

    def as_json(self) -> dict[str, Any]:
        """The settings as recorded in training.json and the model card."""
        return asdict(self)


def train_lora(backbone: Path, train: Sequence[Group], val: Sequence[Group], s: LoraSettings, device: str) -> Trained:
    """Train the lora recipe; returns the merged model in memory (saved by the caller)."""
    import torch
    from peft import LoraConfig
    from trl import RewardConfig, RewardTrainer  # type: ignore[attr-defined]

    from harness.core.ui import console
    from harness.train.steps import _progress_callback, _quiet

    model, tokenizer = load_reward_model(backbone)
    model.to(device)
    rows = []
    for g in train:
        enc = [encode(tokenizer, g.dialogue, t, s.max_length) for t in g.texts]
        for i, j, _ in g.pairs:
            row = {"chosen_ids": enc[i]["input_ids"], "rejected_ids": enc[j]["input_ids"]}
            if "token_type_ids" in enc[i]:
                row |= {"chosen_types": enc[i]["token_type_ids"], "rejected_types": enc[j]["token_type_ids"]}
            rows.append(row)
    from datasets import Dataset

    cuda = device.startswith("cuda")
    with tempfile.TemporaryDirectory(prefix="judge-lora-") as tmp:
        args = RewardConfig(
            output_dir=tmp, num_train_epochs=s.epochs, learning_rate=s.learning_rate,
            per_device_train_batch_size=s.batch_size, max_length=s.max_length, seed=s.seed,
            bf16=cuda and torch.cuda.is_bf16_supported(), fp16=False, gradient_checkpointing=False, use_cpu=not cuda,
            save_strategy="no", report_to="none", disable_tqdm=True, logging_steps=10, remove_unused_columns=False,
            dataloader_num_workers=0)
        lora = LoraConfig(task_type="SEQ_CLS", r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout)
        try:
            trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                    processing_class=tokenizer, peft_config=lora,
                                    data_collator=_collator(tokenizer.pad_token_id),
                                    callbacks=[_progress_callback("reward model (LoRA)")])
        except ValueError as exc:  # e.g. peft knows no LoRA target modules for this architecture
            raise HarnessError(f"--recipe lora cannot train {backbone}: {str(exc).splitlines()[0]}") from exc
        _quiet(trainer).train()
    merged = trainer.model.merge_and_unload()  # type: ignore[operator,union-attr]
    merged.eval()
    console.print(f"LoRA merged into {backbone.name}; scoring the validation replies", style="dim")
    val_scores = []
    for g in val:
        enc = [encode(tokenizer, g.dialogue, t, s.max_length) for t in g.texts]
        val_scores.append(score_encodings(merged, tokenizer, enc))
    history = [{k: float(v) for k, v in h.items() if isinstance(v, int | float)} for h in trainer.state.log_history]
    return Trained(merged.cpu(), tokenizer, val_scores, history, 0.0)


def _collator(pad_id: int) -> Any:
    """The preference collator of trl, plus the token type ids of an encoder's sentence pairs."""
    from torch import tensor
    from trl.trainer.reward_trainer import DataCollatorForPreference  # type: ignore[attr-defined]
    from trl.trainer.utils import pad  # type: ignore[attr-defined]

    base = DataCollatorForPreference(pad_token_id=pad_id)

    def collate(examples: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = base([{k: e[k] for k in ("chosen_ids", "rejected_ids")} for e in examples])
        if "chosen_types" in examples[0]:
            types = [tensor(e["chosen_types"]) for e in examples] + [tensor(e["rejected_types"]) for e in examples]
            out["token_type_ids"] = pad(types, padding_value=0, padding_side="right")
        return out

    return collate
