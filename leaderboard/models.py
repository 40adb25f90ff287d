"""Typed leaderboard records: the board protocol's view of a run, one row per model, the board itself."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.core.validity import JudgeValidity

BOARD_SCHEMA_VERSION = 3

ControlKind = Literal["null_model", "verbose_padding", "anchor_self", "human"]
Trust = Literal["maintainer", "verified", "self-reported", "control"]
"""How far the board trusts a run (set by the board, never by the run: see :mod:`leaderboard.trust`)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Interval(_Frozen):
    """A point estimate with its 95 % CI (all None when not measured)."""

    value: float | None = None
    low: float | None = None
    high: float | None = None


class Health(_Frozen):
    """Run health shown per row (from the run's ``health`` and its anchor comparison)."""

    parse_rate: float | None = None
    tie_rate: float | None = None
    position_flip_rate: float | None = None
    label_mass: float | None = None


class Row(_Frozen):
    """One model (or control) on the board; every number traceable to a run folder and its fingerprints."""

    model: str
    """Display name: the Hub id, or the folder / served name as given."""
    link: str | None = None
    revision: str | None = None
    model_fingerprint: str
    parameters: int | None = None
    rank: int | None = None
    """None for control rows (never ranked)."""
    rank_low: int | None = None
    rank_high: int | None = None
    bt: Interval = Interval()
    """Bradley–Terry score, anchored (the anchor sits at the board's anchor value)."""
    bt_style: Interval = Interval()
    """The style-controlled Bradley–Terry score (the board's ``style_control``); empty when the board has none."""
    rank_style_low: int | None = None
    rank_style_high: int | None = None
    """The rank range under style control (None for controls and boards without the column)."""
    style: dict[str, float] = Field(default_factory=dict)
    """The candidate's style profile: each feature's mean over its replies (empty for a schema-2 run)."""
    win_rate: Interval = Interval()
    """Win rate vs the anchor (ties ½) with its bootstrap CI."""
    lc_win_rate: Interval = Interval()
    rubric: dict[str, Interval] = Field(default_factory=dict)
    mean_words: float | None = None
    n_scored: int = 0
    health: Health = Health()
    judge: str
    """The judge's short fingerprint."""
    family_overlap: bool = False
    date: str
    """When the run says it was made (the run's own word; the board orders runs by ``arrived``)."""
    harness_version: str
    trust: Trust
    anchor_only: bool = False
    """Rated against the anchor only (self-reported runs and controls): it moves no other model's rating."""
    disputed: bool = False
    """``leaderboard verify`` re-judged the submission and its claim did not hold: the row shows the board's
    re-judged numbers, as self-reported."""
    arrived: str | None = None
    """When the board first saw the run (its ledger)."""
    control: ControlKind | None = None
    run_id: str
    """The run folder's id on the board (``<org>__<model>/<run>``): per-model results live under it."""

    @property
    def trust_label(self) -> str:
        """The trust as shown in tables: a self-reported model says it is rated against the anchor only."""
        notes = [n for n, on in (("disputed", self.disputed), ("vs anchor only", self.anchor_only and
                                                                 self.control is None)) if on]
        return f"{self.trust} ({', '.join(notes)})" if notes else self.trust


class StyleCoefficient(_Frozen):
    """What the judge pays for a style feature: rating points per +1 SD of the normalised difference, with CI."""

    feature: str
    points: float
    low: float
    high: float
    sd: float
    """The root mean square of the feature's normalised difference over the board's own battles (what 1 SD is)."""
    varies: bool
    identified: bool = True
    """False: its differences lie (almost) all between models, not within a model's battles — the data cannot tell
    its effect from the ratings, so it is left out of the control (0 points)."""
    within_share: float | None = None


class StyleControl(_Frozen):
    """The board's style-controlled column: which features it holds equal, and what the fit found."""

    features: tuple[str, ...]
    fingerprint: str | None = None
    """The style profile's fingerprint (code version + phrase file) every rated run was counted with."""
    coefficients: list[StyleCoefficient] = Field(default_factory=list)
    ci_method: str | None = None
    refused: str | None = None
    """Why the column is empty (e.g. the board's own runs without a style profile); None when it was fitted."""
    excluded: dict[str, str] = Field(default_factory=dict)
    """Runs not in the column (self-reported ones whose style rows cannot be used), by run id → why."""
    note: str | None = None


class Rejection(_Frozen):
    """A run the board refused, and why."""

    run: str
    reason: str


class Board(_Frozen):
    """The whole leaderboard (``leaderboard.json``)."""

    schema_version: Literal[3] = 3
    name: str
    protocol_hash: str
    judge: str
    anchor: str
    anchor_value: float
    rows: list[Row]
    """Ranked models first (by BT score), then control rows."""
    banner: str | None = None
    """The board's first line when it shows runs whose judge failed its health check (a protocol made with
    ``--allow-unhealthy-judge``): on top of the page and the dataset card, and first in ``warnings``."""
    warnings: list[str] = Field(default_factory=list)
    """Shown at the top of the page: the banner, then e.g. a control row that ties or beats real models."""
    rejected: list[Rejection] = Field(default_factory=list)
    built_at: str
    harness_version: str
    style_control: StyleControl | None = None
    """The style-controlled rating column (None: the protocol asks for none)."""
    judge_validity: JudgeValidity | None = None
    """The judge's agreement with people, from the board's own runs (maintainer / verified / control), if measured."""
    built_from_commit: str | None = None
    """With ``--from-hub``: the board repo's commit the runs were read from; publishing refuses a board that has
    moved on since (another maintainer published in between)."""

    @property
    def notices(self) -> list[str]:
        """The warnings other than the banner (which every front end shows on its own, first)."""
        return [w for w in self.warnings if w != self.banner]
