"""The judge: pairwise verdicts in both orders, rubric scores, parsing, caching.

Pairwise: each (candidate, reference) pair is asked twice, once with each shown first. Per dialogue: the
candidate wins if both orders prefer it, loses if both prefer the reference, and ties otherwise. An answer that
cannot be read is *unscored* (with a reason), never a loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.core.prompts import (
    DIMENSIONS,
    Mode,
    PairwisePrompt,
    RubricPrompt,
    load_pairwise_prompt,
    load_rubric_prompt,
    prepare_for_judge,
    prompt_file_hash,
)
from harness.core.records import (
    Dialogue,
    JudgeFingerprint,
    Judgment,
    Order,
    Outcome,
    PairVerdict,
    RubricScore,
)
from harness.core.settings import DEFAULT_MIN_LABEL_MASS, GENERATE_MAX_NEW_TOKENS, JudgeSettings
from harness.judge.parse import PARSER_VERSION, combine_orders, parse_verdict
from harness.llm.base import JudgeBackend, JudgeRequest, NoAnswer
from harness.llm.cache import JudgeCache
from harness.llm.client import LLMClient, open_client


@dataclass(frozen=True)
class PairItem:
    """One dialogue of one comparison."""

    dialogue: Dialogue
    comparison: str
    candidate: str
    reference: str
    candidate_response: str
    reference_response: str


@dataclass(frozen=True)
class RubricItem:
    """One response to score on every dimension."""

    dialogue: Dialogue
    system: str
    response: str


@dataclass
class Judge:
    """Pairwise and rubric judgments through a cached, fingerprinted LLM client."""

    client: LLMClient
    pairwise: PairwisePrompt = field(default_factory=load_pairwise_prompt)
    rubric: RubricPrompt = field(default_factory=load_rubric_prompt)
    max_new_tokens: int = GENERATE_MAX_NEW_TOKENS
    """Generate mode: the judge's token budget."""
    min_label_mass: float = DEFAULT_MIN_LABEL_MASS
    """Logits mode: a verdict whose labels hold less probability than this is unscored."""

    @property
    def backend(self) -> JudgeBackend:
        """The model runner."""
        return self.client.backend

    @property
    def cache(self) -> JudgeCache:
        """The answer cache."""
        return self.client.cache

    @property
    def mode(self) -> Mode:
        """The mode in use (after :meth:`resolve_mode`)."""
        return self.client.mode

    @property
    def calls(self) -> int:
        """Requests the model answered in this process (cache hits excluded)."""
        return self.client.calls

    @property
    def mode_note(self) -> str | None:
        """Why the mode in use differs from the one asked for."""
        return self.client.mode_note

    def resolve_mode(self) -> Mode:
        """See :meth:`harness.llm.client.LLMClient.resolve_mode`."""
        return self.client.resolve_mode()

    @property
    def fingerprint(self) -> JudgeFingerprint:
        """Everything that determines this judge's verdicts; its short hash is on every verdict."""
        self.resolve_mode()
        c = self.client
        draft = JudgeFingerprint(
            model=c.identity, backend=c.backend.name, mode=c.mode, requested_mode=c.requested_mode or c.mode,
            mode_note=c.mode_note, pairwise_prompt_version=self.pairwise.version,
            pairwise_prompt_hash=prompt_file_hash(self.pairwise), rubric_prompt_version=self.rubric.version,
            rubric_prompt_hash=prompt_file_hash(self.rubric), pairwise_labels=self.pairwise.label_list,
            rubric_labels=self.rubric.scores, max_new_tokens=self.max_new_tokens if c.mode == "generate" else 1,
            temperature=0.0, dtype=c.dtype, parser_version=PARSER_VERSION, min_label_mass=self.min_label_mass,
            logprobs_probe=c.logprobs_probe, fingerprint="",
        )
        return draft.with_hash()

    def ask(self, requests: Sequence[JudgeRequest], what: str = "verdicts") -> list[tuple[Any, bool]]:
        """Answers for judge requests (see :meth:`harness.llm.client.LLMClient.ask`); ``what`` names the bar's count."""
        from harness.core.ui import short_name

        return self.client.ask(requests, max_new_tokens=self.max_new_tokens,
                               description=f"judging ({self.mode}, {short_name(self.backend.model_id)}): {what}")

    def _low_mass(self, answer: Any) -> tuple[dict[str, float], float | None, str | None]:
        """Label probabilities, their raw mass, and why the answer is unusable (None when it is fine)."""
        probs = {k: float(v) for k, v in dict(answer).items() if not k.startswith("_")}
        mass = answer.get("_mass")
        if not sum(probs.values()):
            return probs, mass, "no verdict label among the judge's most likely tokens"
        if mass is not None and mass < self.min_label_mass:
            return probs, mass, (f"label mass {mass:.3f} is below {self.min_label_mass:g}: the judge was not answering "
                                 "with a verdict label")
        return probs, mass, None

    # -- pairwise -----------------------------------------------------------------------------------------

    def _pair_request(self, dialogue: Dialogue, first: str, second: str) -> JudgeRequest:
        return JudgeRequest(
            system=self.pairwise.system,
            user=self.pairwise.render(dialogue, first, second, self.mode),
            prefill=self.pairwise.verdict_prefix if self.mode == "logits" else "",
            labels=self.pairwise.label_list,
        )

    def _rubric_request(self, dialogue: Dialogue, shown: str, dimension: str) -> JudgeRequest:
        return JudgeRequest(
            system=self.rubric.system,
            user=self.rubric.render(dialogue, shown, dimension, self.mode),
            prefill=self.rubric.verdict_prefix if self.mode == "logits" else "",
            labels=self.rubric.scores,
        )

    def _pair_verdict(self, answer: Any, cached: bool, cand_first: bool) -> PairVerdict:
        first, second, tie = self.pairwise.label_list
        cand_label, ref_label = (first, second) if cand_first else (second, first)
        order: Order = "cand_first" if cand_first else "ref_first"
        to_outcome: dict[str, Outcome] = {cand_label: "candidate", ref_label: "reference", tie: "tie"}
        if isinstance(answer, NoAnswer):
            return PairVerdict(order=order, winner=None, raw="", cached=False, unscored_reason=answer.reason)
        if self.mode == "logits":
            probs, mass, problem = self._low_mass(answer)
            raw = " ".join(f"{lab}={probs.get(lab, 0.0):.4f}" for lab in (first, second, tie))
            if problem:
                return PairVerdict(order=order, winner=None, raw=raw, cached=cached, unscored_reason=problem,
                                   label_mass=mass)
            best = max((first, second, tie), key=lambda lab: probs.get(lab, 0.0))
            p_cand = probs.get(cand_label, 0.0) + 0.5 * probs.get(tie, 0.0)
            return PairVerdict(order=order, winner=to_outcome[best], p_candidate=p_cand, raw=raw, cached=cached,
                               label_mass=mass)
        label = parse_verdict(str(answer), (first, second, tie), self.pairwise.verdict_prefix)
        if label is None:
            return PairVerdict(order=order, winner=None, raw=str(answer), cached=cached,
                               unscored_reason="no verdict label in the judge's reply")
        return PairVerdict(order=order, winner=to_outcome[label], raw=str(answer), cached=cached)

    def judge_pairs(self, items: Sequence[PairItem], what: str = "pairwise verdicts") -> list[Judgment]:
        """Judge every item in both orders (one batched call for all of them); ``what`` labels the progress bar."""
        self.resolve_mode()
        shown = [(prepare_for_judge(it.candidate_response), prepare_for_judge(it.reference_response)) for it in items]
        requests = []
        for it, ((cand, _), (ref, _)) in zip(items, shown, strict=True):
            requests += [self._pair_request(it.dialogue, cand, ref), self._pair_request(it.dialogue, ref, cand)]
        answers = self.ask(requests, what)
        fingerprint = self.fingerprint.fingerprint
        judgments = []
        for n, (item, ((_, cand_flags), (_, ref_flags))) in enumerate(zip(items, shown, strict=True)):
            verdicts = tuple(
                self._pair_verdict(*answers[2 * n + k], cand_first=(k == 0)) for k in range(2)
            )
            flags = tuple(f"candidate_{f}" for f in cand_flags) + tuple(f"reference_{f}" for f in ref_flags)
            judgments.append(
                Judgment(
                    dialogue_id=item.dialogue.id,
                    comparison=item.comparison,
                    candidate=item.candidate,
                    reference=item.reference,
                    verdicts=verdicts,
                    outcome=combine_orders(verdicts),
                    flags=flags,
                    candidate_words=len(item.candidate_response.split()),
                    reference_words=len(item.reference_response.split()),
                    unscored_reason=_unscored_reason(verdicts),
                    judge_fingerprint=fingerprint,
                )
            )
        return judgments

    def position_verdicts(self, shown: Sequence[tuple[Dialogue, str, str]]) -> list[PairVerdict]:
        """One verdict per (dialogue, first reply, second reply), in that order only.

        ``winner`` reads positionally: "candidate" is the first reply, "reference" the second (stress tests).
        """
        self.resolve_mode()
        requests = [
            self._pair_request(d, prepare_for_judge(a)[0], prepare_for_judge(b)[0]) for d, a, b in shown
        ]
        answers = self.ask(requests, "one-order verdicts")
        return [self._pair_verdict(answer, cached, cand_first=True) for answer, cached in answers]

    # -- rubric -------------------------------------------------------------------------------------------

    def rubric_problem(self) -> str | None:
        """Why this judge cannot score rubric dimensions (None: it can; every LLM judge can)."""
        return None

    def score_rubric(self, items: Sequence[RubricItem]) -> list[RubricScore]:
        """Score every response 1-5 on each dimension; logits mode gives the expected score."""
        self.resolve_mode()
        prepared = [prepare_for_judge(it.response) for it in items]
        requests = [self._rubric_request(it.dialogue, shown, dim)
                    for it, (shown, _) in zip(items, prepared, strict=True) for dim in DIMENSIONS]
        answers = self.ask(requests, "rubric scores")
        fingerprint = self.fingerprint.fingerprint
        out = []
        for n, (it, (_, flags)) in enumerate(zip(items, prepared, strict=True)):
            scores: dict[str, float | None] = {}
            raw: dict[str, str] = {}
            masses: dict[str, float | None] = {}
            for k, dim in enumerate(DIMENSIONS):
                answer, _ = answers[len(DIMENSIONS) * n + k]
                scores[dim], raw[dim], masses[dim] = self._rubric_value(answer)
            out.append(RubricScore(dialogue_id=it.dialogue.id, system=it.system, scores=scores, raw=raw, flags=flags,
                                   label_mass=masses if self.mode == "logits" else {}, judge_fingerprint=fingerprint))
        return out

    def _rubric_value(self, answer: Any) -> tuple[float | None, str, float | None]:
        labels = self.rubric.scores
        if isinstance(answer, NoAnswer):
            return None, f"unscored: {answer.reason}", None
        if self.mode == "logits":
            probs, mass, problem = self._low_mass(answer)
            raw = " ".join(f"{lab}={probs.get(lab, 0.0):.4f}" for lab in labels)
            if problem:
                return None, f"unscored: {problem.replace('verdict label', 'score label')} ({raw})", mass
            expected = sum(float(lab) * probs.get(lab, 0.0) for lab in labels)
            return expected, raw, mass
        label = parse_verdict(str(answer), labels, self.rubric.verdict_prefix)
        return (float(label) if label else None), str(answer), None


def _unscored_reason(verdicts: Sequence[PairVerdict]) -> str | None:
    bad = [f"{v.order}: {v.unscored_reason or 'no verdict'}" for v in verdicts if v.winner is None]
    return "; ".join(bad) if bad else None


def open_judge(settings: JudgeSettings) -> Judge:
    """A judge for the given settings, with its cache; the model loads only if an answer is not cached.

    Mode ``reward``: a :class:`~harness.judge.reward.RewardJudge` (a reward model scoring each reply once).
    """
    if settings.mode == "reward":
        from harness.judge.reward import open_reward_judge

        return open_reward_judge(settings)
    return Judge(client=open_client(settings), max_new_tokens=settings.max_new_tokens,
                 min_label_mass=settings.min_label_mass)
