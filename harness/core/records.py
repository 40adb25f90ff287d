"""Typed, versioned records exchanged between the pipeline stages.

Every stage reads and writes only these records, and every record is keyed by dialogue id, never by row
order. Each carries a ``schema_version`` so that files written by older versions are recognised.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

Sentiment = Literal["positive", "negative", "neutral"]
Order = Literal["cand_first", "ref_first"]
Outcome = Literal["candidate", "reference", "tie"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: int = SCHEMA_VERSION


class Dialogue(_Record):
    """One empathy prompt: a situation and the speaker's first utterance."""

    id: str
    emotion: str
    sentiment: Sentiment
    situation: str
    utterance: str
    source: str = "bundled"
    split: str = "test"
    reply: str | None = None
    """A reply that comes with the dataset (e.g. the human listener's), if any; a starting point for the
    improvement strategies of ``empathy distill``. Not part of the dataset hash."""


class Decoding(BaseModel):
    """Decoding settings shared by every system in a comparison."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_gen_toks: int = 160
    do_sample: bool = False
    temperature: float = 0.0
    until: tuple[str, ...] = ()


class Generation(_Record):
    """The reply of one system to one dialogue."""

    dialogue_id: str
    system: str
    prompt: str
    raw_response: str
    response: str
    flags: tuple[str, ...] = ()


class ReferenceManifest(_Record):
    """Where a reference set came from; checked before any comparison uses it."""

    name: str
    model: str
    model_revision: str | None = None
    backend: str
    decoding: Decoding
    prompt_hash: str
    dataset_hash: str
    dataset: str
    chat_template: bool
    n: int
    created_at: str
    harness_version: str


class ReferenceSet(BaseModel):
    """A reference set: its manifest plus one Generation per dialogue id."""

    model_config = ConfigDict(extra="forbid")
    manifest: ReferenceManifest
    generations: dict[str, Generation]


class PairVerdict(BaseModel):
    """The judge's answer to one pairwise prompt (one order)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    order: Order
    winner: Outcome | None
    """Which system this order preferred, or None when the verdict could not be parsed (unscored)."""
    p_candidate: float | None = None
    """Logits mode: P(candidate preferred), ties counted half."""
    raw: str = ""
    cached: bool = False
    unscored_reason: str | None = None
    """Why ``winner`` is None: an unreadable answer, or a request that failed after its retries."""


class Judgment(_Record):
    """All judge output for one dialogue in one comparison (both orders)."""

    dialogue_id: str
    comparison: str
    candidate: str
    reference: str
    verdicts: tuple[PairVerdict, ...]
    outcome: Outcome | None
    """Per-dialogue result: candidate if both orders prefer it, reference if both prefer it, else tie;
    None (unscored) if any order could not be parsed."""
    flags: tuple[str, ...] = ()
    candidate_words: int
    reference_words: int
    unscored_reason: str | None = None


class RubricScore(_Record):
    """Rubric scores (1-5) of one response on each empathy dimension."""

    dialogue_id: str
    system: str
    scores: dict[str, float | None]
    raw: dict[str, str] = Field(default_factory=dict)
    flags: tuple[str, ...] = ()


class JudgeIdentity(BaseModel):
    """Everything that determines a judge's answers; part of every cache key."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    backend: str
    model: str
    revision: str | None = None
    mode: Literal["logits", "generate"]
    requested_mode: Literal["logits", "generate"] | None = None
    mode_note: str | None = None
    pairwise_prompt_version: str
    rubric_prompt_version: str


class RunResult(_Record):
    """The result of one evaluation run, as written to results.json."""

    model_config = ConfigDict(extra="allow", frozen=True)
    model: str
    comparisons: dict[str, dict[str, Any]]
    rubric: dict[str, dict[str, Any]]
    rubric_references: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    results: dict[str, dict[str, Any]]
    configs: dict[str, dict[str, Any]]
    versions: dict[str, Any]
    judge: JudgeIdentity
    warnings: list[str] = Field(default_factory=list)
    provenance: dict[str, Any]
