"""``empathy distill``: teacher replies with a strategy, cleaned and checked, as SFT and DPO datasets.

The strategies are the paper's (:mod:`harness.train.strategies`); ``direct`` can also take replies that already
exist in a Welivita & Pu CSV (e.g. the GPT-4 column) with ``replies_from``, without any teacher call.

Every record is keyed by dialogue id (never joined by position). Dialogues of the evaluation set are refused before
any teacher call, by id and by normalised text, with a report. Teacher output is cleaned and rejected with a counted
reason (:mod:`harness.train.clean`; plus unchanged, duplicate, teacher failure).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.core.errors import HarnessError, did_you_mean
from harness.core.io import file_hash, write_json, write_jsonl
from harness.core.prompts import load_generation_prompt, load_teacher_prompts
from harness.core.records import Dialogue
from harness.core.settings import JudgeSettings
from harness.data.sources import WELIVITA_SOURCES, DatasetSpec, welivita_records
from harness.train.clean import clean_reply, normalise, overlap_guard
from harness.train.strategies import STRATEGIES, Record, StartFrom, distil_with_teacher
from harness.train.teacher import Teacher

__all__ = ["STRATEGIES", "DistillConfig", "Rejected", "StartFrom", "run_distill"]

Rejected = Literal["auto", "original", "base"]


@dataclass
class DistillConfig:
    """What ``empathy distill`` needs."""

    strategy: str
    dataset: str
    output: Path
    teacher: JudgeSettings | None = None
    replies_from: str | None = None
    start_from: StartFrom = "auto"
    rejected: Rejected = "auto"
    """DPO's rejected reply: ``original`` (the reply before improvement; for ``direct`` the dataset's own reply),
    ``base`` (the base SLM's own reply) or ``auto`` (original where there is one, else the base SLM's, if given)."""
    base: Any = None
    """A :class:`harness.generate.replies.ModelSpec` of the base SLM (for ``rejected`` base / auto)."""
    eval_dataset: str = "bundled"
    eval_limit: int | None = None
    limit: int | None = None
    teacher_prompts: str | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise HarnessError(f"unknown strategy {self.strategy!r}: {did_you_mean(self.strategy, STRATEGIES)}")
        if self.replies_from is not None:
            if self.strategy != "direct":
                raise HarnessError("--replies-from works with --strategy direct only (the replies are taken as is)")
            if self.replies_from not in WELIVITA_SOURCES:
                raise HarnessError(f"--replies-from {self.replies_from!r}: use one of {', '.join(WELIVITA_SOURCES)}")
            if DatasetSpec.parse(self.dataset).kind != "welivita":
                raise HarnessError("--replies-from needs a Welivita & Pu CSV: --dataset welivita:FILE.csv")
        elif self.teacher is None:
            raise HarnessError("a teacher is needed: --teacher MODEL (or, for --strategy direct on a Welivita & Pu "
                               "CSV, --replies-from chatgpt_empathy to use its existing replies)")
        if self.rejected == "base" and self.base is None:
            raise HarnessError("--rejected base needs --base MODEL (the SLM whose own replies are the rejected ones)")


def _dialogues(cfg: DistillConfig) -> tuple[list[Dialogue], dict[str, Any]]:
    from harness.data.sources import interleave_by_emotion, load_dialogues

    train = load_dialogues(cfg.dataset)
    evaluation = load_dialogues(cfg.eval_dataset)
    if cfg.eval_limit:
        evaluation = interleave_by_emotion(evaluation)[: cfg.eval_limit]
    if not train:
        raise HarnessError(f"the training dataset {cfg.dataset} holds no dialogues: give a file with dialogue rows")
    kept, report = overlap_guard(train, evaluation)
    report["eval_dataset"] = cfg.eval_dataset
    if not kept:
        raise HarnessError(
            f"all {len(train)} dialogues of {cfg.dataset} are in the evaluation set ({cfg.eval_dataset}"
            f"{f', first {cfg.eval_limit}' if cfg.eval_limit else ''}); distil from other data or narrow "
            "--eval-dataset / --eval-limit"
        )
    kept = interleave_by_emotion(kept)
    return (kept[: cfg.limit] if cfg.limit else kept), report


def run_distill(cfg: DistillConfig) -> dict[str, Any]:
    """Distil, clean, build the SFT and DPO sets; write them with ``records.jsonl`` and ``report.json``."""
    from harness.core.ui import console

    dialogues, guard = _dialogues(cfg)
    records = {d.id: Record(d) for d in dialogues}
    max_words = load_generation_prompt().max_words
    prompts = load_teacher_prompts(cfg.teacher_prompts)
    teacher = Teacher(cfg.teacher) if cfg.teacher is not None and cfg.replies_from is None else None
    console.print(f"[bold]distil[/]: {len(dialogues)} dialogues, strategy {cfg.strategy} "
                  f"({guard['refused']} refused as evaluation dialogues)")
    try:
        if cfg.replies_from is not None:
            _from_dataset(cfg, records)
        else:
            assert teacher is not None
            distil_with_teacher(cfg.strategy, cfg.start_from, teacher, prompts, list(records.values()), max_words)
        teacher_info = teacher.identity if teacher else None
    finally:
        if teacher is not None:
            teacher.close()
    _dedupe(records.values())
    accepted = [r for r in records.values() if r.reply]
    if not accepted:
        reasons = Counter(r.reason for r in records.values())
        raise HarnessError(f"every teacher reply was rejected ({dict(reasons)}); see the cleaning rules in the README")
    dpo, dpo_skipped = _dpo_pairs(cfg, accepted)
    sft = [_sft_row(r) for r in accepted]

    out = cfg.output
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "records.jsonl", [r.as_json() for r in records.values()])
    write_jsonl(out / "sft" / "train.jsonl", sft)
    write_jsonl(out / "dpo" / "train.jsonl", dpo)
    report = {
        "schema_version": 1,
        "strategy": cfg.strategy,
        "dataset": cfg.dataset,
        "replies_from": cfg.replies_from,
        "start_from": cfg.start_from,
        "rejected_from": cfg.rejected,
        "teacher": teacher_info,
        "teacher_prompts_version": prompts.version,
        "generation_prompt_version": load_generation_prompt().version,
        "n_dialogues": len(dialogues),
        "n_accepted": len(accepted),
        "rejected": dict(Counter(r.reason for r in records.values() if r.reason)),
        "repaired": dict(Counter(x for r in records.values() for x in r.repairs)),
        "start_sources": dict(Counter(r.start_source for r in records.values() if r.start_source)),
        "overlap_guard": guard,
        "sft": {"n": len(sft), "file": "sft/train.jsonl", "sha256": file_hash(out / "sft" / "train.jsonl")},
        "dpo": {"n": len(dpo), "file": "dpo/train.jsonl", "sha256": file_hash(out / "dpo" / "train.jsonl"),
                "skipped": dpo_skipped},
    }
    write_json(out / "report.json", report)
    return report


def _from_dataset(cfg: DistillConfig, records: dict[str, Record]) -> None:
    spec = DatasetSpec.parse(cfg.dataset)
    rows = {d.id: row for d, row in welivita_records(Path(spec.path or ""), split=spec.split or "all")}
    max_words = load_generation_prompt().max_words
    for rec in records.values():
        raw = (rows[rec.dialogue.id].get(f"response_{cfg.replies_from}") or "").strip()
        rec.raw, rec.start_source = raw, f"dataset:{cfg.replies_from}"
        rec.accept(clean_reply(raw, max_words=max_words))


def _dedupe(records: Any) -> None:
    seen: set[str] = set()
    for rec in records:
        if rec.reply is None:
            continue
        key = normalise(rec.reply)
        if key in seen:
            rec.reject("duplicate")
        seen.add(key)


def _sft_row(rec: Record) -> dict[str, Any]:
    prompt = load_generation_prompt().render(rec.dialogue)
    # the dialogue itself goes with the row: the on-policy round shows it to the judge beside each sampled reply
    return {"dialogue_id": rec.dialogue.id, "dialogue": rec.dialogue.model_dump(mode="json", exclude={"reply"}),
            "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": rec.reply}]}


def _dpo_pairs(cfg: DistillConfig, accepted: list[Record]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    skipped: Counter[str] = Counter()
    losers: dict[str, str] = {}
    if cfg.rejected in ("original", "auto"):
        for r in accepted:
            original = r.start if cfg.strategy != "direct" else r.dialogue.reply
            if original:
                losers[r.dialogue.id] = original
    need_base = [r.dialogue for r in accepted if r.dialogue.id not in losers]
    if need_base and (cfg.rejected == "base" or (cfg.rejected == "auto" and cfg.base is not None)):
        from harness.generate.replies import default_decoding, generate

        gens = generate(cfg.base, need_base, dataset=cfg.dataset, decoding=default_decoding(), system="base")
        losers.update({g.dialogue_id: g.response for g in gens})
    rows = []
    for rec in accepted:
        loser = (losers.get(rec.dialogue.id) or "").strip()
        if not loser:
            skipped["no_rejected_reply"] += 1
            continue
        if normalise(loser) == normalise(rec.reply or ""):
            skipped["chosen_equals_rejected"] += 1
            continue
        prompt = load_generation_prompt().render(rec.dialogue)
        rows.append({"dialogue_id": rec.dialogue.id, "prompt": [{"role": "user", "content": prompt}],
                     "chosen": [{"role": "assistant", "content": rec.reply}],
                     "rejected": [{"role": "assistant", "content": loser}]})
    return rows, dict(skipped)
