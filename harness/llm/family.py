"""Model families, to warn when a judge grades its own kin (LLM judges favour replies of their own family).

A model's family comes from its config's ``model_type`` when the config is at hand (a local folder, or a Hub
model already in the local cache), else from its name (``Qwen/Qwen2.5-7B-Instruct`` → ``qwen``). Served models
(OpenAI-compatible backends) are known by name only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

#: Name fragments → family, checked in order (``mixtral`` before ``mistral``'s shorter matches, etc.).
_NAME_FAMILIES = (
    ("qwen", "qwen"), ("qwq", "qwen"), ("llama", "llama"), ("mixtral", "mistral"), ("mistral", "mistral"),
    ("ministral", "mistral"), ("gemma", "gemma"), ("gemini", "gemini"), ("phi", "phi"), ("gpt", "gpt"),
    ("deepseek", "deepseek"), ("olmo", "olmo"), ("smollm", "llama"), ("falcon", "falcon"), ("granite", "granite"),
    ("internlm", "internlm"), ("yi-", "yi"), ("claude", "claude"), ("command", "cohere"), ("aya", "cohere"),
)


def _family_of_type(model_type: str) -> str:
    """``qwen2_moe`` → ``qwen``, ``gemma3_text`` → ``gemma``, ``mixtral`` → ``mistral``."""
    base = re.match(r"[a-z]+", model_type.lower())
    name = base.group(0) if base else model_type.lower()
    return {"mixtral": "mistral", "smollm": "llama"}.get(name, name)


def _config_model_type(model: str, revision: str | None = None) -> str | None:
    path = Path(model)
    config = path / "config.json"
    if not config.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(model, "config.json", revision=revision)
        except Exception:  # not a repo id, or no cache: fall back to the name
            return None
        if not isinstance(cached, str):
            return None
        config = Path(cached)
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError):
        return None
    return str(model_type) if model_type else None


def model_family(model: str, revision: str | None = None) -> tuple[str | None, str]:
    """(family or None, how it was found) for a model id, local folder or served name."""
    model_type = _config_model_type(model, revision)
    if model_type:
        return _family_of_type(model_type), f"config model_type {model_type!r}"
    name = model.rstrip("/").split("/")[-1].lower()
    for fragment, family in _NAME_FAMILIES:
        if name.startswith(fragment) or f"-{fragment}" in name or f"_{fragment}" in name:
            return family, f"name {model!r}"
    return None, "unknown"


def family_overlap_warning(judge: str, others: dict[str, str]) -> list[str]:
    """One warning naming every role (candidate, reference, teacher …) whose model shares the judge's family."""
    judge_family, judge_how = model_family(judge)
    if judge_family is None:
        return []
    same = [f"{role} {model}" for role, model in others.items() if model_family(model)[0] == judge_family]
    if not same:
        return []
    return [
        f"judge {judge} ({judge_how}) is of the {judge_family!r} family, like the {'; the '.join(same)}: LLM judges "
        "tend to favour their own family's replies — prefer a judge from another family, or report this beside the "
        "result"
    ]
