"""Backends by name — a registry, because a CLI option (``--judge-backend``) and config files name them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.core.errors import HarnessError, did_you_mean
from harness.llm.base import JudgeBackend

if TYPE_CHECKING:
    from harness.core.settings import JudgeSettings

BackendFactory = Callable[["JudgeSettings"], JudgeBackend]
#: name → factory(settings); ``--judge-backend`` picks one.
BACKENDS: dict[str, BackendFactory] = {}
#: Backends whose logits mode depends on the server (it must return ``top_logprobs``); probed once, cached.
PROBED_BACKENDS: set[str] = set()


def register_backend(name: str, *, probe_logprobs: bool = False) -> Callable[[BackendFactory], BackendFactory]:
    """Register a backend factory under a name usable in ``--judge-backend``."""

    def wrap(factory: BackendFactory) -> BackendFactory:
        BACKENDS[name] = factory
        if probe_logprobs:
            PROBED_BACKENDS.add(name)
        return factory

    return wrap


def make_backend(settings: JudgeSettings) -> JudgeBackend:
    """Create the backend the settings name; an unknown name gets a 'did you mean' error."""
    if settings.backend not in BACKENDS:
        raise HarnessError(f"unknown judge backend {settings.backend!r}: {did_you_mean(settings.backend, BACKENDS)}")
    return BACKENDS[settings.backend](settings)


def check_backend_name(name: str) -> None:
    """Raise a clear error for an unknown backend name (before anything is loaded)."""
    if name not in BACKENDS:
        raise HarnessError(f"unknown judge backend {name!r}: {did_you_mean(name, BACKENDS)}")


@register_backend("hf")
def _hf_backend(settings: JudgeSettings) -> JudgeBackend:
    from harness.llm.hf import HFBackend

    return HFBackend(settings.model, revision=settings.revision, device=settings.device,
                     batch_size=settings.batch_size, prefix_reuse=settings.prefix_reuse)


@register_backend("openai", probe_logprobs=True)
def _openai_backend(settings: JudgeSettings) -> JudgeBackend:
    from harness.llm.openai import OpenAIBackend

    return OpenAIBackend(settings.model, settings.base_url, revision=settings.revision,
                         api_key_env=settings.api_key_env, concurrency=settings.concurrency,
                         timeout_s=settings.timeout_s, max_retries=settings.max_retries,
                         backoff_s=settings.retry_backoff_s)
