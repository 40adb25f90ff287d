"""The code behind the lm-eval task YAMLs in tasks/ (referenced there with ``!function``); a leaf module.

Nothing in the harness imports it: lm-eval loads it through the task YAMLs.

- ``*_docs``: lm-eval ``custom_dataset`` loaders; they receive ``--metadata`` (judge, references, dataset, limit)
  and attach each dialogue's reference reply, joined by dialogue id. The dialogues are chosen by the same rule as
  ``empathy eval`` (first ``limit`` of the stable order), and a reference that does not cover them is refused the
  same way — give ``limit`` in ``--metadata``: lm-eval's own ``--limit`` is applied after this check.
- ``*_filter``: lm-eval filters; a filter receives every response of a task at once, so the judge runs in one
  batched call per task.
- ``*_results``: lm-eval ``process_results``; they turn verdicts into numbers averaged with ``mean``. An
  unscored verdict omits its metric for that document, so it is never counted as a loss.

Every document carries the run's settings and the judge's full fingerprint, so ``empathy import-lmeval`` can turn
lm-eval's samples into the same results.json as ``empathy eval``. The judge's sanity probe runs once per judge
while the win-rate documents are built (before any generation: a judge that cannot be reached or loaded stops
the run there); its verdicts ride on one document of each win-rate task, so the import computes the same
``judge_ok`` as ``empathy eval``.
"""

from __future__ import annotations

import atexit
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.io import file_hash
from harness.core.prompts import cut_reply, load_generation_prompt
from harness.core.records import Dialogue, JudgeFingerprint, Judgment, RubricScore
from harness.core.settings import JudgeSettings, TaskSettings, task_settings_from_metadata
from harness.core.urls import public_url
from harness.data.references import check_compatible, load_reference
from harness.data.selection import run_dialogues
from harness.generate.replies import default_decoding
from harness.judge.judge import Judge, PairItem, RubricItem, open_judge
from harness.judge.probe import run_probe
from harness.score.health import order_free_judge
from harness.score.metrics import judgment_metrics, reply_metrics, rubric_metrics

DIALOGUE_FIELDS = ("id", "emotion", "sentiment", "situation", "utterance")
_JUDGES: dict[str, Judge] = {}
_PROBES: dict[str, str] = {}


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


def _dialogues(settings: TaskSettings, metadata: dict[str, Any]) -> tuple[list[Dialogue], str]:
    ids = metadata.get("ids")  # `empathy eval` generating through lm-eval: exactly its dialogues
    dialogues, digest = run_dialogues(settings.dataset, None if ids is not None else settings.limit)
    if ids is not None:
        wanted = set(ids)
        dialogues = [d for d in dialogues if d.id in wanted]
    return dialogues, digest


def gen_docs(**metadata: Any) -> Any:
    """Documents of ``empathy_gen``: the dialogues only."""
    dialogues, _ = _dialogues(task_settings_from_metadata(metadata), metadata)
    return _dataset([_doc(d) for d in dialogues])


def _comparison_docs(name: str, metadata: dict[str, Any]) -> Any:
    settings = task_settings_from_metadata(metadata)
    if name not in settings.references:
        raise HarnessError(
            f"empathy_winrate_vs_{name} needs a reference set: pass --metadata "
            f"'{{\"reference_{name}\": \"FILE\"}}' (build FILE with 'empathy refs build --model MODEL --name {name} "
            f"--output FILE')"
        )
    path = settings.references[name]
    ref = load_reference(path, name=name)
    dialogues, digest = _dialogues(settings, metadata)
    check_compatible(ref, name=name, path=path, prompt_hash=load_generation_prompt().hash, dataset_hash=digest,
                     decoding=default_decoding(), dialogues=dialogues, limit_hint="--metadata '{\"limit\": N}'")
    if ref.manifest.model_identity is None:
        raise HarnessError(f"reference set {name!r} ({path}) records no model fingerprint (built by an older harness): "
                           f"rebuild it with 'empathy refs build --model MODEL --name {name} --output {path}'")
    # what the reference *was* when this run read it: the import records that, not the file as it is later
    run = _run_json(settings, reference=name, reference_file=str(path), reference_file_hash=file_hash(Path(path)),
                    reference_identity=ref.manifest.model_identity.model_dump_json(),
                    reference_backend=ref.manifest.backend, reference_chat_template=str(ref.manifest.chat_template))
    probe = probe_json(settings.judge)
    docs = [_doc(d, reference_response=ref.generations[d.id].response, run=run, probe=probe if i == 0 else "")
            for i, d in enumerate(dialogues)]
    return _dataset(docs)


def probe_json(settings: JudgeSettings) -> str:
    """The judge's sanity-probe verdicts as a JSON list (once per judge per process; cached like every verdict)."""
    key = settings.model_dump_json()
    if key not in _PROBES:
        _PROBES[key] = json.dumps([p.model_dump(mode="json") for p in run_probe(judge_for(settings))])
    return _PROBES[key]


def vs_base_docs(**metadata: Any) -> Any:
    """Documents of ``empathy_winrate_vs_base``: dialogues joined with the base reference set by id."""
    return _comparison_docs("base", metadata)


def vs_direct_docs(**metadata: Any) -> Any:
    """Documents of ``empathy_winrate_vs_direct``: dialogues joined with the direct-distilled reference set."""
    return _comparison_docs("direct", metadata)


def rubric_docs(**metadata: Any) -> Any:
    """Documents of ``empathy_rubric``.

    A judge without rubric scores (a one-output reward model) is refused here, before any reply is generated.
    """
    settings = task_settings_from_metadata(metadata)
    problem = judge_for(settings.judge).rubric_problem()
    if problem:
        raise HarnessError(f"empathy_rubric: {problem} — run the win-rate tasks alone (--tasks "
                           "empathy_winrate_vs_base,empathy_winrate_vs_direct) or give such a judge in --metadata")
    dialogues, _ = _dialogues(settings, metadata)
    run = _run_json(settings, reference="", reference_file="")
    return _dataset([_doc(d, run=run) for d in dialogues])


#: A served judge's full base URL (its query string or user-info may hold a key) by its public form, for this process.
_FULL_URLS: dict[str, str] = {}


def _run_json(settings: TaskSettings, **extra: str) -> str:
    """The run's settings and the judge's fingerprint, carried by every document (lm-eval logs it per sample).

    The judge's base URL is written in its public form (scheme, host, port, path): lm-eval writes documents to disk.
    """
    judge = judge_for(settings.judge)
    shown = settings.judge.model_dump()
    if settings.judge.base_url:
        shown["base_url"] = public_url(settings.judge.base_url)
        _FULL_URLS[shown["base_url"]] = settings.judge.base_url
    return json.dumps({"judge": shown, "judge_fingerprint": judge.fingerprint.model_dump(),
                       "dataset": settings.dataset, "limit": settings.limit, "seed": settings.seed, **extra},
                      sort_keys=True)


def _run_judge(run: dict[str, Any]) -> Judge:
    """The judge a document's run names (its full base URL restored from this process's settings)."""
    settings = dict(run["judge"])
    if settings.get("base_url"):
        settings["base_url"] = _FULL_URLS.get(settings["base_url"], settings["base_url"])
    return judge_for(JudgeSettings(**settings))


def judge_for(settings: JudgeSettings) -> Judge:
    """One judge per settings per process, so the three tasks of a run share one loaded model; closed at exit."""
    key = settings.model_dump_json()
    if key not in _JUDGES:
        if not _JUDGES:
            atexit.register(close_judges)
        _JUDGES[key] = open_judge(settings)
    return _JUDGES[key]


def close_judges() -> None:
    """Free every judge model this process loaded and close their caches."""
    while _JUDGES:
        _, judge = _JUDGES.popitem()
        judge.client.close()


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
    judge = _run_judge(run)
    items = [
        PairItem(dialogue=_dialogue(doc), comparison=f"vs_{run['reference']}", candidate="candidate",
                 reference=run["reference"], candidate_response=reply, reference_response=doc["reference_response"])
        for doc, reply in zip(docs, _replies(resps), strict=True)
    ]
    return [j.model_dump_json() for j in judge.judge_pairs(items)]


def rubric_filter(resps: Sequence[Sequence[str]], docs: Sequence[dict[str, Any]]) -> list[str]:
    """Score every candidate reply on the three dimensions, in one batched call."""
    if not docs:
        return []
    run = json.loads(docs[0]["run"])
    judge = _run_judge(run)
    items = [RubricItem(dialogue=_dialogue(doc), system="candidate", response=reply)
             for doc, reply in zip(docs, _replies(resps), strict=True)]
    return [s.model_dump_json() for s in judge.score_rubric(items)]


def gen_results(doc: dict[str, Any], results: Sequence[str]) -> dict[str, float]:
    """Per-document numbers of ``empathy_gen``: reply length and emptiness."""
    return reply_metrics(results[0] if results else "")


def pairwise_results(doc: dict[str, Any], results: Sequence[str]) -> dict[str, float]:
    """lm-eval ``process_results`` of the win-rate tasks (an order-free judge's documents have no position_flip)."""
    return judgment_metrics(Judgment.model_validate_json(results[0]), order_free=_order_free(doc["run"]))


_ORDER_FREE: dict[str, bool] = {}


def _order_free(run: str) -> bool:
    """Whether the judge a document's run names is order-free (one answer per distinct run settings)."""
    if run not in _ORDER_FREE:
        fingerprint = JudgeFingerprint.model_validate(json.loads(run)["judge_fingerprint"])
        _ORDER_FREE[run] = order_free_judge(fingerprint)
    return _ORDER_FREE[run]


def rubric_results(doc: dict[str, Any], results: Sequence[str]) -> dict[str, float]:
    """lm-eval ``process_results`` of ``empathy_rubric``."""
    return rubric_metrics(RubricScore.model_validate_json(results[0]))
