"""Typed, versioned records exchanged between the pipeline stages.

Every stage reads and writes only these records, and every record is keyed by dialogue id, never by row
order. Each carries a ``schema_version`` so that files written by older versions are recognised.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.core.io import short_hash
from harness.core.style_record import RunStyle
from harness.core.validity import JudgeValidity

SCHEMA_VERSION = 2
#: A short fingerprint: 16 lower-case hex characters.
FINGERPRINT = r"^[0-9a-f]{16}$"

Sentiment = Literal["positive", "negative", "neutral"]
Order = Literal["cand_first", "ref_first"]
Outcome = Literal["candidate", "reference", "tie"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: int = SCHEMA_VERSION


class ModelIdentity(BaseModel):
    """What a system *is*, never just the string the user typed (see :mod:`harness.core.fingerprint`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["local", "hub", "served", "replies"]
    name: str
    """The folder, Hub id or served model name as given (``replies``: a file of replies written beforehand)."""
    revision: str | None = None
    """Hub models: the resolved commit sha (pinned even when none was asked for)."""
    base_url: str | None = None
    """Served models: the normalised server URL, scheme, host, port and path only (never a query or user-info)."""
    fingerprint: str = Field(pattern=FINGERPRINT)
    """16 hex characters that change whenever what produces the answers changes (not with the name or path)."""


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
    """The dataset's own reply (e.g. the human listener's), if any: a start for ``empathy distill``; not hashed."""


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
    model_identity: ModelIdentity | None = None
    """What generated the replies (None in files of schema 1: such a set cannot be checked for staleness)."""
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
    label_mass: float | None = None
    """Logits mode: the probability the judge put on the verdict labels at all (before renormalising)."""


class Judgment(_Record):
    """All judge output for one dialogue in one comparison (both orders)."""

    dialogue_id: str
    comparison: str
    candidate: str
    reference: str
    verdicts: tuple[PairVerdict, ...]
    outcome: Outcome | None
    """Candidate (reference) if both orders prefer it, else tie; None (unscored) if any order could not be parsed."""
    flags: tuple[str, ...] = ()
    candidate_words: int
    reference_words: int
    unscored_reason: str | None = None
    judge_fingerprint: str = ""
    """The :class:`JudgeFingerprint` that produced these verdicts (its short hash)."""


class RubricScore(_Record):
    """Rubric scores (1-5) of one response on each empathy dimension."""

    dialogue_id: str
    system: str
    scores: dict[str, float | None]
    raw: dict[str, str] = Field(default_factory=dict)
    flags: tuple[str, ...] = ()
    label_mass: dict[str, float | None] = Field(default_factory=dict)
    judge_fingerprint: str = ""


class JudgeFingerprint(BaseModel):
    """Everything that determines a judge's answers; its ``fingerprint`` is on every verdict and cache key."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: ModelIdentity
    backend: str
    mode: Literal["logits", "generate", "reward"]
    requested_mode: Literal["logits", "generate", "reward"]
    mode_note: str | None = None
    pairwise_prompt_version: str
    pairwise_prompt_hash: str
    rubric_prompt_version: str
    rubric_prompt_hash: str
    pairwise_labels: tuple[str, ...]
    rubric_labels: tuple[str, ...]
    max_new_tokens: int
    """Generate mode: the judge's token budget (logits mode reads one next-token distribution)."""
    temperature: float = 0.0
    dtype: str
    parser_version: str
    min_label_mass: float
    logprobs_probe: bool | None = None
    """Served judges in logits mode: whether the server returned ``top_logprobs`` when probed for this run."""
    tie_band: float | None = None
    """Reward mode: the tie band of the verdict rule. None (other modes) is left out of the hash: old ones hold."""
    fingerprint: str
    """Short hash of every field that shapes verdicts (not the mode asked for, its note, or how the model was named:
    the same judge folder written two ways is one judge). Checked on load."""

    def content_hash(self) -> str:
        """The hash :attr:`fingerprint` must equal."""
        drop: dict[str, Any] = {"fingerprint": True, "mode_note": True, "requested_mode": True, "model": {"name"}}
        shaped = self.model_dump(mode="json", exclude=drop | ({"tie_band": True} if self.tie_band is None else {}))
        return short_hash(json.dumps(shaped, sort_keys=True))

    def with_hash(self) -> JudgeFingerprint:
        """This fingerprint with its hash filled in."""
        return self.model_copy(update={"fingerprint": self.content_hash()})

    @model_validator(mode="after")
    def _hash_matches(self) -> JudgeFingerprint:
        if self.fingerprint and self.fingerprint != self.content_hash():
            raise ValueError(f"judge fingerprint {self.fingerprint} does not match its fields (they hash to "
                             f"{self.content_hash()}): the judge description was edited")
        return self


class ComparisonStats(BaseModel):
    """Statistics of one comparison (candidate vs one reference), as defined in :mod:`harness.score.stats`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    win_rate: float | None
    ci_low: float | None
    ci_high: float | None
    win_rate_cand_first: float | None
    win_rate_ref_first: float | None
    wins: int
    losses: int
    ties: int
    tie_rate: float | None
    position_flip_rate: float | None
    n_scored: int
    n_unscored: int
    parse_rate: float | None
    lc_win_rate: float | None
    lc_ci_low: float | None = None
    lc_ci_high: float | None = None
    lc_n_bootstrap: int | None = None
    mean_words_candidate: float | None
    mean_words_reference: float | None
    preference: float | None = None
    preference_ci_low: float | None = None
    preference_ci_high: float | None = None
    label_mass_mean: float | None = None
    label_mass_min: float | None = None
    flags: dict[str, int] = Field(default_factory=dict)
    seed: int
    n_bootstrap: int
    reference: str
    """The reference set's name (``base`` in ``vs_base``)."""
    reference_model: ModelIdentity


class DimensionStats(BaseModel):
    """Mean rubric score (1-5) of one dimension with its bootstrap CI."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n_scored: int
    n_unscored: int


class JudgeProbe(_Record):
    """One sanity-probe pair (prompts/judge/probe.yaml) judged in both orders; "candidate" is the caring reply."""

    probe_id: str
    probe_version: str
    verdicts: tuple[PairVerdict, ...]
    judge_fingerprint: str = ""


class RunHealth(BaseModel):
    """Is the judge telling replies apart? Its verdicts in the run, its sanity probe (``probe_*``), and the call."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    n_verdicts: int
    parse_rate: float | None
    """Share of pairwise verdicts (one per order) that were read."""
    tie_rate: float | None
    position_flip_rate: float | None
    position_bias: float | None  # P(first-shown reply wins) − P(second wins), decisive read verdicts; 0: unbiased
    order_free: bool = False
    """The judge scores each reply alone (reward mode): position bias and flip rate are n/a (None), not a measured 0."""
    label_mass_mean: float | None = None
    label_mass_min: float | None = None
    n_low_label_mass: int = 0
    rubric_parse_rate: float | None = None
    probe_accuracy: float | None = None
    probe_n: int = 0
    judge_ok: bool = True
    judge_problem: str | None = None


class SystemInfo(BaseModel):
    """One system of the run (candidate or a reference) and where its replies came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: ModelIdentity
    backend: str
    chat_template: bool | None = None
    dtype: str | None = None
    reference_file: str | None = None
    reference_file_hash: str | None = None


class Provenance(BaseModel):
    """Where the numbers came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    harness_version: str
    front_end: Literal["empathy eval", "lm-eval"]
    dataset: str
    dataset_hash: str
    n_dialogues: int
    dialogue_ids_hash: str
    generation_prompt_version: str
    generation_prompt_hash: str
    decoding: Decoding
    systems: dict[str, SystemInfo]  # ``candidate`` and every reference by name
    seed: int
    time: str


class RunResult(_Record):
    """A completed run (``results.json``, schema 3; 2 lacks ``style``); ``vs_base`` / ``vs_direct`` repeat those on top."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: Literal[2, 3] = 3
    model: str
    comparisons: dict[str, ComparisonStats]
    vs_base: ComparisonStats | None = None
    vs_direct: ComparisonStats | None = None
    rubric: dict[str, DimensionStats]
    rubric_references: dict[str, dict[str, DimensionStats]] = Field(default_factory=dict)
    health: RunHealth
    judge: JudgeFingerprint
    results: dict[str, dict[str, float | str | None]]
    """lm-eval's view: per task, each metric's mean and standard error (``metric,filter`` keys)."""
    versions: dict[str, float]
    warnings: list[str] = Field(default_factory=list)
    provenance: Provenance
    judge_validity: JudgeValidity | None = None  # the judge's agreement with people, measured elsewhere (see its module)
    style: RunStyle | None = None  # the replies' style profile (harness.score.style); None: schema 2, or no references
    demo: bool = False
    """Made by ``empathy demo``: models of random weights (or a 135M judge) — the numbers are noise; never quote them."""

    @model_validator(mode="after")
    def _headline_copies(self) -> RunResult:
        for name in ("base", "direct"):
            copy = getattr(self, f"vs_{name}")
            if copy != self.comparisons.get(f"vs_{name}"):
                raise ValueError(f"vs_{name} differs from comparisons['vs_{name}']")
        return self
