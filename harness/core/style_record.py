"""Typed style records of a run: per-reply features (``style.jsonl``) and the run's style profile (results.json).

Counted by :mod:`harness.score.style`; the fingerprint names the counting code and phrase file they were made with.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StyleRow(BaseModel):
    """The style features of one system's reply to one dialogue (a line of ``style.jsonl``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: int = 2  # (the JSONL records' schema, as in harness.core.records)
    dialogue_id: str
    system: str
    features: dict[str, float]
    fingerprint: str


class FeatureStats(BaseModel):
    """One feature over a system's replies: mean and 95 % bootstrap CI over dialogues."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int


class StyleDifference(BaseModel):
    """A feature on which the candidate differs from a reference, in pooled standard deviations."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    feature: str
    candidate: float
    reference: float
    difference_sd: float


class RunStyle(BaseModel):
    """The run's style profile: every feature per system, and where the candidate differs most per comparison."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    fingerprint: str
    """The counting code and phrase file the rows were counted with (:attr:`StyleCounter.fingerprint`)."""
    features: tuple[str, ...]
    systems: dict[str, dict[str, FeatureStats]]
    """``candidate`` and each reference by name."""
    largest_differences: dict[str, list[StyleDifference]]
    """By comparison (``vs_base`` …): the three features with the largest |difference| in pooled SDs."""
