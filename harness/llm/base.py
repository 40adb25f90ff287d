"""What a model runner is: requests, answers, the backend protocol (runners live in hf.py and openai.py).

A backend answers :class:`JudgeRequest` batches in one of two ways: ``label_probs`` (one forward pass; the
probability of each label as the next token after the prompt) or ``generate`` (a short written answer).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from harness.core.errors import HarnessError


@dataclass(frozen=True)
class JudgeRequest:
    """One judge prompt: system + user turn, then an assistant prefix (e.g. 'Verdict:')."""

    system: str
    user: str
    prefill: str
    labels: tuple[str, ...] = ()
    history: tuple[tuple[str, str], ...] = ()
    """Earlier (user, assistant) turns of the same chat, before ``user`` (multi-turn teacher strategies)."""

    def messages(self) -> list[dict[str, str]]:
        """The chat as OpenAI-style messages (system, earlier turns, this user turn)."""
        out = [{"role": "system", "content": self.system}] if self.system else []
        for user, assistant in self.history:
            out += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        return [*out, {"role": "user", "content": self.user}]


@dataclass(frozen=True)
class NoAnswer:
    """A request the backend could not answer (e.g. the server kept failing).

    The item ends *unscored* with this reason, and nothing is cached, so a re-run asks again.
    """

    reason: str


class JudgeBackend(Protocol):
    """What the judge needs from a model runner.

    ``label_probs`` and ``generate`` may yield a :class:`NoAnswer` in place of an answer.
    """

    name: str
    model_id: str
    revision: str | None

    def label_probs(self, requests: Sequence[JudgeRequest]) -> Iterator[tuple[list[int], list[Any]]]:
        """Yield (request indices, label → probability dicts or NoAnswer) batch by batch."""
        ...

    def generate(self, requests: Sequence[JudgeRequest], max_new_tokens: int) -> Iterator[tuple[list[int], list[Any]]]:
        """Yield (request indices, generated text or NoAnswer) batch by batch."""
        ...

    def close(self) -> None:
        """Free the model."""
        ...


def local_dtype(device: str) -> str:
    """The precision a local model runs in on ``device``: bfloat16 on a GPU, float32 on a CPU."""
    return "bfloat16" if resolve_device(device).startswith("cuda") else "float32"


def resolve_device(device: str) -> str:
    """'auto' → 'cuda' when a GPU is visible, else 'cpu'; a GPU asked for where there is none is a clear error.

    torch is imported only where the answer needs it, so a preflight of 'cpu' costs nothing.
    """
    if device not in ("auto", "cpu", "mps") and not device.startswith("cuda"):
        raise HarnessError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    if device in ("cpu", "mps"):
        return device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise HarnessError(f"device {device!r}: this torch sees no CUDA GPU (torch {torch.__version__}); use --device "
                           "cpu or auto, or install the torch build for your GPU")
    return device
