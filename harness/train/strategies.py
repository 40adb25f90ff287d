"""The distillation strategies done through a teacher: each dialogue's :class:`Record` from start to kept reply.

- ``direct``: the teacher answers the evaluation's own generation prompt;
- ``naive`` / ``all_three`` / ``cognitive`` / ``affective`` / ``compassionate``: the teacher improves a starting
  reply (the dataset's own, or the teacher's ``direct`` reply) — without a target, on all three dimensions, or on one;
- ``lacking``: the teacher first diagnoses the dimension the reply lacks most (its answer ends with a
  ``Lacking: <dimension>`` line), then improves that one;
- ``sequential``: one three-turn chat — improve cognitive, then affective, then compassionate; the last reply is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.core.prompts import DIMENSIONS, TeacherPrompts, load_generation_prompt
from harness.core.records import Dialogue
from harness.llm.base import JudgeRequest, NoAnswer
from harness.train.clean import Cleaned, clean_reply, normalise
from harness.train.teacher import Teacher

STRATEGIES = ("direct", "naive", "all_three", "lacking", "cognitive", "affective", "compassionate", "sequential")
StartFrom = Literal["auto", "dataset", "teacher"]


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

    def accept(self, cleaned: Cleaned) -> None:
        """Keep a cleaned reply, unless it was rejected or is the starting reply unchanged."""
        self.repairs = self.repairs + cleaned.repairs
        if cleaned.text is None:
            self.reject(cleaned.reason or "rejected")
        elif self.start is not None and normalise(cleaned.text) == normalise(self.start):
            self.reject("unchanged")
        else:
            self.reply = cleaned.text

    def as_json(self) -> dict[str, Any]:
        """The record as a JSON object (records.jsonl)."""
        return {"dialogue_id": self.dialogue.id, "start": self.start, "start_source": self.start_source,
                "target": self.target, "raw": self.raw, "turns": self.turns, "reply": self.reply,
                "repairs": list(self.repairs), "rejected": self.reason}


#: A verdict line: ``Lacking: <dimension>`` at the start of a line, allowing markdown (``**Lacking:** Affective``,
#: ``## Lacking: _cognitive_``); the colon is required, so prose ("it is lacking cognitive insight") never matches.
_VERDICT_LINE = re.compile(  # [^\S\n]: a space that stays on the line; (?![^\W_]): "_cognitive_" is a match
    rf"^[^\S\n]*[*_#]*[^\S\n]*lacking[^\S\n]*[*_]*[^\S\n]*:(?:[^\S\n]|[*_\"'`\[(])*"
    rf"({'|'.join(DIMENSIONS)})(?![^\W_])",
    re.IGNORECASE | re.MULTILINE,
)


def lacking_dimension(diagnosis: str) -> str | None:
    """The dimension on the diagnosis's last ``Lacking:`` verdict line, or None (the diagnosis is unreadable).

    Only a line that starts with the label counts, and the last one decides (like a judge's verdict): a dimension
    named in the reasoning ("it is not lacking cognitive insight") or quoted from the reply cannot decide it.
    """
    verdicts = _VERDICT_LINE.findall(diagnosis)
    return str(verdicts[-1]).lower() if verdicts else None


def distil_with_teacher(strategy: str, start_from: StartFrom, teacher: Teacher, prompts: TeacherPrompts,
                        records: list[Record], max_words: int) -> None:
    """Run ``strategy`` for every record: the teacher's replies, cleaned, kept or rejected with a reason."""
    if strategy == "direct":
        answers = teacher.ask([_direct_request(r.dialogue) for r in records], load_generation_prompt().version,
                              "direct replies")
        for rec, ans in zip(records, answers, strict=True):
            rec.start_source = "teacher"
            _teacher_answer(rec, ans, max_words)
        return
    _starting_replies(start_from, teacher, records, max_words)
    live = [r for r in records if r.start is not None and r.reason is None]
    if strategy in ("naive", "all_three", *DIMENSIONS):
        _improve(teacher, prompts, live, strategy, max_words)
    elif strategy == "lacking":
        _lacking(teacher, prompts, live, max_words)
    elif strategy == "sequential":
        _sequential(teacher, prompts, live, max_words)


def _direct_request(d: Dialogue) -> JudgeRequest:
    return JudgeRequest(system="", user=load_generation_prompt().render(d), prefill="")


def _improve(teacher: Teacher, prompts: TeacherPrompts, live: list[Record], goal: str, max_words: int) -> None:
    reqs = [JudgeRequest(prompts.system, prompts.render_improve(r.dialogue, r.start or "", goal, max_words), "")
            for r in live]
    for rec, ans in zip(live, teacher.ask(reqs, prompts.version, f"{goal} improvements"), strict=True):
        rec.target = goal
        _teacher_answer(rec, ans, max_words)


def _lacking(teacher: Teacher, prompts: TeacherPrompts, live: list[Record], max_words: int) -> None:
    diag = [JudgeRequest(prompts.system, prompts.render_diagnose(r.dialogue, r.start or ""), "") for r in live]
    for rec, ans in zip(live, teacher.ask(diag, prompts.version, "diagnoses"), strict=True):
        if isinstance(ans, NoAnswer):
            rec.reject("teacher_failed")
        elif (dimension := lacking_dimension(ans)) is None:
            rec.raw = ans
            rec.reject("diagnosis_unreadable")
        else:
            rec.target = dimension
    todo = [r for r in live if r.reason is None]
    reqs = [JudgeRequest(prompts.system, prompts.render_improve(r.dialogue, r.start or "", "lacking", max_words,
                                                                r.target or ""), "") for r in todo]
    for rec, ans in zip(todo, teacher.ask(reqs, prompts.version, "lacking-dimension improvements"), strict=True):
        _teacher_answer(rec, ans, max_words)


def _starting_replies(start_from: StartFrom, teacher: Teacher, records: list[Record], max_words: int) -> None:
    need_teacher = []
    for rec in records:
        if start_from in ("auto", "dataset") and rec.dialogue.reply:
            rec.start, rec.start_source = rec.dialogue.reply, "dataset"
        elif start_from == "dataset":
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


def _sequential(teacher: Teacher, prompts: TeacherPrompts, live: list[Record], max_words: int) -> None:
    history: dict[str, list[tuple[str, str]]] = {r.dialogue.id: [] for r in live}
    for step, dim in enumerate(DIMENSIONS):
        todo = [r for r in live if r.reason is None]
        reqs = [JudgeRequest(prompts.system, prompts.render_improve(r.dialogue, r.start or "", dim, max_words)
                             if step == 0 else prompts.render_next(dim, max_words), "",
                             history=tuple(history[r.dialogue.id])) for r in todo]
        answers = teacher.ask(reqs, prompts.version, f"sequential turn {step + 1} ({dim})")
        for rec, req, ans in zip(todo, reqs, answers, strict=True):
            if isinstance(ans, NoAnswer):
                rec.reject("teacher_failed")
                continue
            rec.turns.append(ans)
            cleaned = clean_reply(ans, max_words=max_words)
            if cleaned.text is None:
                rec.raw = ans
                rec.reject(f"turn{step + 1}_{cleaned.reason}")
                continue
            history[rec.dialogue.id].append((req.user, cleaned.text))
            if step == len(DIMENSIONS) - 1:
                rec.target = "sequential"
                rec.raw = ans
                rec.accept(cleaned)


def _teacher_answer(rec: Record, ans: str | NoAnswer, max_words: int) -> None:
    if isinstance(ans, NoAnswer):
        rec.reject("teacher_failed")
        return
    rec.raw = ans
    rec.accept(clean_reply(ans, max_words=max_words))
