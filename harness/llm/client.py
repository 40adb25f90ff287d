"""A cached, fingerprinted LLM client: one backend (local HF model or an OpenAI-compatible server) + the cache.

Both the judge and the distillation teacher ask their model through this client. Every answer is cached under a
key built from the client's *answer fingerprint* — the model's identity (content hash of a local folder, resolved
Hub commit, or server URL + served name), backend, mode, decoding and dtype — plus the fully rendered request.
So a model re-saved in place, another endpoint or another token budget misses the cache, and an unchanged re-run
makes no model call at all (the model is loaded only when some answer is missing).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.core.prompts import Mode
from harness.core.records import ModelIdentity
from harness.core.settings import JudgeSettings
from harness.core.ui import progress_bar
from harness.llm.base import JudgeBackend, JudgeRequest, NoAnswer
from harness.llm.cache import JudgeCache, cache_key
from harness.llm.registry import PROBED_BACKENDS, check_backend_name, make_backend

#: How long a served model's answer to the ``top_logprobs`` probe is trusted before it is asked again.
PROBE_TTL_S = 3600.0


class LazyBackend:
    """A backend that loads its model on first use, so a fully cached run never loads it."""

    def __init__(self, settings: JudgeSettings) -> None:
        self.settings = settings
        self.name = settings.backend
        self.model_id = settings.model
        self.revision = settings.revision
        self._identity: ModelIdentity | None = None
        self._backend: JudgeBackend | None = None
        self._last_stats: dict[str, Any] = {}

    @property
    def identity(self) -> ModelIdentity:
        """The model's identity (computed once; a Hub id is pinned to its resolved commit)."""
        if self._identity is None:
            from harness.core.fingerprint import model_identity

            s = self.settings
            self._identity = model_identity(s.model, revision=s.revision, backend=s.backend, base_url=s.base_url,
                                            cache_dir=s.fingerprint_dir())
        return self._identity

    @property
    def dtype(self) -> str:
        """The precision answers are computed in: bf16 on a GPU, fp32 on CPU, whatever a server uses."""
        if self.settings.backend in PROBED_BACKENDS:
            return "server"
        from harness.llm.base import local_dtype

        return local_dtype(self.settings.device)

    @property
    def loaded(self) -> bool:
        """Whether the model has been loaded."""
        return self._backend is not None

    @property
    def endpoint(self) -> str | None:
        """The public chat-completions URL of an HTTP backend (no query or user-info; None for local models)."""
        if self.settings.backend in PROBED_BACKENDS:
            from harness.core.urls import OPENAI_URL, chat_completions_url, public_url

            return public_url(chat_completions_url(self.settings.base_url or OPENAI_URL))
        return None

    def _get(self) -> JudgeBackend:
        if self._backend is None:
            settings = self.settings
            if self.identity.kind == "hub":  # load exactly the commit that was fingerprinted (offline when cached)
                from harness.core.hub import load_source

                model, revision = load_source(settings.model, self.identity.revision)
                settings = settings.model_copy(update={"model": model, "revision": revision})
            self._backend = make_backend(settings)
        return self._backend

    def supports_logprobs(self) -> bool:
        """See :meth:`harness.llm.openai.OpenAIBackend.supports_logprobs`."""
        return bool(self._get().supports_logprobs())  # type: ignore[attr-defined]

    def stats(self) -> dict[str, Any]:
        """Backend counters for the manifest (HTTP backends: requests, retries, failures)."""
        stats = getattr(self._backend, "stats", None)
        return dict(stats()) if callable(stats) else dict(self._last_stats)

    def label_probs(self, requests: Sequence[JudgeRequest]) -> Iterator[tuple[list[int], list[Any]]]:
        """See :class:`JudgeBackend`."""
        return self._get().label_probs(requests)

    def generate(self, requests: Sequence[JudgeRequest], max_new_tokens: int) -> Iterator[tuple[list[int], list[Any]]]:
        """See :class:`JudgeBackend`."""
        return self._get().generate(requests, max_new_tokens)

    def close(self) -> None:
        """Free the model if it was loaded."""
        if self._backend is not None:
            self._last_stats = self.stats()
            self._backend.close()
            self._backend = None


def _identity_of(backend: Any) -> ModelIdentity:
    identity = getattr(backend, "identity", None)
    if isinstance(identity, ModelIdentity):
        return identity
    # a backend without settings (e.g. one built in a test): known by its name only
    from harness.core.fingerprint import short_hash

    return ModelIdentity(kind="served", name=str(backend.model_id), fingerprint=short_hash(backend.name, backend.model_id))


@dataclass
class LLMClient:
    """Asks one model, batch by batch, through a cache keyed by the answer fingerprint."""

    backend: JudgeBackend
    mode: Mode
    cache: JudgeCache
    calls: int = 0
    mode_note: str | None = None
    """Why the mode in use differs from the one asked for (e.g. the server returns no log-probabilities)."""
    requested_mode: Mode | None = None
    logprobs_probe: bool | None = None
    _resolved: bool = field(default=False, repr=False)

    @property
    def identity(self) -> ModelIdentity:
        """The model's identity."""
        return _identity_of(self.backend)

    @property
    def dtype(self) -> str:
        """Precision of the answers."""
        return str(getattr(self.backend, "dtype", "unknown"))

    def resolve_mode(self) -> Mode:
        """The mode this model can run: logits needs a server that returns ``top_logprobs``, else generate.

        A served model's answer to the probe is part of its identity; it is trusted for :data:`PROBE_TTL_S` and
        then asked again (a server can be restarted with other options behind the same URL).
        """
        if self._resolved:
            return self.mode
        self._resolved = True
        self.requested_mode = self.mode
        if self.mode == "logits" and self.backend.name in PROBED_BACKENDS:
            endpoint = str(getattr(self.backend, "endpoint", ""))
            key = cache_key("capability:top_logprobs", self.identity.fingerprint)
            known = self.cache.peek(key)
            if not (isinstance(known, dict) and time.time() - float(known.get("time", 0)) < PROBE_TTL_S):
                known = {"value": bool(self.backend.supports_logprobs()), "time": time.time()}  # type: ignore[attr-defined]
                self.cache.put_many({key: known})
            self.logprobs_probe = bool(known["value"])
            if not self.logprobs_probe:
                self.mode = "generate"
                self.mode_note = (f"logits mode was asked for, but {endpoint} returns no top_logprobs: the judge "
                                  "wrote its verdicts (generate mode)")
        return self.mode

    def answer_fingerprint(self, max_new_tokens: int) -> str:
        """What, besides the request, determines an answer: model identity, backend, mode, decoding, dtype."""
        from harness.core.fingerprint import short_hash

        budget = str(max_new_tokens) if self.mode == "generate" else "next-token"
        # the probe shapes logits-mode answers only (a generate-mode request is the same whether asked for or not)
        probe = str(self.logprobs_probe) if self.mode == "logits" else ""
        return short_hash(self.identity.fingerprint, self.backend.name, self.mode, budget, "temperature=0",
                          self.dtype, probe)

    def key(self, request: JudgeRequest, max_new_tokens: int) -> str:
        """The cache key of one request."""
        return cache_key(self.answer_fingerprint(max_new_tokens), request.system, request.user, request.prefill,
                         "|".join(request.labels), *(t for turn in request.history for t in turn))

    def ask(
        self, requests: Sequence[JudgeRequest], *, max_new_tokens: int, description: str | None = None,
    ) -> list[tuple[Any, bool]]:
        """Answers (label probabilities or text) for each request, and whether each came from the cache.

        Answers are committed batch by batch, so an interrupted run keeps every answer made; a
        :class:`~harness.llm.base.NoAnswer` (a request that failed after its retries) is never cached.
        """
        self.resolve_mode()
        keys = [self.key(r, max_new_tokens) for r in requests]
        cached = self.cache.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k not in cached]
        unique_todo = list({keys[i]: i for i in todo}.values())
        answers: dict[str, Any] = dict(cached)
        if unique_todo:
            sub = [requests[i] for i in unique_todo]
            batches: Iterator[tuple[list[int], list[Any]]]
            if self.mode == "logits":
                batches = self.backend.label_probs(sub)
            else:
                batches = self.backend.generate(sub, max_new_tokens)
            label = description or f"asking {self.backend.model_id} ({self.mode}): requests"
            with progress_bar(label, total=len(sub)) as advance:
                for idx, outs in batches:
                    self.calls += len(idx)
                    fresh = {keys[unique_todo[j]]: out for j, out in zip(idx, outs, strict=True)}
                    self.cache.put_many({k: v for k, v in fresh.items() if not isinstance(v, NoAnswer)})
                    answers.update(fresh)
                    advance(len(idx))
        return [(answers[k], k in cached) for k in keys]

    def close(self) -> None:
        """Free the model and close the cache."""
        self.backend.close()
        self.cache.close()


def open_client(settings: JudgeSettings, *, mode: Mode | None = None) -> LLMClient:
    """A client for the given settings, with its cache; the model loads only if an answer is not cached."""
    check_backend_name(settings.backend)
    return LLMClient(backend=LazyBackend(settings), mode=mode or settings.mode, cache=JudgeCache(settings.cache_path()))
