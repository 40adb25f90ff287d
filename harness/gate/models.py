"""Typed records of ``empathy check``: one verdict per metric and the gate's overall verdict."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MetricOutcome = Literal["pass", "regression", "inconclusive"]
GateOutcome = Literal["pass", "regression", "inconclusive", "invalid", "style_only_win"]

#: Exit codes of ``empathy check``.
EXIT = {"pass": 0, "regression": 1, "usage": 2, "invalid": 3, "inconclusive": 4, "style_only_win": 5}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricVerdict(_Frozen):
    """Non-inferiority of the candidate on one metric (Δ = candidate − baseline, paired by dialogue)."""

    name: str
    """e.g. ``win_rate:vs_base``, ``lc_win_rate:vs_base``, ``rubric:cognitive``, ``head_to_head``."""
    kind: Literal["paired", "head_to_head"]
    baseline: float | None
    """The baseline's value (head to head: None — the comparison is the candidate against the baseline)."""
    candidate: float | None
    delta: float | None
    """Candidate − baseline; head to head: the candidate's win rate against the baseline − 0.5."""
    ci_low: float | None
    ci_high: float | None
    confidence: float
    """The level of the CI shown: 1 − 2·(Holm-adjusted α of this metric), so a CI bound is the one-sided test."""
    margin: float
    """Non-inferiority margin: a drop smaller than this is not a regression."""
    p_regression: float | None
    """One-sided p-value of 'no drop beyond the margin' (small → regression), before Holm."""
    p_pass: float | None
    """One-sided p-value of 'a drop beyond the margin' (small → non-inferior), before Holm."""
    outcome: MetricOutcome
    n: int
    """Paired dialogues (head to head: decisive dialogues)."""
    sd: float | None = None
    """Standard deviation of the per-dialogue difference (paired metrics)."""
    mde: float | None = None
    """Smallest true drop flagged as a regression with 80 % power at this n and this metric's α; it includes the
    margin (a drop within the margin is never a regression), so it is ≥ ``margin``."""
    n_needed: int | None = None
    """Dialogues needed to flag a drop of 2·``margin`` (``margin`` + 0.02 when the margin is 0) as a regression
    with 80 % power (None when not estimable)."""
    sign_test_p: float | None = None
    """Head to head: exact two-sided sign test on decisive dialogues."""
    wins: int | None = None
    losses: int | None = None
    ties: int | None = None
    reason: str | None = None
    """Why the metric carries no information (no decisive dialogue, no reply scored in both runs): it is
    inconclusive, untested, and the gate never passes on it."""


class HealthCheck(_Frozen):
    """A run-health floor: a run that breaks one is not a valid basis for a verdict."""

    run: Literal["baseline", "candidate"]
    name: str
    value: float | None
    floor: float
    """The limit (a minimum, or a maximum for ``position_flip_rate`` and ``unscored_share``)."""
    ok: bool


class StyleShift(_Frozen):
    """One style feature of the candidate replies, baseline vs candidate run (:mod:`harness.gate.style_shift`)."""

    feature: str
    baseline: float
    candidate: float
    delta: float
    ci_low: float
    ci_high: float
    n: int
    shifted: bool
    """The CI excludes 0."""


class StyleControlled(_Frozen):
    """A comparison's paired Δ win rate, raw and with style held equal (:mod:`harness.gate.style_control`)."""

    comparison: str
    features: tuple[str, ...]
    n: int
    raw_baseline: float
    raw_candidate: float
    raw_delta: float
    raw_ci_low: float
    raw_ci_high: float
    baseline: float
    """The baseline run's style-controlled win rate (at zero style difference)."""
    candidate: float
    delta: float
    ci_low: float
    ci_high: float
    slopes: dict[str, float]
    """The shared style slopes: log-odds of a win per +1 SD of each normalised difference."""
    left_out: list[str] = Field(default_factory=list)
    """Features whose differences lie (almost) all between the runs: their effect cannot be told from the runs'
    own, so they are not controlled (slope 0)."""
    win_disappears: bool
    """The raw Δ's CI is above 0 and the style-controlled Δ's CI is not: the candidate won by style."""


class GateVerdict(_Frozen):
    """What ``empathy check`` decided, and everything it decided from (``--json``)."""

    banner: str | None = None
    """Set when the check ran with ``--allow-unhealthy-judge`` over a judge that failed its health check: the first
    line of every report (first key of the JSON)."""
    schema_version: Literal[1] = 1
    outcome: GateOutcome
    exit_code: int
    alpha: float
    correction: Literal["holm"] = "holm"
    metrics: list[MetricVerdict] = Field(default_factory=list)
    health: list[HealthCheck] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)
    """Why the comparison is invalid (fields that differ, floors broken)."""
    warnings: list[str] = Field(default_factory=list)
    style_shift: list[StyleShift] = Field(default_factory=list)
    """Every style feature's paired shift (reported, never gated); empty with ``style_note`` saying why."""
    style_note: str | None = None
    style_control: list[StyleControlled] = Field(default_factory=list)
    """Each comparison's raw and style-controlled paired Δ (reported; gated only with --fail-on-style-only-win)."""
    style_control_note: str | None = None
    style_only_wins: list[str] = Field(default_factory=list)
    """Comparisons whose win disappears under style control (the flag)."""
    baseline: str
    candidate: str
    judge: str
    n_dialogues: int
    n_boot: int
    seed: int
