"""Loading the model and tokenizer a step trains, and the LoRA adapter config."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.errors import HarnessError
from harness.train.config import TrainConfig
from harness.train.hardware import Hardware

if TYPE_CHECKING:
    from harness.core.records import ModelIdentity


def base_to_load(base: str, revision: str | None = None) -> tuple[ModelIdentity, str | None]:
    """The base model's identity and the revision to load it at: for a Hub id, exactly the commit it resolved to.

    A step's record fingerprints the resolved commit; loading ``revision`` again (a branch, a tag, or None for the
    default branch) could load a commit pushed in between, so the weights trained would not be the ones recorded.
    A local folder has no revision to load (None).
    """
    from harness.core.fingerprint import model_identity

    identity = model_identity(base, revision=revision)
    return identity, identity.revision if identity.kind == "hub" else None


def load_model(path: str | Path, hw: Hardware, *, revision: str | None = None) -> Any:
    """A causal LM on the training device, in the training precision (flash attention where available)."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if hw.bf16 else torch.float32}
    if hw.flash_attention:
        kwargs["attn_implementation"] = "flash_attention_2"
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), revision=revision, **kwargs)
    except OSError as exc:
        raise HarnessError(f"cannot load model {str(path)!r}: {str(exc).splitlines()[0]}. Give a local folder, or a "
                           "Hub id with internet access") from exc
    return model.to(hw.device)  # type: ignore[arg-type]


def load_tokenizer(path: str | Path, *, revision: str | None = None) -> Any:
    """The tokenizer, with ChatML where the model has no chat template and a pad token where it has none."""
    from transformers import AutoTokenizer

    from harness.llm.tiny import CHATML_TEMPLATE

    tok = AutoTokenizer.from_pretrained(str(path), revision=revision)
    if not getattr(tok, "chat_template", None):
        tok.chat_template = CHATML_TEMPLATE  # a base model without one: train and evaluate with ChatML
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def lora_config(cfg: TrainConfig, task: str = "CAUSAL_LM") -> Any:
    """The peft LoRA config of both steps."""
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=cfg.lora.target_modules, task_type=task)
