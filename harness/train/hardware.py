"""What the machine allows, and how each step's batch is laid out on it.

The configured recipe (effective batch, learning rate) is what trains by default: the hardware only chooses how the
effective batch is split into micro-batch × gradient accumulation (× processes). Recipe ``fast-gpu`` is the explicit
opt-in to a different recipe: on a GPU the micro-batch is sized to memory and the learning rate scaled to the larger
batch; the plan records both the configured and the used numbers, for the manifest and the model card.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

from harness.core.errors import HarnessError
from harness.train.config import Recipe, StepSettings, TrainConfig

#: The micro-batch on CPU (the paper's batch): larger ones do not run faster there.
CPU_MICRO_BATCH = 2
#: Recipe fast-gpu: the learning rate is scaled by at most this factor, however large the batch.
MAX_LR_FACTOR = 16.0


@dataclass(frozen=True)
class Hardware:
    """What the machine allows, and the settings chosen for it."""

    device: str
    bf16: bool
    flash_attention: bool
    gpu_memory_gb: float
    world_size: int = 1

    @property
    def cuda(self) -> bool:
        """A CUDA GPU."""
        return self.device.startswith("cuda")


def detect_hardware(cfg: TrainConfig) -> Hardware:
    """CPU or GPU, bf16 support, flash attention, memory, and the processes of an ``accelerate launch`` run."""
    import importlib.util

    import torch

    from harness.llm.base import resolve_device

    device = resolve_device(cfg.device)
    cuda = device.startswith("cuda")
    bf16 = cfg.bf16 if cfg.bf16 is not None else bool(cuda and torch.cuda.is_bf16_supported())
    if bf16 and not cuda:
        raise HarnessError("bf16: true needs a CUDA GPU; leave bf16 unset to choose automatically")
    flash = cuda and importlib.util.find_spec("flash_attn") is not None
    memory = torch.cuda.get_device_properties(0).total_memory / 2**30 if cuda else 0.0
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Hardware(device=device, bf16=bf16, flash_attention=flash, gpu_memory_gb=round(memory, 1),
                    world_size=world)


def memory_micro_batch(step: StepSettings, hw: Hardware, config: Any, *, pairs: bool = False) -> int:
    """The largest micro-batch the device holds: 2 on CPU; on a GPU sized to half its memory (a power of two ≤ 64).

    LoRA keeps no optimiser state for the base weights, so activations dominate: per token about 10 bytes per
    vocabulary entry (bf16 logits, their fp32 upcast and gradient) plus ~34 bytes per hidden unit per layer.
    """
    if not hw.cuda:
        return CPU_MICRO_BATCH
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    per_token = 10 * text.vocab_size + 34 * text.hidden_size * text.num_hidden_layers
    per_seq_gb = step.max_length * per_token / 2**30 * (2 if pairs else 1)
    weights_gb = 2 * (text.vocab_size * text.hidden_size + 12 * text.num_hidden_layers * text.hidden_size**2) / 2**30
    budget = 0.5 * hw.gpu_memory_gb - 2 * weights_gb
    size = int(max(1.0, budget / per_seq_gb))
    return int(max(1, min(2 ** int(math.log2(size)), 64)))


@dataclass(frozen=True)
class BatchPlan:
    """How one step trains: micro-batch × accumulation × processes = effective batch, at this learning rate."""

    recipe: str
    micro_batch: int
    gradient_accumulation_steps: int
    world_size: int
    effective_batch: int
    learning_rate: float
    configured_effective_batch: int
    configured_learning_rate: float

    @property
    def differs(self) -> bool:
        """The recipe trained is not the configured one (effective batch or learning rate)."""
        return (self.effective_batch != self.configured_effective_batch
                or not math.isclose(self.learning_rate, self.configured_learning_rate))

    def as_json(self) -> dict[str, Any]:
        """The plan as a JSON object (step records, manifest)."""
        return {**dataclasses.asdict(self), "differs": self.differs}


def plan_batch(step: StepSettings, recipe: Recipe, hw: Hardware, config: Any, *, pairs: bool = False) -> BatchPlan:
    """The batch layout and learning rate of one step on ``hw`` for a model with ``config`` (see the module doc)."""
    cap = memory_micro_batch(step, hw, config, pairs=pairs)
    if recipe == "fast-gpu" and hw.cuda:
        return _fast_plan(step, hw, step.per_device_train_batch_size or cap)
    eff = step.effective_batch_size
    if eff % hw.world_size:
        raise HarnessError(f"effective_batch_size {eff} is not divisible by the {hw.world_size} training processes: "
                           "make it a multiple, or set recipe: fast-gpu")
    per_process = eff // hw.world_size
    micro = step.per_device_train_batch_size
    if micro is not None and per_process % micro:
        raise HarnessError(
            f"per_device_train_batch_size {micro} does not divide effective_batch_size {eff}"
            f"{f' / {hw.world_size} processes' if hw.world_size > 1 else ''}: with recipe 'configured' the "
            "micro-batch must divide it (the rest is gradient accumulation); choose a divisor, or leave it unset")
    if micro is None:
        micro = max(d for d in range(1, min(cap, per_process) + 1) if per_process % d == 0)
    return BatchPlan(recipe=recipe, micro_batch=micro, gradient_accumulation_steps=per_process // micro,
                     world_size=hw.world_size, effective_batch=eff, learning_rate=step.learning_rate,
                     configured_effective_batch=eff, configured_learning_rate=step.learning_rate)


def _fast_plan(step: StepSettings, hw: Hardware, micro: int) -> BatchPlan:
    per_step = micro * hw.world_size
    accumulation = max(1, math.ceil(step.effective_batch_size / per_step))
    effective = per_step * accumulation
    return BatchPlan(recipe="fast-gpu", micro_batch=micro, gradient_accumulation_steps=accumulation,
                     world_size=hw.world_size, effective_batch=effective,
                     learning_rate=scaled_learning_rate(step, effective),
                     configured_effective_batch=step.effective_batch_size,
                     configured_learning_rate=step.learning_rate)


def scaled_learning_rate(step: StepSettings, batch: int) -> float:
    """Recipe fast-gpu: the learning rate for an effective batch of ``batch``.

    With fewer, larger steps the configured learning rate would under-train, so it is scaled by the ratio to the
    configured effective batch (``lr_scaling``: linear, sqrt or none), by at most :data:`MAX_LR_FACTOR`.
    """
    ratio = min(MAX_LR_FACTOR, max(batch, step.effective_batch_size) / step.effective_batch_size)
    factor = {"linear": ratio, "sqrt": ratio**0.5, "none": 1.0}[step.lr_scaling]
    return float(step.learning_rate * factor)


def is_main() -> bool:
    """Rank 0 (or no distributed run): the process that merges and writes shared files."""
    return int(os.environ.get("RANK", "0")) == 0


def barrier() -> None:
    """Wait for every rank (``accelerate launch`` runs), so rank 0's files exist before others read them."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
