"""The board protocol (``board.yaml``): what a run must match to be admitted, and the check that says why not.

A run is admitted only when it was made on the board's dataset (by hash), with the board's generation prompt
and decoding, judged by the board's judge (its full fingerprint: model identity, prompts, mode, labels, decoding,
dtype, parser) against the board's anchor system (by model fingerprint), with enough scored dialogues and every
comparison and rubric dimension the board shows, and by a judge that can tell replies apart (``health.judge_ok`` in
results.json: the sanity probe, position bias, tie-label share, label mass and flip rate) unless the board was made
with ``--allow-unhealthy-judge``. Anything else is refused, naming the field that differs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.core.errors import HarnessError, validation_problems
from harness.core.io import load_config, short_hash
from harness.core.prompts import DIMENSIONS
from harness.core.records import FINGERPRINT, Decoding, RunResult
from harness.score.health import ALLOW_FLAG, UNHEALTHY
from harness.score.style import CONTROL_FEATURES, FEATURES

#: The style features a new board holds equal in its style-controlled column (``leaderboard init --style-control``).
DEFAULT_STYLE_CONTROL = CONTROL_FEATURES


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetRule(_Config):
    """The board's dialogues."""

    spec: str = Field(description="the --dataset value, e.g. bundled or ed:test@<revision>")
    hash: str = Field(description="the dataset hash every run must carry")
    n: int = Field(ge=1, description="how many dialogues every run evaluates (the --limit)")
    ids_hash: str = Field(description="hash of the dialogue ids in order: the same dialogues for every model")


class AnchorRule(_Config):
    """The system every model is compared with."""

    comparison: str = Field(description="the run's comparison against the anchor, e.g. vs_base")
    model_fingerprint: str = Field(pattern=FINGERPRINT, description="the anchor reference's model fingerprint")
    name: str = Field(description="how the anchor is shown on the board")
    reference_file_hash: str = Field(description="hash of the anchor's reference set file: the same replies for all")
    value: float = Field(default=1000.0, description="the anchor's fixed Bradley–Terry score")


class BoardProtocol(_Config):
    """Everything a run must match to be on the board."""

    name: str
    dataset: DatasetRule
    generation_prompt_hash: str
    decoding: Decoding
    judge_fingerprint: str = Field(pattern=FINGERPRINT)
    anchor: AnchorRule
    min_scored: int = Field(default=20, ge=1, description="fewest scored dialogues vs the anchor")
    min_parse_rate: float = Field(default=0.9, ge=0, le=1, description="judge health: verdicts read")
    max_flip_rate: float = Field(default=0.6, ge=0, le=1, description="judge health: position flips")
    min_label_mass: float = Field(default=0.5, ge=0, le=1, description="judge health (logits mode): label mass")
    require_judge_ok: bool = Field(default=True, description="judge health: refuse runs whose judge failed its "
                                   "health check (sanity probe, position bias, tie share, label mass, flips)")
    comparisons: tuple[str, ...] = Field(default=(), description="comparisons shown besides the anchor's")
    rubric: tuple[str, ...] = DIMENSIONS
    style_control: tuple[str, ...] | None = Field(
        default=None, description="style features (harness.score.style.FEATURES) the style-controlled rating "
        "column holds equal; absent: the board has no such column")

    @field_validator("style_control")
    @classmethod
    def _known_features(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        import difflib

        for name in value or ():
            if name not in FEATURES:
                close = difflib.get_close_matches(name, FEATURES, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"unknown style feature {name!r}{hint}: the features are {', '.join(FEATURES)}")
        if value is not None and (not value or len(set(value)) != len(value)):
            raise ValueError("list each style feature once, at least one (leave style_control out for no column)")
        return value

    @model_validator(mode="after")
    def _echo_only_where_recounted(self) -> BoardProtocol:
        if self.style_control and "echo" in self.style_control and self.dataset.spec != "bundled":
            raise ValueError("style_control: 'echo' is recounted from a run's replies only on the bundled dialogues "
                             f"(this board's are {self.dataset.spec!r}): a submission could set it freely — leave "
                             "it out")
        return self

    @property
    def hash(self) -> str:
        """Identifies the protocol (shown on the board and in leaderboard.json).

        A protocol without ``style_control`` hashes as it did before the field existed (its board keeps its ledger).
        """
        return short_hash(self.model_dump_json(exclude={"style_control"} if self.style_control is None else None))


def load_protocol(path: Path | str) -> BoardProtocol:
    """Read and validate ``board.yaml``; a bad file is a clear error naming the key."""
    return load_config(Path(path), BoardProtocol, "board protocol")


def protocol_from_run(result: RunResult, *, name: str, anchor: str = "base", anchor_name: str | None = None,
                      min_scored: int = 20, require_judge_ok: bool = True,
                      style_control: tuple[str, ...] | None = DEFAULT_STYLE_CONTROL, **health: float) -> BoardProtocol:
    """A protocol that admits runs made exactly like ``result`` (``empathy leaderboard init``)."""
    comparison = f"vs_{anchor}"
    if comparison not in result.comparisons:
        raise HarnessError(f"the run has no comparison {comparison!r} (it has {sorted(result.comparisons)}); "
                           "name the anchor reference with --anchor")
    p = result.provenance
    try:
        return _protocol(result, p, name, comparison, anchor, anchor_name, min_scored,
                         {**health, "require_judge_ok": require_judge_ok, "style_control": style_control})
    except ValidationError as exc:
        raise HarnessError(f"cannot make a board protocol: {validation_problems(exc)}") from exc


def _protocol(result: RunResult, p: Any, name: str, comparison: str, anchor: str, anchor_name: str | None,
              min_scored: int, health: dict[str, Any]) -> BoardProtocol:
    return BoardProtocol(
        name=name,
        dataset=DatasetRule(spec=p.dataset, hash=p.dataset_hash, n=p.n_dialogues, ids_hash=p.dialogue_ids_hash),
        generation_prompt_hash=p.generation_prompt_hash,
        decoding=p.decoding,
        judge_fingerprint=result.judge.fingerprint,
        anchor=AnchorRule(comparison=comparison, model_fingerprint=result.comparisons[comparison].reference_model.fingerprint,
                          name=anchor_name or Path(result.comparisons[comparison].reference_model.name).name,
                          reference_file_hash=p.systems[anchor].reference_file_hash or ""),
        min_scored=min_scored,
        **health,
        comparisons=tuple(c for c in result.comparisons if c != comparison),
        rubric=tuple(d for d, s in result.rubric.items() if s.n_scored),  # none from a one-output reward judge
    )


#: The ``leaderboard init`` option that sets each field a run can fall short of, for the error naming them.
INIT_OPTIONS = (("scored dialogues", "--min-scored"), ("judge health: parse rate", "--min-parse-rate"),
                ("judge health: position-flip rate", "--max-flip-rate"),
                ("judge health: label mass", "--min-label-mass"), (f"judge health: {UNHEALTHY}", ALLOW_FLAG))


def check_own_run(result: RunResult, protocol: BoardProtocol, run: Path | str) -> None:
    """Refuse a protocol that would refuse the very run it is made from (``leaderboard init``), naming each field.

    Raises:
        HarnessError: every field the run falls short of, with the option that sets it.
    """
    problems = []
    for problem in mismatches(result, protocol):
        option = next((o for prefix, o in INIT_OPTIONS if problem.startswith(prefix)), None)
        problems.append(f"{problem} (set by {option})" if option else problem)
    if problems:
        raise HarnessError(f"board protocol not written: it would refuse its own run {run} — {'; '.join(problems)}. "
                           "Loosen the options named, or make the board from a run made as every board run will be")


def save_protocol(protocol: BoardProtocol, path: Path) -> None:
    """Write ``board.yaml``."""
    from harness.core.io import write_atomic

    data = json.loads(protocol.model_dump_json())
    write_atomic(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def mismatches(result: RunResult, protocol: BoardProtocol) -> list[str]:
    """Why a run may not be on the board (empty when it may), each naming the field, the run's value and the board's."""
    p, out = result.provenance, []

    def differ(field: str, run: object, board: object) -> None:
        if run != board:
            out.append(f"{field}: the run has {run!r}, the board requires {board!r}")

    differ("dataset hash", p.dataset_hash, protocol.dataset.hash)
    differ("number of dialogues", p.n_dialogues, protocol.dataset.n)
    differ("dialogue ids (hash)", p.dialogue_ids_hash, protocol.dataset.ids_hash)
    differ("generation prompt hash", p.generation_prompt_hash, protocol.generation_prompt_hash)
    differ("decoding", p.decoding.model_dump(mode="json"), protocol.decoding.model_dump(mode="json"))
    differ("judge fingerprint", result.judge.fingerprint, protocol.judge_fingerprint)
    if protocol.require_judge_ok and not result.health.judge_ok:
        out.append(f"judge health: {UNHEALTHY}: {result.health.judge_problem}")
    anchor = result.comparisons.get(protocol.anchor.comparison)
    if anchor is None:
        out.append(f"anchor comparison: the run has no {protocol.anchor.comparison!r} (it has "
                   f"{sorted(result.comparisons)})")
    else:
        differ("anchor model fingerprint", anchor.reference_model.fingerprint, protocol.anchor.model_fingerprint)
        ref = p.systems.get(protocol.anchor.comparison.removeprefix("vs_"))
        differ("anchor reference file hash", ref.reference_file_hash if ref else None,
               protocol.anchor.reference_file_hash)
        h = result.health
        if anchor.parse_rate is None or anchor.parse_rate < protocol.min_parse_rate:
            out.append(f"judge health: parse rate {anchor.parse_rate} vs the anchor, the board requires at least "
                       f"{protocol.min_parse_rate:g}")
        if not h.order_free and (h.position_flip_rate is None or h.position_flip_rate > protocol.max_flip_rate):
            flips = "not measured" if h.position_flip_rate is None else f"{h.position_flip_rate:.3f}"
            out.append(f"judge health: position-flip rate {flips}, the board allows at most "
                       f"{protocol.max_flip_rate:g}")
        if h.label_mass_mean is not None and h.label_mass_mean < protocol.min_label_mass:
            out.append(f"judge health: label mass {h.label_mass_mean:.3f}, the board requires at least "
                       f"{protocol.min_label_mass:g}")
        if anchor.n_scored < protocol.min_scored:
            out.append(f"scored dialogues: {anchor.n_scored} vs the anchor, the board requires at least "
                       f"{protocol.min_scored}")
    missing = [c for c in protocol.comparisons if c not in result.comparisons]
    if missing:
        out.append(f"comparisons: the run lacks {missing}")
    dims = [d for d in protocol.rubric if result.rubric.get(d) is None or result.rubric[d].mean is None]
    if dims:
        out.append(f"rubric: the run has no scores for {dims}")
    return out
