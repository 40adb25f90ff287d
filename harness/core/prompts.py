"""Prompt files, loaded into typed configs that reject unknown keys, and their rendering.

The generation prompt is rendered the same way for every system (references, candidates, training data);
judge prompts are rendered here and nowhere else, so a prompt's version and text fully determine a verdict.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from harness.core.io import load_config
from harness.core.records import Dialogue
from harness.core.resources import prompts_dir

Mode = Literal["logits", "generate", "reward"]
"""How a judge answers: label probabilities, written verdicts, or (reward) a score per reply from a reward model."""
DIMENSIONS = ("cognitive", "affective", "compassionate")
#: Marker shown to the judge in place of an empty or whitespace-only reply.
EMPTY_RESPONSE = "(empty reply)"
#: Replies longer than this many characters are cut for the judge (and flagged ``truncated``).
JUDGE_MAX_RESPONSE_CHARS = 2000


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerationPrompt(_Config):
    """The generation prompt (prompts/generation/*.yaml)."""

    version: str
    template: str
    max_words: int = 97

    def render(self, dialogue: Dialogue) -> str:
        """The prompt text for one dialogue (before any chat template)."""
        return self.template.format(situation=dialogue.situation.strip(), utterance=dialogue.utterance.strip())

    @property
    def hash(self) -> str:
        """Identifies the prompt text; reference sets must match it (decoding and stop strings are checked apart)."""
        return _short_hash(self.version, self.template)


class Labels(_Config):
    """Pairwise verdict labels: the first shown response, the second, and a tie."""

    first: str
    second: str
    tie: str

    @field_validator("first", "second", "tie")
    @classmethod
    def _single_token_like(cls, v: str) -> str:
        if not v.strip() or v != v.strip() or " " in v:
            raise ValueError("labels must be short words without spaces, e.g. 'A'")
        return v


class Instructions(_Config):
    """The per-mode answer instruction."""

    logits: str
    generate: str


class PairwisePrompt(_Config):
    """Pairwise judge prompt (prompts/judge/pairwise.yaml)."""

    version: str
    system: str
    template: str
    instructions: Instructions
    labels: Labels
    verdict_prefix: str

    def render(self, dialogue: Dialogue, response_a: str, response_b: str, mode: Mode) -> str:
        """The user turn for one order of one pair."""
        return self.template.format(
            situation=dialogue.situation.strip(),
            utterance=dialogue.utterance.strip(),
            response_a=response_a,
            response_b=response_b,
            instruction=getattr(self.instructions, mode),
        )

    @property
    def label_list(self) -> tuple[str, str, str]:
        """(first, second, tie)."""
        return (self.labels.first, self.labels.second, self.labels.tie)


class RubricPrompt(_Config):
    """Rubric judge prompt (prompts/judge/rubric.yaml)."""

    version: str
    system: str
    dimensions: dict[str, str]
    template: str
    instructions: Instructions
    scores: tuple[str, ...]
    verdict_prefix: str

    @field_validator("dimensions")
    @classmethod
    def _three_dimensions(cls, v: dict[str, str]) -> dict[str, str]:
        if tuple(v) != DIMENSIONS:
            raise ValueError(f"dimensions must be exactly {', '.join(DIMENSIONS)} (in that order)")
        return v

    def render(self, dialogue: Dialogue, response: str, dimension: str, mode: Mode) -> str:
        """The user turn asking for one dimension's score of one response."""
        return self.template.format(
            definition=self.dimensions[dimension],
            dimension=dimension,
            situation=dialogue.situation.strip(),
            utterance=dialogue.utterance.strip(),
            response=response,
            instruction=getattr(self.instructions, mode),
        )


class ListenerPrompt(_Config):
    """Whole-conversation judge prompt (prompts/judge/listener.yaml): one 1-5 empathy rating of the listener."""

    version: str
    system: str
    template: str
    instructions: Instructions
    scores: tuple[str, ...]
    verdict_prefix: str

    def render(self, situation: str, transcript: str, mode: Mode) -> str:
        """The user turn asking for the rating of one conversation."""
        return self.template.format(situation=situation.strip(), transcript=transcript,
                                    instruction=getattr(self.instructions, mode))


class TeacherPrompts(_Config):
    """Teacher prompt set for ``empathy distill`` (prompts/teacher/*.yaml)."""

    version: str
    system: str
    improve: str
    goals: dict[str, str]
    diagnose: str
    sequential_next: str
    definitions: dict[str, str]

    @field_validator("goals")
    @classmethod
    def _all_goals(cls, v: dict[str, str]) -> dict[str, str]:
        needed = {"naive", "all_three", "lacking", *DIMENSIONS}
        if set(v) != needed:
            raise ValueError(f"goals must be exactly: {', '.join(sorted(needed))}")
        return v

    @field_validator("definitions")
    @classmethod
    def _three_definitions(cls, v: dict[str, str]) -> dict[str, str]:
        if set(v) != set(DIMENSIONS):
            raise ValueError(f"definitions must be exactly {', '.join(DIMENSIONS)}")
        return v

    def render_improve(self, dialogue: Dialogue, reply: str, goal: str, max_words: int, dimension: str = "") -> str:
        """The user turn asking to improve ``reply`` towards ``goal`` (a key of ``goals``)."""
        text = self.goals[goal].format(dimension=dimension, definition=self.definitions.get(dimension, ""))
        return self.improve.format(situation=dialogue.situation.strip(), utterance=dialogue.utterance.strip(),
                                   reply=reply, goal=text, max_words=max_words)

    def render_diagnose(self, dialogue: Dialogue, reply: str) -> str:
        """The user turn asking which dimension ``reply`` lacks most."""
        return self.diagnose.format(situation=dialogue.situation.strip(), utterance=dialogue.utterance.strip(),
                                    reply=reply)

    def render_next(self, dimension: str, max_words: int) -> str:
        """A later turn of the ``sequential`` chat."""
        return self.sequential_next.format(dimension=dimension, definition=self.definitions[dimension],
                                           max_words=max_words)


@lru_cache(maxsize=8)
def load_teacher_prompts(path: str | None = None) -> TeacherPrompts:
    """The teacher prompt set (default: prompts/teacher/default.yaml)."""
    p = Path(path) if path else prompts_dir() / "teacher" / "default.yaml"
    return _load(p, TeacherPrompts)  # type: ignore[return-value]


def prompt_file_hash(config: BaseModel) -> str:
    """Hash of a loaded prompt file's whole content (every field), for fingerprints and provenance."""
    return _short_hash(config.model_dump_json())


def _short_hash(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def _load(path: Path, model: type[_Config]) -> _Config:
    return load_config(path, model, "prompt file")


@lru_cache(maxsize=8)
def load_generation_prompt(path: str | None = None) -> GenerationPrompt:
    """The generation prompt (default: prompts/generation/default.yaml)."""
    p = Path(path) if path else prompts_dir() / "generation" / "default.yaml"
    return _load(p, GenerationPrompt)  # type: ignore[return-value]


@lru_cache(maxsize=8)
def load_pairwise_prompt(path: str | None = None) -> PairwisePrompt:
    """The pairwise judge prompt (default: prompts/judge/pairwise.yaml)."""
    p = Path(path) if path else prompts_dir() / "judge" / "pairwise.yaml"
    return _load(p, PairwisePrompt)  # type: ignore[return-value]


@lru_cache(maxsize=8)
def load_rubric_prompt(path: str | None = None) -> RubricPrompt:
    """The rubric judge prompt (default: prompts/judge/rubric.yaml)."""
    p = Path(path) if path else prompts_dir() / "judge" / "rubric.yaml"
    return _load(p, RubricPrompt)  # type: ignore[return-value]


@lru_cache(maxsize=8)
def load_listener_prompt(path: str | None = None) -> ListenerPrompt:
    """The whole-conversation listener prompt (default: prompts/judge/listener.yaml)."""
    p = Path(path) if path else prompts_dir() / "judge" / "listener.yaml"
    return _load(p, ListenerPrompt)  # type: ignore[return-value]


_RUN_ON = re.compile(r"\n\s*(?:context|situation|speaker|listener|response|user|assistant)\s*:", re.IGNORECASE)
_INLINE_TURN = re.compile(r"\b(?:Speaker|Context|Situation)\s*:")


def cut_reply(text: str) -> str:
    """The first answer in a model's output.

    Cuts where a base model starts a new transcript turn ("Context:" / "Speaker:" …), at the first blank line
    after some text, and strips wrapping quotes.
    """
    text = text.replace("\r\n", "\n")
    m = _RUN_ON.search(text)
    if m:
        text = text[: m.start()]
    m = _INLINE_TURN.search(text)
    if m:
        text = text[: m.start()]
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    text = paragraphs[0] if paragraphs else ""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


_MARKER_OPEN = re.compile(r"<{3,}")
_MARKER_CLOSE = re.compile(r">{3,}")


def prepare_for_judge(response: str) -> tuple[str, tuple[str, ...]]:
    """The response as the judge sees it, and flags.

    ``empty``: shown as a marker; ``truncated``: cut at :data:`JUDGE_MAX_RESPONSE_CHARS`; ``markers_escaped``: the
    reply wrote the delimiters that fence replies in judge prompts (``<<<`` / ``>>>``), which are turned into
    look-alikes so a reply cannot close its own block and speak to the judge from outside it.
    """
    flags: list[str] = []
    if not response.strip():
        return EMPTY_RESPONSE, ("empty",)
    escaped = _MARKER_CLOSE.sub("›››", _MARKER_OPEN.sub("‹‹‹", response))
    if escaped != response:
        response = escaped
        flags.append("markers_escaped")
    if len(response) > JUDGE_MAX_RESPONSE_CHARS:
        response = response[:JUDGE_MAX_RESPONSE_CHARS] + " […]"
        flags.append("truncated")
    return response, tuple(flags)
