"""The code behind the lm-eval task YAMLs in tasks/ (referenced there with ``!function``).

- ``*_docs``: lm-eval ``custom_dataset`` loaders; they receive ``--metadata`` (judge, references, dataset)
  and attach each dialogue's reference reply, joined by dialogue id.
- ``*_filter``: lm-eval filters; a filter receives every response of a task at once, so the judge runs in one
  batched call per task.
- ``*_results``: lm-eval ``process_results``; they turn verdicts into numbers averaged with ``mean``. An
  unscored verdict omits its metric for that document, so it is never counted as a loss.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from harness.core.prompts import DIMENSIONS, cut_reply, load_generation_prompt
from harness.core.records import Decoding, Dialogue, Judgment, RubricScore
from harness.core.settings import JudgeSettings, TaskSettings, task_settings_from_metadata
from harness.data.references import check_compatible, load_reference
from harness.data.sources import DatasetSpec, dataset_hash, interleave_by_emotion, load_dialogues
from harness.judge.judge import Judge, PairItem, RubricItem, open_judge
from harness.score.stats import position_flip

log = logging.getLogger(__name__)

DIALOGUE_FIELDS = ("id", "emotion", "sentiment", "situation", "utterance")
_JUDGES: dict[str, Judge] = {}


def default_decoding() -> Decoding:
    """Decoding used by every system: greedy, the prompt's stop strings, room for a 97-word reply."""
    return Decoding(max_gen_toks=160, do_sample=False, temperature=0.0, until=load_generation_prompt().stop)


def select_dialogues(spec: str, ids: Sequence[str] | None = None) -> tuple[list[Dialogue], str]:
    """The run's dialogues in their stable (emotion-interleaved) order, and the dataset hash."""
    dialogues = load_dialogues(DatasetSpec.parse(spec))
    digest = dataset_hash(dialogues)
    ordered = interleave_by_emotion(dialogues)
    if ids is not None:
        wanted = set(ids)
        ordered = [d for d in ordered if d.id in wanted]
    return ordered, digest


def _doc(d: Dialogue, **extra: Any) -> dict[str, Any]:
    return {**{k: getattr(d, k) for k in DIALOGUE_FIELDS}, **extra}


def _dataset(docs: list[dict[str, Any]]) -> Any:
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def doc_to_text(doc: dict[str, Any]) -> str:
    """The generation prompt for one document."""
    return load_generation_prompt().render(_dialogue(doc))


def _dialogue(doc: dict[str, Any]) -> Dialogue:
    return Dialogue(**{k: doc[k] for k in DIALOGUE_FIELDS})


def gen_docs(**metadata: Any) -> Any:
    """Documents of ``empathy_gen``: the dialogues only."""
    settings = task_settings_from_metadata(metadata)
    dialogues, _ = select_dialogues(settings.dataset, metadata.get("ids"))
    return _dataset([_doc(d) for d in dialogues])


def _comparison_docs(name: str, metadata: dict[str, Any]) -> Any:
    settings = task_settings_from_metadata(metadata)
    if name not in settings.references:
        raise ValueError(
            f"empathy_winrate_vs_{name} needs a reference set: pass --metadata "
            f"'{{\"reference_{name}\": \"FILE\"}}' (build FILE with 'empathy refs build --model MODEL --name {name} "
            f"--output FILE')"
        )
    path = settings.references[name]
    ref = load_reference(path, name=name)
    dialogues, digest = select_dialogues(settings.dataset, metadata.get("ids"))
    covered = [d for d in dialogues if d.id in ref.generations]
    if metadata.get("ids") is None and 0 < len(covered) < len(dialogues):
        log.warning("reference set %r covers %d of %d dialogues; evaluating those", name, len(covered), len(dialogues))
        dialogues = covered
    check_compatible(
        ref,
        name=name,
        path=path,
        prompt_hash=load_generation_prompt().hash,
        dataset_hash=digest,
        decoding=default_decoding(),
        dialogues=dialogues,
    )
    run = _run_json(settings, reference=name, reference_model=ref.manifest.model)
    docs = [_doc(d, reference_response=ref.generations[d.id].response, run=run) for d in dialogues]
    return _dataset(docs)


def vs_base_docs(**metadata: Any) -> Any:
    """Documents of ``empathy_winrate_vs_base``: dialogues joined with the base reference set by id."""
    return _comparison_docs("base", metadata)


def vs_direct_docs(**metadata: Any) -> Any:
    """Documents of ``empathy_winrate_vs_direct``: dialogues joined with the direct-distilled reference set."""
    return _comparison_docs("direct", metadata)


def rubric_docs(**metadata: Any) -> Any:
    """Documents of ``empathy_rubric``."""
    settings = task_settings_from_metadata(metadata)
    dialogues, _ = select_dialogues(settings.dataset, metadata.get("ids"))
    run = _run_json(settings, reference="", reference_model="")
    return _dataset([_doc(d, run=run) for d in dialogues])


def _run_json(settings: TaskSettings, **extra: str) -> str:
    return json.dumps({"judge": settings.judge.model_dump(), "seed": settings.seed, **extra}, sort_keys=True)


def judge_for(settings: JudgeSettings) -> Judge:
    """One judge per settings per process, so the three tasks of a run share one loaded model."""
    key = settings.model_dump_json()
    if key not in _JUDGES:
        _JUDGES[key] = open_judge(settings)
    return _JUDGES[key]


def _replies(resps: Sequence[Sequence[str]]) -> list[str]:
    return [cut_reply(r[0] if r else "") for r in resps]


def reply_filter(resps: Sequence[Sequence[str]], docs: Sequence[dict[str, Any]]) -> list[str]:
    """Cut each raw generation at the end of its first answer."""
    return _replies(resps)


def pairwise_filter(resps: Sequence[Sequence[str]], docs: Sequence[dict[str, Any]]) -> list[str]:
    """Judge every (candidate, reference) pair of the task in both orders, in one batched call.

    Each verdict is returned as a JSON string, so lm-eval's samples file holds it as parseable JSON.
    """
    if not docs:
        return []
    run = json.loads(docs[0]["run"])
    judge = judge_for(JudgeSettings(**run["judge"]))
    items = [
        PairItem(
            dialogue=_dialogue(doc),
            comparison=f"vs_{run['reference']}",
            candidate="candidate",
            reference=run["reference"],
            candidate_response=reply,
            reference_response=doc["reference_response"],
        )
        for doc, reply in zip(docs, _replies(resps), strict=True)
    ]
    return [j.model_dump_json() for j in judge.judge_pairs(items)]


def rubric_filter(resps: Sequence[Sequence[str]], docs: Sequence[dict[str, Any]]) -> list[str]:
    """Score every candidate reply on the three dimensions, in one batched call."""
    if not docs:
        return []
    run = json.loads(docs[0]["run"])
    judge = judge_for(JudgeSettings(**run["judge"]))
    items = [
        RubricItem(dialogue=_dialogue(doc), system="candidate", response=reply)
        for doc, reply in zip(docs, _replies(resps), strict=True)
    ]
    return [s.model_dump_json() for s in judge.score_rubric(items)]


def gen_results(doc: dict[str, Any], results: Sequence[str]) -> dict[str, float]:
    """Per-document numbers of ``empathy_gen``: reply length and emptiness."""
    reply = results[0] if results else ""
    return {"words": float(len(reply.split())), "empty": float(not reply.strip())}


def judgment_metrics(judgment: Judgment) -> dict[str, float]:
    """The numbers one pairwise judgment contributes (unscored ones omit win_rate and tie)."""
    out: dict[str, float] = {"scored": float(judgment.outcome is not None)}
    if judgment.outcome is not None:
        out["win_rate"] = {"candidate": 1.0, "tie": 0.5, "reference": 0.0}[judgment.outcome]
        out["tie"] = float(judgment.outcome == "tie")
        out["position_flip"] = float(bool(position_flip(judgment)))
    probs = [v.p_candidate for v in judgment.verdicts]
    if probs and all(p is not None for p in probs):
        out["preference"] = sum(p for p in probs if p is not None) / len(probs)
    return out


def rubric_metrics(score: RubricScore) -> dict[str, float]:
    """The numbers one rubric score contributes (unscored dimensions are omitted)."""
    return {dim: float(v) for dim in DIMENSIONS if (v := score.scores.get(dim)) is not None}


def pairwise_results(doc: dict[str, Any], results: Sequence[str]) -> dict[str, float]:
    """lm-eval ``process_results`` of the win-rate tasks."""
    return judgment_metrics(Judgment.model_validate_json(results[0]))


def rubric_results(doc: dict[str, Any], results: Sequence[str]) -> dict[str, float]:
    """lm-eval ``process_results`` of ``empathy_rubric``."""
    return rubric_metrics(RubricScore.model_validate_json(results[0]))
