"""The judge: pairwise verdicts in both orders, rubric scores, parsing, caching.

Pairwise: each (candidate, reference) pair is asked twice, once with each shown first. Per dialogue: the
candidate wins if both orders prefer it, loses if both prefer the reference, and ties otherwise. An answer that
cannot be read is *unscored* (with a reason), never a loss.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
)
from harness.core.records import Dialogue, JudgeIdentity, Judgment, Order, Outcome, PairVerdict, RubricScore
from harness.core.settings import JudgeSettings
from harness.core.ui import progress_bar
from harness.judge.parse import combine_orders, parse_verdict
from harness.llm.base import (
    PROBED_BACKENDS,
    JudgeBackend,
    JudgeRequest,
    NoAnswer,
    check_backend_name,
    make_backend,
)
from harness.llm.cache import JudgeCache, cache_key

#: Tokens a generate-mode judge may write: a short rationale, then the verdict.
GENERATE_MAX_NEW_TOKENS = 96


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
    """Runs pairwise and rubric judgments through a backend, with a cache in front of it."""

    backend: JudgeBackend
    mode: Mode
    cache: JudgeCache
    pairwise: PairwisePrompt = field(default_factory=load_pairwise_prompt)
    rubric: RubricPrompt = field(default_factory=load_rubric_prompt)
    calls: int = 0
    mode_note: str | None = None
    """Why the mode in use differs from the one asked for (e.g. the server returns no log-probabilities)."""
    _requested_mode: Mode | None = None

    @property
    def identity(self) -> JudgeIdentity:
        """What determines this judge's answers."""
        return JudgeIdentity(
            backend=self.backend.name,
            model=self.backend.model_id,
            revision=self.backend.revision,
            mode=self.mode,
            requested_mode=self._requested_mode or self.mode,
            mode_note=self.mode_note,
            pairwise_prompt_version=self.pairwise.version,
            rubric_prompt_version=self.rubric.version,
        )

    def resolve_mode(self) -> Mode:
        """The mode this judge can run: logits needs a server that returns ``top_logprobs``, else generate.

        The probe's answer is cached per endpoint and model, so a re-run makes no request to learn it again.
        """
        if self._requested_mode is not None:
            return self.mode
        self._requested_mode = self.mode
        if self.mode == "logits" and self.backend.name in PROBED_BACKENDS:
            endpoint = str(getattr(self.backend, "endpoint", ""))
            key = cache_key("capability:top_logprobs", self.backend.name, endpoint, self.backend.model_id)
            known = self.cache.peek(key)
            if known is None:
                known = bool(self.backend.supports_logprobs())  # type: ignore[attr-defined]
                self.cache.put_many({key: known})
            if not known:
                self.mode = "generate"
                self.mode_note = (f"logits mode was asked for, but {endpoint} returns no top_logprobs: the judge "
                                  "wrote its verdicts (generate mode)")
        return self.mode

    # -- asking -------------------------------------------------------------------------------------------

    def _key(self, request: JudgeRequest, prompt_version: str, max_new_tokens: int = GENERATE_MAX_NEW_TOKENS) -> str:
        b = self.backend
        parts = [b.name, b.model_id, b.revision, self.mode, prompt_version, request.system, request.user,
                 request.prefill, "|".join(request.labels)]
        if request.history or max_new_tokens != GENERATE_MAX_NEW_TOKENS:  # (keys of plain judge prompts unchanged)
            parts += [str(max_new_tokens), *(t for turn in request.history for t in turn)]
        return cache_key(*parts)

    def ask(
        self, requests: Sequence[JudgeRequest], prompt_version: str, *, max_new_tokens: int = GENERATE_MAX_NEW_TOKENS,
        description: str | None = None,
    ) -> list[tuple[Any, bool]]:
        """Answers (label probabilities or text) for each request, and whether each came from the cache."""
        self.resolve_mode()
        keys = [self._key(r, prompt_version, max_new_tokens) for r in requests]
        cached = self.cache.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k not in cached]
        unique_todo = list({keys[i]: i for i in todo}.values())
        answers: dict[str, Any] = dict(cached)
        if unique_todo:
            sub = [requests[i] for i in unique_todo]
            batches: Iterator[tuple[list[int], list[Any]]]
            if self.mode == "logits":
                batches = self.backend.label_probs(sub)  # type: ignore[assignment]
            else:
                batches = self.backend.generate(sub, max_new_tokens)  # type: ignore[assignment]
            label = description or f"judging ({self.mode}, {self.backend.model_id})"
            with progress_bar(label, total=len(sub)) as advance:
                for idx, outs in batches:
                    self.calls += len(idx)
                    fresh = {keys[unique_todo[j]]: out for j, out in zip(idx, outs, strict=True)}
                    # committed now: an interrupted run keeps this batch; a NoAnswer is never cached
                    self.cache.put_many({k: v for k, v in fresh.items() if not isinstance(v, NoAnswer)})
                    answers.update(fresh)
                    advance(len(idx))
        return [(answers[k], k in cached) for k in keys]

    # -- pairwise -----------------------------------------------------------------------------------------

    def _pair_request(self, dialogue: Dialogue, first: str, second: str) -> JudgeRequest:
        return JudgeRequest(
            system=self.pairwise.system,
            user=self.pairwise.render(dialogue, first, second, self.mode),
            prefill=self.pairwise.verdict_prefix if self.mode == "logits" else "",
            labels=self.pairwise.label_list,
        )

    def _pair_verdict(self, answer: Any, cached: bool, cand_first: bool) -> PairVerdict:
        first, second, tie = self.pairwise.label_list
        cand_label, ref_label = (first, second) if cand_first else (second, first)
        order: Order = "cand_first" if cand_first else "ref_first"
        to_outcome: dict[str, Outcome] = {cand_label: "candidate", ref_label: "reference", tie: "tie"}
        if isinstance(answer, NoAnswer):
            return PairVerdict(order=order, winner=None, raw="", cached=False, unscored_reason=answer.reason)
        if self.mode == "logits":
            probs: dict[str, float] = answer
            if not sum(probs.values()):
                return PairVerdict(order=order, winner=None, raw="", cached=cached,
                                   unscored_reason="no verdict label among the judge's most likely tokens")
            best = max((first, second, tie), key=lambda lab: probs.get(lab, 0.0))
            p_cand = probs.get(cand_label, 0.0) + 0.5 * probs.get(tie, 0.0)
            raw = " ".join(f"{lab}={probs.get(lab, 0.0):.4f}" for lab in (first, second, tie))
            return PairVerdict(order=order, winner=to_outcome[best], p_candidate=p_cand, raw=raw, cached=cached)
        label = parse_verdict(str(answer), (first, second, tie), self.pairwise.verdict_prefix)
        if label is None:
            return PairVerdict(order=order, winner=None, raw=str(answer), cached=cached,
                               unscored_reason="no verdict label in the judge's reply")
        return PairVerdict(order=order, winner=to_outcome[label], raw=str(answer), cached=cached)

    def judge_pairs(self, items: Sequence[PairItem]) -> list[Judgment]:
        """Judge every item in both orders (one batched call for all of them)."""
        self.resolve_mode()
        shown = [(prepare_for_judge(it.candidate_response), prepare_for_judge(it.reference_response)) for it in items]
        requests = []
        for it, ((cand, _), (ref, _)) in zip(items, shown, strict=True):
            requests += [self._pair_request(it.dialogue, cand, ref), self._pair_request(it.dialogue, ref, cand)]
        answers = self.ask(requests, self.pairwise.version)
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
        answers = self.ask(requests, self.pairwise.version)
        return [self._pair_verdict(answer, cached, cand_first=True) for answer, cached in answers]

    # -- rubric -------------------------------------------------------------------------------------------

    def score_rubric(self, items: Sequence[RubricItem]) -> list[RubricScore]:
        """Score every response 1-5 on each dimension; logits mode gives the expected score."""
        self.resolve_mode()
        prepared = [prepare_for_judge(it.response) for it in items]
        requests = []
        for it, (shown, _) in zip(items, prepared, strict=True):
            for dim in DIMENSIONS:
                requests.append(
                    JudgeRequest(
                        system=self.rubric.system,
                        user=self.rubric.render(it.dialogue, shown, dim, self.mode),
                        prefill=self.rubric.verdict_prefix if self.mode == "logits" else "",
                        labels=self.rubric.scores,
                    )
                )
        answers = self.ask(requests, self.rubric.version)
        out = []
        for n, (it, (_, flags)) in enumerate(zip(items, prepared, strict=True)):
            scores: dict[str, float | None] = {}
            raw: dict[str, str] = {}
            for k, dim in enumerate(DIMENSIONS):
                answer, _ = answers[len(DIMENSIONS) * n + k]
                scores[dim], raw[dim] = self._rubric_value(answer)
            out.append(RubricScore(dialogue_id=it.dialogue.id, system=it.system, scores=scores, raw=raw, flags=flags))
        return out

    def _rubric_value(self, answer: Any) -> tuple[float | None, str]:
        labels = self.rubric.scores
        if isinstance(answer, NoAnswer):
            return None, f"unscored: {answer.reason}"
        if self.mode == "logits":
            probs: dict[str, float] = answer
            if not sum(probs.values()):
                return None, "unscored: no score label among the judge's most likely tokens"
            expected = sum(float(lab) * probs.get(lab, 0.0) for lab in labels)
            return expected, " ".join(f"{lab}={probs.get(lab, 0.0):.4f}" for lab in labels)
        label = parse_verdict(str(answer), labels, self.rubric.verdict_prefix)
        return (float(label) if label else None), str(answer)


def _unscored_reason(verdicts: Sequence[PairVerdict]) -> str | None:
    bad = [f"{v.order}: {v.unscored_reason or 'no verdict'}" for v in verdicts if v.winner is None]
    return "; ".join(bad) if bad else None


class LazyBackend:
    """A backend that loads its model on first use, so a fully cached run never loads the judge."""

    def __init__(self, settings: JudgeSettings) -> None:
        self.settings = settings
        self.name = settings.backend
        self.model_id = settings.model
        self.revision = settings.revision
        self._backend: JudgeBackend | None = None
        self._last_stats: dict[str, Any] = {}

    @property
    def loaded(self) -> bool:
        """Whether the model has been loaded."""
        return self._backend is not None

    @property
    def endpoint(self) -> str | None:
        """The server URL of an HTTP backend (None for local models)."""
        if self.settings.backend in PROBED_BACKENDS:
            from harness.llm.openai import OPENAI_URL, chat_completions_url

            return chat_completions_url(self.settings.base_url or OPENAI_URL)
        return None

    def _get(self) -> JudgeBackend:
        if self._backend is None:
            self._backend = make_backend(self.settings)
        return self._backend

    def supports_logprobs(self) -> bool:
        """See :meth:`harness.llm.openai.OpenAIBackend.supports_logprobs`."""
        return bool(self._get().supports_logprobs())  # type: ignore[attr-defined]

    def stats(self) -> dict[str, Any]:
        """Backend counters for the manifest (HTTP backends: requests, retries, failures)."""
        stats = getattr(self._backend, "stats", None)
        return dict(stats()) if callable(stats) else dict(self._last_stats)

    def label_probs(self, requests: Sequence[JudgeRequest]) -> Iterator[tuple[list[int], list[Any]]]:
        """See :class:`JudgeBackend`."""
        return self._get().label_probs(requests)

    def generate(self, requests: Sequence[JudgeRequest], max_new_tokens: int) -> Iterator[tuple[list[int], list[Any]]]:
        """See :class:`JudgeBackend`."""
        return self._get().generate(requests, max_new_tokens)

    def close(self) -> None:
        """Free the model if it was loaded."""
        if self._backend is not None:
            self._last_stats = self.stats()
            self._backend.close()
            self._backend = None


def open_judge(settings: JudgeSettings) -> Judge:
    """A judge for the given settings, with its cache; the model loads only if an answer is not cached."""
    check_backend_name(settings.backend)
    return Judge(backend=LazyBackend(settings), mode=settings.mode, cache=JudgeCache(settings.cache_path()))
