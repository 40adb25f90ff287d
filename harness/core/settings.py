"""Typed settings, read once (from the CLI or lm-eval's ``--metadata``) and passed down.

No module reads the environment at import time; :func:`from_environment` is called by the entry points.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.core.errors import HarnessError, did_you_mean

#: The default judge: an open instruction model that needs no API key.
DEFAULT_JUDGE = "Qwen/Qwen2.5-7B-Instruct"
#: logits/generate: an instruction LLM reads a prompt; reward: a sequence-classification reward model scores each reply.
JUDGE_MODES = ("logits", "generate", "reward")
#: Tokens a generate-mode judge may write: a short rationale, then the verdict.
GENERATE_MAX_NEW_TOKENS = 96
#: Logits mode: verdicts whose labels hold less next-token probability than this are unscored.
DEFAULT_MIN_LABEL_MASS = 0.5
#: Reward mode: a verdict is a tie when P(candidate) = σ(r_cand − r_ref) lies within half this band of ½.
DEFAULT_TIE_BAND = 0.1


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the judge cache and on-the-fly reference sets live ($EMPATHY_HARNESS_CACHE or XDG cache)."""
    env = os.environ if env is None else env
    if env.get("EMPATHY_HARNESS_CACHE"):
        return Path(env["EMPATHY_HARNESS_CACHE"])
    base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "empathy-harness"


class JudgeSettings(BaseModel):
    """Which judge to run and how."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str = DEFAULT_JUDGE
    revision: str | None = None
    backend: str = "hf"
    mode: Literal["logits", "generate", "reward"] = "logits"
    device: str = "auto"
    batch_size: int = Field(default=0, ge=0)
    """Local model: prompts per forward pass; 0 = auto (8 on a CPU, chosen from free memory on a GPU)."""
    prefix_reuse: bool = True
    """Local model: compute each shared prompt prefix once (results equal the plain pass; checked at first use)."""
    cache_dir: str = ""
    max_new_tokens: int = Field(default=GENERATE_MAX_NEW_TOKENS, ge=1)
    """Generate mode: tokens the judge may write."""
    min_label_mass: float = Field(default=DEFAULT_MIN_LABEL_MASS, ge=0.0, le=1.0)
    """Logits mode: below this probability on the labels, a verdict is unscored."""
    tie_band: float = Field(default=DEFAULT_TIE_BAND, ge=0.0, lt=1.0)
    """Reward mode: a tie when |σ(r_cand − r_ref) − ½| < tie_band / 2 (see :mod:`harness.judge.reward`)."""
    # OpenAI-compatible servers (backend "openai"); the API key is read from the environment variable named
    # here, never stored in settings, results or logs.
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(default=8, ge=1)
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    retry_backoff_s: float = Field(default=1.0, ge=0)

    @field_validator("mode", mode="before")
    @classmethod
    def _known_mode(cls, v: Any) -> Any:
        if isinstance(v, str) and v not in JUDGE_MODES:
            raise ValueError(f"unknown judge mode {v!r}: {did_you_mean(v, JUDGE_MODES)}")
        return v

    def cache_path(self) -> Path:
        """The SQLite judge cache file."""
        return Path(self.cache_dir or default_cache_dir()) / "judge-cache.sqlite"

    def fingerprint_dir(self) -> Path:
        """Where model content hashes are memoised (beside the cache)."""
        return Path(self.cache_dir or default_cache_dir())


class TaskSettings(BaseModel):
    """What the lm-eval tasks read from ``--metadata`` (or the environment)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    dataset: str = "bundled"
    judge: JudgeSettings = JudgeSettings()
    references: dict[str, str] = {}
    limit: int | None = Field(default=None, ge=1)
    """The first N dialogues of the stable order, as ``empathy eval --limit N`` takes them."""
    seed: int = 1234


#: ``--metadata`` keys understood by the tasks, and their environment fallbacks.
_METADATA_ENV = {
    "judge": "EMPATHY_JUDGE",
    "judge_mode": "EMPATHY_JUDGE_MODE",
    "judge_backend": "EMPATHY_JUDGE_BACKEND",
    "judge_device": "EMPATHY_JUDGE_DEVICE",
    "judge_base_url": "EMPATHY_JUDGE_BASE_URL",
    "reference_base": "EMPATHY_REFERENCE_BASE",
    "reference_direct": "EMPATHY_REFERENCE_DIRECT",
    "dataset": "EMPATHY_DATASET",
    "limit": "EMPATHY_LIMIT",
}


def task_settings_from_metadata(metadata: Mapping[str, Any], env: Mapping[str, str] | None = None) -> TaskSettings:
    """Build task settings from lm-eval metadata, with ``EMPATHY_*`` environment variables as fallback.

    Accepted keys: ``judge`` (model id/folder), ``judge_revision``, ``judge_backend``, ``judge_mode``,
    ``judge_device``, ``judge_batch_size``, ``judge_prefix_reuse``, ``judge_base_url``, ``judge_api_key_env``, ``judge_concurrency``,
    ``judge_timeout_s``, ``judge_max_retries``, ``judge_max_new_tokens``, ``judge_min_label_mass``, ``judge_tie_band``,
    ``cache_dir``, ``references`` ({name: file}) or
    ``reference_base`` / ``reference_direct``, ``dataset``, ``limit``, ``seed``.
    """
    env = os.environ if env is None else env
    md = dict(metadata)
    for key, var in _METADATA_ENV.items():
        if key not in md and env.get(var):
            md[key] = env[var]
    references = dict(md.get("references") or {})
    for name in ("base", "direct"):
        if md.get(f"reference_{name}"):
            references.setdefault(name, str(md[f"reference_{name}"]))
    judge_fields = {
        "model": md.get("judge"),
        "revision": md.get("judge_revision"),
        "backend": md.get("judge_backend"),
        "mode": md.get("judge_mode"),
        "device": md.get("judge_device"),
        "batch_size": md.get("judge_batch_size"),
        "prefix_reuse": md.get("judge_prefix_reuse"),
        "base_url": md.get("judge_base_url"),
        "api_key_env": md.get("judge_api_key_env"),
        "concurrency": md.get("judge_concurrency"),
        "timeout_s": md.get("judge_timeout_s"),
        "max_retries": md.get("judge_max_retries"),
        "max_new_tokens": md.get("judge_max_new_tokens"),
        "min_label_mass": md.get("judge_min_label_mass"),
        "tie_band": md.get("judge_tie_band"),
        "cache_dir": md.get("cache_dir") or str(default_cache_dir(env)),
    }
    try:
        judge = JudgeSettings.model_validate({k: v for k, v in judge_fields.items() if v is not None})
        return TaskSettings(
            dataset=str(md.get("dataset") or "bundled"),
            judge=judge,
            references=references,
            limit=int(md["limit"]) if md.get("limit") is not None else None,
            seed=int(md.get("seed", 1234)),
        )
    except (ValidationError, ValueError) as exc:
        raise HarnessError(f"invalid empathy task settings in --metadata: {exc}") from exc
