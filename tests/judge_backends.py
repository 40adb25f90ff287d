"""Mock judge backends for tests whose case is a judge behaviour no model that runs here can be made to show.

A backend is registered like any plugin backend (``harness.llm.registry``) and answers in logits mode from two
functions: ``pairwise(reply_a, reply_b)`` → label probabilities of a pairwise request, ``rubric(reply, request)`` →
label probabilities of a rubric request (``_mass`` is added: 0.99 unless the function sets it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.llm.registry import BACKENDS, register_backend

Probs = dict[str, float]


def _between(text: str, start: str, end: str) -> str:
    return text.split(start)[1].split(end)[0]


def register_judge(name: str, pairwise: Callable[[str, str], Probs], rubric: Callable[[str, Any], Probs]) -> str:
    """Register (once per process) a judge backend ``name`` answering with ``pairwise`` and ``rubric``."""

    class ScriptedJudge:
        def __init__(self, settings: Any) -> None:
            self.name = name
            self.model_id, self.revision = settings.model, None

        def label_probs(self, requests: list[Any]) -> Any:
            out = []
            for r in requests:
                if "<<<RESPONSE A>>>" in r.user:
                    probs = pairwise(_between(r.user, "<<<RESPONSE A>>>", "<<<END OF RESPONSE A>>>"),
                                     _between(r.user, "<<<RESPONSE B>>>", "<<<END OF RESPONSE B>>>"))
                else:
                    probs = rubric(_between(r.user, "<<<REPLY>>>", "<<<END OF REPLY>>>"), r)
                out.append({"_mass": 0.99, **probs})
            yield list(range(len(requests))), out

        def generate(self, requests: list[Any], max_new_tokens: int) -> Any:
            raise AssertionError("logits mode only")

        def close(self) -> None:
            pass

    if name not in BACKENDS:
        register_backend(name)(ScriptedJudge)
    return name


def score(label: str, labels: list[str] | tuple[str, ...]) -> Probs:
    """Rubric probabilities that put 0.96 on ``label``."""
    return {k: (0.96 if k == label else 0.01) for k in labels}
