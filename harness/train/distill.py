"""``empathy distill``: teacher replies with a strategy, cleaned and checked, as SFT and DPO datasets.

Strategies (the paper's, done as a tool):

- ``direct``: the teacher answers the evaluation's own generation prompt; or, with ``replies_from``, replies that
  already exist in a Welivita & Pu CSV (e.g. the GPT-4 column) are taken without any teacher call;
- ``naive`` / ``all_three`` / ``cognitive`` / ``affective`` / ``compassionate``: the teacher improves a starting
  reply (the dataset's own reply, or the teacher's ``direct`` reply) — without a target, on all three dimensions,
  or on one;
- ``lacking``: the teacher first names the dimension the reply lacks most, then improves that one;
- ``sequential``: one three-turn chat — improve cognitive, then affective, then compassionate; the last reply is kept.

Every record is keyed by dialogue id (never joined by position). Dialogues of the evaluation set are refused before
any teacher call, by id and by normalised text, with a report. Teacher output is cleaned (echoed labels, quotes,
analysis before the reply, trailing notes) and rejected with a counted reason (empty, refusal, analysis only,
over the length limit, unchanged, duplicate, teacher failure).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.core.errors import HarnessError, did_you_mean
from harness.core.io import file_hash, write_json, write_jsonl
from harness.core.prompts import DIMENSIONS, cut_reply, load_generation_prompt, load_teacher_prompts
from harness.core.records import Dialogue
from harness.core.settings import JudgeSettings
from harness.data.sources import WELIVITA_SOURCES, DatasetSpec, welivita_records
from harness.llm.base import JudgeRequest, NoAnswer

STRATEGIES = ("direct", "naive", "all_three", "lacking", "cognitive", "affective", "compassionate", "sequential")
StartFrom = Literal["auto", "dataset", "teacher"]
Rejected = Literal["auto", "original", "base"]
#: Tokens a teacher may write for one reply (replies are ≤ 97 words).
TEACHER_MAX_NEW_TOKENS = 200


# -- cleaning ------------------------------------------------------------------------------------------------

_LABEL = re.compile(  # "Improved response:", "**Reply:**", "Turn 3 reply:", "Here is an improved reply:" …
    r"(?:^|\n)[ \t]*(?:(?:sure|certainly|of course|okay|absolutely)[!.,]?[ \t]+)?[*_#]*[ \t]*"
    r"(?:here(?:'s| is)[^\n:]{0,40}|(?:[\w'-]+[ \t]+){0,3}(?:reply|response|answer|version)"
    r"(?:[ \t]*\([^)\n]{0,40}\))?)[ \t]*[*_]*:[*_]*[ \t]*",
    re.IGNORECASE,
)
_PREAMBLE = re.compile(r"^\s*(?:sure|certainly|of course|okay|ok|absolutely)\b[^\n]{0,60}?[.!:]\s*", re.IGNORECASE)
_ANALYSIS = re.compile(
    r"^\s*(?:the (?:original |listener'?s? )?(?:reply|response)\b|this (?:reply|response)\b|analysis\b|to improve\b|"
    r"the reply (?:lacks|shows)|in (?:the|this) (?:reply|response))",
    re.IGNORECASE,
)
_REFUSAL = re.compile(
    r"\b(?:I can(?:no|')t (?:help|assist|provide|comply|do that|fulfil)|I(?: am|'m) (?:not able|unable) to "
    r"(?:help|assist|provide)|as an AI(?: language model)?\b|I(?: must|'ll have to) decline)",
    re.IGNORECASE,
)
_QUOTES = "\"'“”‘’«»"


def normalise(text: str) -> str:
    """Lower case, no punctuation, single spaces: for duplicate and overlap checks."""
    table = str.maketrans("", "", string.punctuation + "“”‘’«»")
    return " ".join(text.lower().translate(table).split())


@dataclass(frozen=True)
class Cleaned:
    """A cleaned teacher reply, the repairs made, or the reason it was rejected."""

    text: str | None
    repairs: tuple[str, ...] = ()
    reason: str | None = None


def clean_reply(raw: str, *, max_words: int) -> Cleaned:
    """Clean one teacher reply.

    Repairs: echoed labels, wrapping quotes, analysis before a labelled reply, trailing notes. Rejections: empty,
    refusals, analysis without a reply, replies over ``max_words``.
    """
    repairs: list[str] = []
    text = raw.replace("\r\n", "\n").strip()
    if not text:
        return Cleaned(None, reason="empty")
    labels = list(_LABEL.finditer(text))
    if labels:
        last = labels[-1]
        if text[: last.start()].strip() and not _PREAMBLE.fullmatch(text[: last.start()].strip() + " "):
            repairs.append("analysis_before_reply")
        repairs.append("echoed_label")
        text = text[last.end() :].strip()
    elif _PREAMBLE.match(text) and "\n" in text.strip():
        repairs.append("echoed_label")
        text = text[_PREAMBLE.match(text).end() :].strip()  # type: ignore[union-attr]
    if _ANALYSIS.match(text):
        return Cleaned(None, tuple(repairs), reason="analysis")
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        repairs.append("quotes")
        text = text.strip(_QUOTES).strip()
    cut = cut_reply(text)
    if cut != text:
        repairs.append("trailing_text")
        text = cut
    text = text.strip(_QUOTES).strip() if text[:1] in _QUOTES and text[-1:] in _QUOTES else text
    if not text:
        return Cleaned(None, tuple(repairs), reason="empty")
    if _REFUSAL.search(text):
        return Cleaned(None, tuple(repairs), reason="refusal")
    if len(text.split()) > max_words:
        return Cleaned(None, tuple(repairs), reason="too_long")
    return Cleaned(text, tuple(repairs))


# -- the overlap guard ---------------------------------------------------------------------------------------


def dialogue_text_key(d: Dialogue) -> str:
    """Normalised situation + utterance: the same prompt under another id is still the same prompt."""
    return normalise(f"{d.situation} {d.utterance}")


def overlap_guard(train: Sequence[Dialogue], evaluation: Sequence[Dialogue]) -> tuple[list[Dialogue], dict[str, Any]]:
    """Training dialogues minus any in the evaluation set (same id, or same normalised text), and a report."""
    ids = {d.id for d in evaluation}
    texts = {dialogue_text_key(d) for d in evaluation}
    kept, by_id, by_text = [], [], []
    for d in train:
        if d.id in ids:
            by_id.append(d.id)
        elif dialogue_text_key(d) in texts:
            by_text.append(d.id)
        else:
            kept.append(d)
    report = {"eval_dialogues": len(evaluation), "checked": len(train), "refused": len(by_id) + len(by_text),
              "refused_by_id": len(by_id), "refused_by_text": len(by_text), "refused_ids": by_id + by_text}
    return kept, report


# -- records -------------------------------------------------------------------------------------------------


@dataclass
class Record:
    """One dialogue's distillation: where it started, what the teacher wrote, what was kept."""

    dialogue: Dialogue
    start: str | None = None
    start_source: str | None = None
    target: str | None = None
    raw: str | None = None
    turns: list[str] = field(default_factory=list)
    reply: str | None = None
    repairs: tuple[str, ...] = ()
    reason: str | None = None

    def reject(self, reason: str) -> None:
        """Drop the reply, with the reason."""
        self.reply, self.reason = None, reason

    def as_json(self) -> dict[str, Any]:
        """The record as a JSON object (records.jsonl)."""
        return {"dialogue_id": self.dialogue.id, "start": self.start, "start_source": self.start_source,
                "target": self.target, "raw": self.raw, "turns": self.turns, "reply": self.reply,
                "repairs": list(self.repairs), "rejected": self.reason}


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


class Teacher:
    """Teacher calls through a judge backend (local HF batched, or an OpenAI-compatible server), cached."""

    def __init__(self, settings: JudgeSettings) -> None:
        from harness.judge.judge import open_judge

        self.judge = open_judge(settings.model_copy(update={"mode": "generate"}))

    def ask(self, requests: Sequence[JudgeRequest], version: str, what: str) -> list[str | NoAnswer]:
        """The teacher's text (or NoAnswer) for each request; cached like judge answers."""
        answers = self.judge.ask(requests, version, max_new_tokens=TEACHER_MAX_NEW_TOKENS,
                                 description=f"teacher: {what} ({self.judge.backend.model_id})")
        return [a if isinstance(a, NoAnswer) else str(a) for a, _ in answers]

    @property
    def identity(self) -> dict[str, Any]:
        """Teacher backend, model and call counts (for the report)."""
        return {"backend": self.judge.backend.name, "model": self.judge.backend.model_id,
                "revision": self.judge.backend.revision, **self.judge.cache.stats(), "calls": self.judge.calls}

    def close(self) -> None:
        """Free the teacher model and close its cache."""
        self.judge.backend.close()
        self.judge.cache.close()


def _dialogues(cfg: DistillConfig) -> tuple[list[Dialogue], dict[str, Any]]:
    from harness.data.sources import interleave_by_emotion, load_dialogues

    train = load_dialogues(cfg.dataset)
    evaluation = load_dialogues(cfg.eval_dataset)
    if cfg.eval_limit:
        evaluation = interleave_by_emotion(evaluation)[: cfg.eval_limit]
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


def _direct_request(d: Dialogue) -> JudgeRequest:
    return JudgeRequest(system="", user=load_generation_prompt().render(d), prefill="")


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
            _from_teacher(cfg, teacher, prompts, records, max_words)
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
        _accept(rec, clean_reply(raw, max_words=max_words))


def _accept(rec: Record, cleaned: Cleaned) -> None:
    rec.repairs = rec.repairs + cleaned.repairs
    if cleaned.text is None:
        rec.reject(cleaned.reason or "rejected")
    elif rec.start is not None and normalise(cleaned.text) == normalise(rec.start):
        rec.reject("unchanged")
    else:
        rec.reply = cleaned.text


def _from_teacher(cfg: DistillConfig, teacher: Teacher, prompts: Any, records: dict[str, Record],
                  max_words: int) -> None:
    recs = list(records.values())
    gen_version = load_generation_prompt().version
    if cfg.strategy == "direct":
        answers = teacher.ask([_direct_request(r.dialogue) for r in recs], gen_version, "direct replies")
        for rec, ans in zip(recs, answers, strict=True):
            rec.start_source = "teacher"
            _teacher_answer(rec, ans, max_words)
        return
    _starting_replies(cfg, teacher, recs, max_words)
    live = [r for r in recs if r.start is not None and r.reason is None]
    system = prompts.system
    if cfg.strategy in ("naive", "all_three", *DIMENSIONS):
        reqs = [JudgeRequest(system, prompts.render_improve(r.dialogue, r.start, cfg.strategy, max_words), "")
                for r in live]
        for rec, ans in zip(live, teacher.ask(reqs, prompts.version, f"{cfg.strategy} improvements"), strict=True):
            rec.target = cfg.strategy
            _teacher_answer(rec, ans, max_words)
    elif cfg.strategy == "lacking":
        diag = [JudgeRequest(system, prompts.render_diagnose(r.dialogue, r.start), "") for r in live]
        for rec, ans in zip(live, teacher.ask(diag, prompts.version, "diagnoses"), strict=True):
            found = re.findall(r"\b(cognitive|affective|compassionate)\b", "" if isinstance(ans, NoAnswer)
                               else ans.lower())
            if isinstance(ans, NoAnswer):
                rec.reject("teacher_failed")
            elif not found:
                rec.raw = ans
                rec.reject("diagnosis_unreadable")
            else:
                rec.target = found[0]
        todo = [r for r in live if r.reason is None]
        reqs = [JudgeRequest(system, prompts.render_improve(r.dialogue, r.start, "lacking", max_words, r.target), "")
                for r in todo]
        for rec, ans in zip(todo, teacher.ask(reqs, prompts.version, "lacking-dimension improvements"), strict=True):
            _teacher_answer(rec, ans, max_words)
    elif cfg.strategy == "sequential":
        _sequential(teacher, prompts, live, max_words)


def _starting_replies(cfg: DistillConfig, teacher: Teacher, recs: list[Record], max_words: int) -> None:
    need_teacher = []
    for rec in recs:
        if cfg.start_from in ("auto", "dataset") and rec.dialogue.reply:
            rec.start, rec.start_source = rec.dialogue.reply, "dataset"
        elif cfg.start_from == "dataset":
            rec.reject("no_dataset_reply")
        else:
            need_teacher.append(rec)
    if not need_teacher:
        return
    answers = teacher.ask([_direct_request(r.dialogue) for r in need_teacher], load_generation_prompt().version,
                          "first replies")
    for rec, ans in zip(need_teacher, answers, strict=True):
        if isinstance(ans, NoAnswer):
            rec.reject("teacher_failed")
            continue
        cleaned = clean_reply(ans, max_words=max_words)
        if cleaned.text is None:
            rec.reject(f"first_reply_{cleaned.reason}")
        else:
            rec.start, rec.start_source = cleaned.text, "teacher"


def _sequential(teacher: Teacher, prompts: Any, live: list[Record], max_words: int) -> None:
    history: dict[str, list[tuple[str, str]]] = {r.dialogue.id: [] for r in live}
    for step, dim in enumerate(DIMENSIONS):
        todo = [r for r in live if r.reason is None]
        reqs = []
        for r in todo:
            user = (prompts.render_improve(r.dialogue, r.start, dim, max_words) if step == 0
                    else prompts.render_next(dim, max_words))
            reqs.append(JudgeRequest(prompts.system, user, "", history=tuple(history[r.dialogue.id])))
        for rec, ans in zip(todo, teacher.ask(reqs, prompts.version, f"sequential turn {step + 1} ({dim})"),
                            strict=True):
            if isinstance(ans, NoAnswer):
                rec.reject("teacher_failed")
                continue
            rec.turns.append(ans)
            cleaned = clean_reply(ans, max_words=max_words)
            if cleaned.text is None:
                rec.raw = ans
                rec.reject(f"turn{step + 1}_{cleaned.reason}")
                continue
            history[rec.dialogue.id].append((reqs[todo.index(rec)].user, cleaned.text))
            if step == len(DIMENSIONS) - 1:
                rec.target = "sequential"
                rec.raw = ans
                _accept(rec, cleaned)


def _teacher_answer(rec: Record, ans: str | NoAnswer, max_words: int) -> None:
    if isinstance(ans, NoAnswer):
        rec.reject("teacher_failed")
        return
    rec.raw = ans
    _accept(rec, clean_reply(ans, max_words=max_words))


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
    return {"dialogue_id": rec.dialogue.id,
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
        from harness.generate.replies import generate
        from harness.lmeval.tasks import default_decoding

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
