"""The teacher of ``empathy distill``: any judge-capable backend asked to write replies, with cached answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.core.settings import JudgeSettings
from harness.llm.base import JudgeRequest, NoAnswer

#: Tokens a teacher may write for one answer (replies are ≤ 97 words; a diagnosis is a sentence and a verdict).
TEACHER_MAX_NEW_TOKENS = 200


class Teacher:
    """Teacher calls through the cached LLM client (local HF batched, or an OpenAI-compatible server)."""

    def __init__(self, settings: JudgeSettings) -> None:
        from harness.llm.client import open_client

        self.client = open_client(settings, mode="generate")

    def ask(self, requests: Sequence[JudgeRequest], version: str, what: str) -> list[str | NoAnswer]:
        """The teacher's text (or NoAnswer) for each request; cached like judge answers.

        ``version`` is the prompt set's version, shown with the progress; the cache key holds the rendered request.
        """
        answers = self.client.ask(requests, max_new_tokens=TEACHER_MAX_NEW_TOKENS,
                                  description=f"teacher: {what} ({self.client.backend.model_id}, {version})")
        return [a if isinstance(a, NoAnswer) else str(a) for a, _ in answers]

    @property
    def identity(self) -> dict[str, Any]:
        """Teacher backend, model and call counts (for the report)."""
        backend = self.client.backend
        return {"backend": backend.name, "model": backend.model_id, "revision": getattr(backend, "revision", None),
                "fingerprint": self.client.identity.fingerprint, **self.client.cache.stats(),
                "calls": self.client.calls}

    def close(self) -> None:
        """Free the teacher model and close its cache."""
        self.client.close()
