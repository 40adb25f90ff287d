"""Reward-model judges (``--judge-mode reward``): each reply scored once, verdicts from score differences.

A reward model (:mod:`harness.llm.classifier`) reads the text pair (context, reply), where the context is the
dialogue as the judge prompts show it (:data:`CONTEXT_TEMPLATE`), and returns a raw reward r (a model with three
outputs cognitive/affective/compassionate: r is their mean).

- Pairwise verdict: P(candidate) = σ(r_cand − r_ref). The verdict is a **tie** when |P − ½| < tie_band / 2 (or the
  rewards are equal), else the reply with the higher reward wins; P lying exactly on the band's edge is decisive.
  Both orders get this same verdict: the judge is *order-free*, so results report its position bias and flip rate
  as "n/a: order-free judge", never as a measured 0 (:mod:`harness.score.health`).
- Rubric: only a three-output model has per-dimension scores, mapped to 1–5 as 1 + 4·σ(r_dim); any other model
  raises :class:`RubricUnavailable` (``empathy eval`` then records the rubric as not scored, with a note).
- Cost: the raw outputs are cached in the judge cache per (score fingerprint, context text, reply text). The score
  fingerprint is the judge fingerprint without its tie band (the band shapes verdicts, not scores), and the
  dialogue enters through its text, so a reference set is scored once for every candidate: O(replies), not
  O(pairs × 2 orders); :meth:`RewardJudge.score_texts` rates any (context, reply) pair through the same cache.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.core.errors import HarnessError
from harness.core.io import short_hash
from harness.core.prompts import DIMENSIONS, Mode, prepare_for_judge
from harness.core.records import (
    Dialogue,
    JudgeFingerprint,
    Judgment,
    Order,
    Outcome,
    PairVerdict,
    RubricScore,
)
from harness.core.settings import DEFAULT_TIE_BAND, JudgeSettings
from harness.judge.judge import Judge, PairItem, RubricItem
from harness.llm.base import JudgeRequest
from harness.llm.cache import JudgeCache, cache_key
from harness.llm.classifier import MAX_INPUT_TOKENS, RewardModel
from harness.llm.client import LLMClient

#: How the dialogue is shown to the reward model: the situation and speaker lines of the judge prompts.
CONTEXT_TEMPLATE = "Situation: {situation}\nSpeaker: {utterance}"
#: Changes whenever what the reward model reads changes (the fingerprint's ``pairwise_prompt_version``).
INPUT_VERSION = "reward-input-v1"
#: Changes whenever scores become verdicts differently (the fingerprint's ``parser_version``).
VERDICT_RULE = "reward-verdict-v1: P = sigmoid(r_cand - r_ref); tie when |P - 1/2| < tie_band/2 or r_cand == r_ref"
#: Changes whenever a dimension's output becomes a 1-5 score differently (the fingerprint's rubric prompt version).
RUBRIC_RULE = "reward-rubric-v1: score = 1 + 4 * sigmoid(r_dimension)"
NON_FINITE = "the reward model returned a non-finite score"


class RubricUnavailable(HarnessError):
    """The judge cannot score rubric dimensions (a reward model without the three dimension outputs)."""


def sigmoid(x: float) -> float:
    """σ(x) = 1 / (1 + e^−x), without overflow for large |x|."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def reward_verdict(r_cand: float, r_ref: float, tie_band: float) -> tuple[Outcome, float]:
    """The verdict and P(candidate) = σ(r_cand − r_ref) of two rewards (see the module docstring for the rule)."""
    p = sigmoid(r_cand - r_ref)
    if r_cand == r_ref or abs(p - 0.5) < tie_band / 2:
        return "tie", p
    return ("candidate" if r_cand > r_ref else "reference"), p


def rubric_value(r: float) -> float:
    """A dimension's raw output as a 1–5 rubric score: 1 + 4·σ(r)."""
    return 1.0 + 4.0 * sigmoid(r)


def context_text(dialogue: Dialogue) -> str:
    """The context the reward model reads before a reply (:data:`CONTEXT_TEMPLATE`)."""
    return CONTEXT_TEMPLATE.format(situation=dialogue.situation.strip(), utterance=dialogue.utterance.strip())


def overall(outputs: Sequence[float]) -> float:
    """The reward of one reply: the single output, or the mean of the three dimension outputs."""
    return sum(outputs) / len(outputs)


@dataclass
class RewardJudge(Judge):
    """A reward model as a judge: the interface of :class:`~harness.judge.judge.Judge`, one score per reply.

    ``client`` holds the reward model (as its backend) and the judge cache; the LLM judge's prompts and label
    settings are unused (``max_new_tokens`` 0, ``min_label_mass`` 0: there are no labels).
    """

    runner: RewardModel = field(kw_only=True)
    tie_band: float = field(default=DEFAULT_TIE_BAND, kw_only=True)

    def resolve_mode(self) -> Mode:
        """Always ``reward``; checks the model's head (from its config) on first use."""
        _ = self.runner.labels
        return self.client.resolve_mode()

    @property
    def fingerprint(self) -> JudgeFingerprint:
        """Everything that determines this judge's verdicts; the tie band included."""
        self.resolve_mode()
        c = self.client
        return JudgeFingerprint(
            model=c.identity, backend=self.runner.name, mode="reward", requested_mode="reward", mode_note=None,
            pairwise_prompt_version=INPUT_VERSION,
            pairwise_prompt_hash=short_hash(INPUT_VERSION, CONTEXT_TEMPLATE, str(MAX_INPUT_TOKENS)),
            rubric_prompt_version=RUBRIC_RULE.split(":")[0], rubric_prompt_hash=short_hash(RUBRIC_RULE),
            pairwise_labels=(), rubric_labels=self.runner.labels, max_new_tokens=0, temperature=0.0, dtype=c.dtype,
            parser_version=VERDICT_RULE.split(":")[0], min_label_mass=0.0, tie_band=self.tie_band, fingerprint="",
        ).with_hash()

    @property
    def score_fingerprint(self) -> str:
        """What determines a raw score: the judge fingerprint without its tie band (the cache keys' first part)."""
        return self.fingerprint.model_copy(update={"tie_band": None}).content_hash()

    def ask(self, requests: Sequence[JudgeRequest], what: str = "verdicts") -> list[tuple[Any, bool]]:
        """A reward model answers no prompts (use :meth:`score_texts`)."""
        raise HarnessError(f"{self.runner.model_id} is a reward model: it scores replies, it answers no prompts")

    # -- scores -------------------------------------------------------------------------------------------

    def _outputs(self, pairs: Sequence[tuple[str, str]], what: str) -> list[tuple[list[float] | None, bool]]:
        """Raw outputs of each (context, reply) pair (None: not finite) and whether they came from the cache."""
        from harness.core.ui import progress_bar, short_name

        self.resolve_mode()
        score_fp = self.score_fingerprint
        keys = [cache_key("reward-score", score_fp, context, reply) for context, reply in pairs]
        cached = self.cache.get_many(keys)
        todo = list({k: i for i, k in enumerate(keys) if k not in cached}.values())
        found: dict[str, Any] = dict(cached)
        if todo:
            with progress_bar(f"judging (reward, {short_name(self.runner.model_id)}): {what}",
                              total=len(todo)) as advance:
                for idx, outs in self.runner.score([pairs[i] for i in todo]):
                    self.client.calls += len(idx)
                    fresh = {keys[todo[j]]: out for j, out in zip(idx, outs, strict=True)}
                    self.cache.put_many({k: v for k, v in fresh.items() if all(map(math.isfinite, v))})
                    found.update(fresh)
                    advance(len(idx))
        return [(found[k] if all(map(math.isfinite, found[k])) else None, k in cached) for k in keys]

    def score_texts(self, pairs: Sequence[tuple[str, str]]) -> list[float | None]:
        """The raw reward of each (context text, reply text) pair, cached; None where the model gave no number."""
        return [None if out is None else overall(out) for out, _ in self._outputs(pairs, "texts")]

    # -- pairwise -----------------------------------------------------------------------------------------

    def _verdict(self, order: Order, first: tuple[list[float] | None, bool],
                 second: tuple[list[float] | None, bool]) -> PairVerdict:
        """The verdict of ``first`` (as "candidate") against ``second``; ``order`` only labels it."""
        cached = first[1] and second[1]
        if first[0] is None or second[0] is None:
            return PairVerdict(order=order, winner=None, cached=cached, unscored_reason=NON_FINITE)
        r_first, r_second = overall(first[0]), overall(second[0])
        winner, p = reward_verdict(r_first, r_second, self.tie_band)
        return PairVerdict(order=order, winner=winner, p_candidate=p, cached=cached,
                           raw=f"r_candidate={r_first:.4f} r_reference={r_second:.4f}")

    def judge_pairs(self, items: Sequence[PairItem], what: str = "pairwise verdicts") -> list[Judgment]:
        """One score per reply, one verdict per pair, recorded for both orders (they cannot differ)."""
        shown = [(prepare_for_judge(it.candidate_response), prepare_for_judge(it.reference_response)) for it in items]
        pairs = [(context_text(it.dialogue), text) for it, sides in zip(items, shown, strict=True)
                 for text, _ in sides]
        outputs = self._outputs(pairs, what)
        fingerprint = self.fingerprint.fingerprint
        judgments = []
        for n, (item, ((_, cand_flags), (_, ref_flags))) in enumerate(zip(items, shown, strict=True)):
            verdict = self._verdict("cand_first", outputs[2 * n], outputs[2 * n + 1])
            verdicts = (verdict, verdict.model_copy(update={"order": "ref_first"}))
            judgments.append(Judgment(
                dialogue_id=item.dialogue.id, comparison=item.comparison, candidate=item.candidate,
                reference=item.reference, verdicts=verdicts, outcome=verdict.winner,
                flags=tuple(f"candidate_{f}" for f in cand_flags) + tuple(f"reference_{f}" for f in ref_flags),
                candidate_words=len(item.candidate_response.split()),
                reference_words=len(item.reference_response.split()),
                unscored_reason=None if verdict.winner else f"both orders: {verdict.unscored_reason}",
                judge_fingerprint=fingerprint,
            ))
        return judgments

    def position_verdicts(self, shown: Sequence[tuple[Dialogue, str, str]]) -> list[PairVerdict]:
        """One verdict per (dialogue, first reply, second reply): "candidate" is the first (as for LLM judges)."""
        pairs = [(context_text(d), prepare_for_judge(text)[0]) for d, a, b in shown for text in (a, b)]
        outputs = self._outputs(pairs, "one-order verdicts")
        return [self._verdict("cand_first", outputs[2 * n], outputs[2 * n + 1]) for n in range(len(shown))]

    # -- rubric -------------------------------------------------------------------------------------------

    def rubric_problem(self) -> str | None:
        """Why this judge cannot score rubric dimensions (None: it can — three dimension outputs)."""
        labels = self.runner.labels
        if len(labels) == len(DIMENSIONS):
            return None
        return (f"rubric scoring needs an LLM judge (--judge-mode logits or generate) or a reward model with 3 "
                f"outputs named {'/'.join(DIMENSIONS)}; reward model {self.runner.model_id} has {len(labels)} "
                "(one overall reward)")

    def score_rubric(self, items: Sequence[RubricItem]) -> list[RubricScore]:
        """Each dimension's output as 1 + 4·σ(r); raises :class:`RubricUnavailable` without dimension outputs."""
        problem = self.rubric_problem()
        if problem:
            raise RubricUnavailable(problem)
        index = {lab.lower(): i for i, lab in enumerate(self.runner.labels)}
        prepared = [prepare_for_judge(it.response) for it in items]
        outputs = self._outputs([(context_text(it.dialogue), text) for it, (text, _) in zip(items, prepared, strict=True)],
                                "rubric scores")
        fingerprint = self.fingerprint.fingerprint
        out = []
        for it, (_, flags), (values, _) in zip(items, prepared, outputs, strict=True):
            scores: dict[str, float | None] = {d: None if values is None else rubric_value(values[index[d]])
                                               for d in DIMENSIONS}
            raw = {d: f"unscored: {NON_FINITE}" if values is None else f"r={values[index[d]]:.4f}" for d in DIMENSIONS}
            out.append(RubricScore(dialogue_id=it.dialogue.id, system=it.system, scores=scores, raw=raw, flags=flags,
                                   judge_fingerprint=fingerprint))
        return out


def open_reward_judge(settings: JudgeSettings) -> RewardJudge:
    """A reward judge for the settings (hf backend), with the judge cache; the model loads only for uncached scores."""
    runner = RewardModel(settings)
    client = LLMClient(backend=runner, mode="reward", cache=JudgeCache(settings.cache_path()))
    return RewardJudge(client=client, runner=runner, tie_band=settings.tie_band, max_new_tokens=0, min_label_mass=0.0)
