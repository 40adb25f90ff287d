"""The judge sanity probe: pairs with an obvious answer, asked through the run's own judge in both orders.

A caring, specific reply against a dismissive or off-topic one ("ok. anyway, what's for lunch?"). A judge that
does not prefer the caring reply in nearly every order — because it always names the tie label, always picks
the first-shown reply, or reads noise — cannot rank two models either, however real its numbers look. The pairs
are data (``prompts/judge/probe.yaml``); the verdicts go through :meth:`Judge.judge_pairs`, so they are cached
like every other verdict and cost nothing on a re-run.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator

from harness.core.io import load_config
from harness.core.records import Dialogue, JudgeProbe, Sentiment
from harness.core.resources import prompts_dir
from harness.judge.judge import Judge, PairItem

#: The comparison name the probe's judgments carry (never one of a run's ``vs_*`` comparisons).
PROBE_COMPARISON = "probe"


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProbePair(_Config):
    """One probe pair: a situation, the speaker's words, a caring reply and a poor (dismissive/off-topic) one."""

    id: str
    emotion: str
    sentiment: Sentiment
    situation: str
    utterance: str
    caring: str
    poor: str

    def dialogue(self) -> Dialogue:
        """The pair's dialogue, as the pairwise prompt renders it."""
        return Dialogue(id=f"probe:{self.id}", emotion=self.emotion, sentiment=self.sentiment, source="probe",
                        split="probe", situation=self.situation, utterance=self.utterance)


class ProbeSet(_Config):
    """The probe file (prompts/judge/probe.yaml)."""

    version: str
    pairs: tuple[ProbePair, ...]

    @field_validator("pairs")
    @classmethod
    def _enough_distinct(cls, v: tuple[ProbePair, ...]) -> tuple[ProbePair, ...]:
        if len(v) < 4:
            raise ValueError(f"a probe needs at least 4 pairs (it has {len(v)}): fewer cannot tell luck from skill")
        ids = [p.id for p in v]
        if len(set(ids)) != len(ids):
            raise ValueError(f"probe pair ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
        return v


@lru_cache(maxsize=8)
def load_probe(path: str | None = None) -> ProbeSet:
    """The probe pairs (default: prompts/judge/probe.yaml)."""
    return load_config(Path(path) if path else prompts_dir() / "judge" / "probe.yaml", ProbeSet, "judge probe file")


def run_probe(judge: Judge, probe: ProbeSet | None = None) -> list[JudgeProbe]:
    """Ask the judge every probe pair in both orders (the caring reply is the "candidate")."""
    probe = probe or load_probe()
    items = [PairItem(dialogue=p.dialogue(), comparison=PROBE_COMPARISON, candidate="caring", reference="poor",
                      candidate_response=p.caring, reference_response=p.poor) for p in probe.pairs]
    judgments = judge.judge_pairs(items, "sanity-probe verdicts")
    return [JudgeProbe(probe_id=p.id, probe_version=probe.version, verdicts=j.verdicts,
                       judge_fingerprint=j.judge_fingerprint)
            for p, j in zip(probe.pairs, judgments, strict=True)]

