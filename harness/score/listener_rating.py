"""A judge's 1-5 empathy rating of the listener in whole conversations (``validate-judge --experts``).

Two kinds of judge:

- an LLM :class:`~harness.judge.judge.Judge`: the prompt ``prompts/judge/listener.yaml`` shows the situation and the
  whole conversation (``Speaker:`` / ``Listener:`` lines) and asks for one score. Logits mode: the judge's score is
  the expected value Σ k·P(k) over the labels 1-5 (renormalised over them); generate mode: the last 'Score: N'.
  Integer rating for κ: the score rounded half up (⌊x + ½⌋), so 2.5 → 3.
- a judge with ``score_texts(pairs: Sequence[tuple[str, str]]) -> list[float | None]`` (reward models, e.g.
  :class:`~harness.judge.reward.RewardJudge`, checked before the LLM case): each
  conversation is one (context, reply) pair, context = the situation and the whole conversation as the same
  transcript, reply = the listener's turns joined by newlines. Raw scores are on no fixed scale, so the integer
  rating is the *quintile* of the judge's own scores over the scored conversations: with average ranks r (1…n),
  rating = 1 + ⌊5·(r − 1) / n⌋ — a fifth of the conversations per step, order kept, nothing learnt from any
  human rating (κ then also depends on how far the experts' own spread differs from even fifths).

Spearman uses the judge's continuous score (expected value, or raw score); κ uses the integer rating. A
conversation the judge could not rate is left out of the judge's rows (counted in ``n_unscored``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from harness.core.prompts import ListenerPrompt, load_listener_prompt, prepare_for_judge, prompt_file_hash
from harness.judge.judge import Judge
from harness.judge.parse import parse_verdict
from harness.llm.base import JudgeRequest, NoAnswer
from harness.score.agreement import rankdata

LLM_RULE = "LLM judge: expected score over labels 1-5 (logits) or the written score (generate); rating = ⌊score + ½⌋"
SCORER_RULE = ("score_texts judge: rating = the quintile of the judge's own raw score over the scored conversations, "
               "1 + ⌊5·(average rank − 1) / n⌋")


@runtime_checkable
class TextScorer(Protocol):
    """A judge that scores (context, reply) texts on its own scale (higher = more empathetic)."""

    def score_texts(self, pairs: Sequence[tuple[str, str]]) -> list[float | None]:
        """One score per pair; None where it cannot score one."""
        ...


@dataclass(frozen=True)
class ListenerRating:
    """The judge's rating of one conversation's listener: continuous score, 1-5 integer, or why there is none."""

    conv_id: str
    score: float | None
    rating: int | None
    unscored_reason: str | None = None
    probs: dict[str, float] | None = None
    """Logits mode: P(label) over 1-5 (no text is kept: the conversations are not ours to copy)."""


def transcript(turns: Sequence[tuple[str, str]], *, escape: bool = True) -> str:
    """'Speaker: …' / 'Listener: …' lines; ``escape``: each turn as an LLM judge sees it (markers escaped)."""
    return "\n".join(f"{role.capitalize()}: {prepare_for_judge(text)[0] if escape else text}" for role, text in turns)


def round_half_up(x: float) -> int:
    """⌊x + ½⌋, clipped to 1-5."""
    return min(5, max(1, math.floor(x + 0.5)))


def quintile_ratings(scores: Sequence[float]) -> list[int]:
    """1 + ⌊5·(r − 1)/n⌋ for the average ranks r of ``scores`` (equal scores get the same rating)."""
    n = len(scores)
    return [min(5, 1 + math.floor(5 * (r - 1) / n)) for r in rankdata(scores)] if n else []


def rate_listeners(judge: Judge | TextScorer, conversations: Sequence[Any]) -> tuple[list[ListenerRating], dict[str, Any]]:
    """Ratings of each conversation (objects with conv_id, situation, turns) and how they were made."""
    if isinstance(judge, TextScorer):  # first: a reward-model judge is also a Judge, but answers no prompts
        return _rate_with_scorer(judge, conversations), {"kind": "score_texts", "rule": SCORER_RULE}
    if isinstance(judge, Judge):
        prompt = load_listener_prompt()
        return _rate_with_llm(judge, prompt, conversations), {
            "kind": "llm", "rule": LLM_RULE, "mode": judge.mode,
            "prompt_version": prompt.version, "prompt_hash": prompt_file_hash(prompt)}
    raise TypeError(f"{type(judge).__name__} is neither a Judge nor has score_texts()")


def _rate_with_llm(judge: Judge, prompt: ListenerPrompt, conversations: Sequence[Any]) -> list[ListenerRating]:
    judge.resolve_mode()
    logits = judge.mode == "logits"
    labels = prompt.scores
    requests = [JudgeRequest(system=prompt.system, user=prompt.render(c.situation, transcript(c.turns), judge.mode),
                             prefill=prompt.verdict_prefix if logits else "", labels=labels) for c in conversations]
    out = []
    for c, (answer, _) in zip(conversations, judge.ask(requests, "listener ratings"), strict=True):
        if isinstance(answer, NoAnswer):
            out.append(ListenerRating(c.conv_id, None, None, answer.reason))
            continue
        if not logits:
            label = parse_verdict(str(answer), labels, prompt.verdict_prefix)
            out.append(ListenerRating(c.conv_id, float(label), int(label)) if label else
                       ListenerRating(c.conv_id, None, None, "no 'Score: N' in the judge's reply"))
            continue
        probs = {lab: float(answer.get(lab, 0.0)) for lab in labels}
        total, mass = sum(probs.values()), answer.get("_mass")
        if not total:
            out.append(ListenerRating(c.conv_id, None, None, "no score label among the judge's most likely tokens"))
        elif mass is not None and mass < judge.min_label_mass:
            out.append(ListenerRating(c.conv_id, None, None, f"label mass {mass:.3f} is below {judge.min_label_mass:g}",
                                      probs))
        else:
            expected = sum(float(lab) * p for lab, p in probs.items()) / total
            out.append(ListenerRating(c.conv_id, expected, round_half_up(expected), None, probs))
    return out


def _rate_with_scorer(judge: TextScorer, conversations: Sequence[Any]) -> list[ListenerRating]:
    pairs = [(f"Situation: {c.situation}\n{transcript(c.turns, escape=False)}",
              "\n".join(t for role, t in c.turns if role == "listener")) for c in conversations]
    raw = judge.score_texts(pairs)
    if len(raw) != len(pairs):
        raise ValueError(f"score_texts returned {len(raw)} scores for {len(pairs)} conversations")
    scored = [(c.conv_id, float(s)) for c, s in zip(conversations, raw, strict=True)
              if s is not None and math.isfinite(s)]
    rating = dict(zip([cid for cid, _ in scored], quintile_ratings([s for _, s in scored]), strict=True))
    score = dict(scored)
    return [ListenerRating(c.conv_id, score[c.conv_id], rating[c.conv_id]) if c.conv_id in score
            else ListenerRating(c.conv_id, None, None, "the judge gave no score") for c in conversations]
