"""The expert table of ``validate-judge --experts DIR``: a judge's empathy ratings beside three experts'.

DIR is laid out like Kumar et al. 2025's replication data ("When LLMs are reliable for judging empathic
communication", arXiv 2506.10150), EmpatheticDialogues part:

- ``annotations/empatheticdialogues/{expert1,expert2,expert3,gpt,claude,gemini,crowd}_ratings.csv``: one row per
  ``conv_id`` with ``empathy`` on 1-5 (the crowd's are means of two self-evaluations, so halves occur);
- ``original_data/sample_empatheticdialogues.csv``: the conversations, one row per utterance (EmpatheticDialogues
  schema: conv_id, utterance_idx, prompt = the situation, speaker_idx, utterance with ``_comma_`` for commas). The
  rated side is the listener: every turn not by the conversation's first speaker.

The judge rates the listener of every conversation (:mod:`harness.score.listener_rating`). Every row — the
judge's and the paper's, recomputed from the files by the same code — gives quadratic-weighted Cohen's κ
(:func:`~harness.score.agreement.quadratic_kappa` on integer ratings 1-5, with a 95 % bootstrap CI over
conversations) and Spearman's ρ (on the values as given: the crowd's means, the judge's continuous score).
"experts" is the per-conversation median of the three experts (an integer: three integer ratings). Rounding for
κ: a non-integer rating (the crowd's x.5 means) is rounded half up, ⌊x + ½⌋ (the paper's 0.15 for experts–crowd
is what sklearn gives when the half-point values are kept as categories; rounded, the row is about 0.12).

Verdict, on the point estimates, with κ = the judge's κ against the expert median:
"like an expert" when κ ≥ the lowest expert–expert κ; else "like the paper's LLMs" when κ ≥ the lowest of
experts–gpt / experts–claude / experts–gemini; else "like the crowd" when κ ≥ experts–crowd and κ > 0; else
"not at all" (also when the judge rated too few conversations for a κ).

The conversation text is EmpatheticDialogues' (CC BY-NC 4.0): it is read from DIR, shown to the judge, and never
written anywhere; the report holds conv ids and ratings only.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING, Any

from harness.core.errors import HarnessError
from harness.judge.judge import Judge
from harness.score.agreement import cluster_bootstrap, quadratic_kappa, spearman
from harness.score.listener_rating import ListenerRating, TextScorer, rate_listeners, round_half_up

if TYPE_CHECKING:
    from rich.console import Console

RATINGS_DIR = Path("annotations", "empatheticdialogues")
CONVERSATIONS = Path("original_data", "sample_empatheticdialogues.csv")
EXPERTS = ("expert1", "expert2", "expert3")
LLMS = ("gpt", "claude", "gemini")
RATERS = (*EXPERTS, *LLMS, "crowd")
MEDIAN = "experts"
#: The paper's table (annotations/table_kappa.csv, "Empathetic Dialogues, empathy"); its "llm" row is Gemini's.
PAPER_KAPPA = {("expert1", "expert2"): 0.51, ("expert2", "expert3"): 0.62, ("expert3", "expert1"): 0.53,
               (MEDIAN, "gemini"): 0.34, (MEDIAN, "crowd"): 0.15}
VERDICT_RULE = ("κ(judge, expert median) ≥ lowest expert–expert κ: like an expert; ≥ lowest experts–LLM κ "
                "(gpt, claude, gemini): like the paper's LLMs; ≥ experts–crowd κ and > 0: like the crowd; else not at all")
ROUNDING = ("κ on integer ratings: non-integer ratings (the crowd's means) rounded half up, ⌊x + ½⌋; the expert "
            "median of three integers is an integer. Spearman on the values as given")
LAYOUT = (f"--experts wants a folder laid out like Kumar et al. 2025's data: {RATINGS_DIR}/"
          f"{{{','.join(RATERS)}}}_ratings.csv and {CONVERSATIONS}")


class ExpertDataError(HarnessError):
    """The expert folder could not be read."""


@dataclass(frozen=True)
class Conversation:
    """One rated conversation: the situation and its turns as (role, text), role 'speaker' or 'listener'."""

    conv_id: str
    situation: str
    turns: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ExpertData:
    """The conversations (file order) and every rater's conv_id → empathy rating."""

    folder: Path
    conversations: tuple[Conversation, ...]
    ratings: dict[str, dict[str, float]]


def _rows(path: Path, needed: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise ExpertDataError(f"{path}: missing. {LAYOUT}")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise ExpertDataError(f"{path}: no column {', '.join(missing)} (it has: {', '.join(reader.fieldnames or [])}). "
                                  f"{LAYOUT}")
        return [(reader.line_num, row) for row in reader]


def _read_conversations(path: Path) -> tuple[Conversation, ...]:
    utterances: dict[str, list[tuple[int, str, str]]] = {}
    situations: dict[str, str] = {}
    for line, row in _rows(path, ("conv_id", "utterance_idx", "prompt", "speaker_idx", "utterance")):
        conv_id = row["conv_id"].strip()
        try:
            idx = int(row["utterance_idx"])
        except ValueError:
            raise ExpertDataError(f"{path}:{line}: utterance_idx is {row['utterance_idx']!r}; it numbers a "
                                  "conversation's utterances 1, 2, …") from None
        text = row["utterance"].replace("_comma_", ",").strip()
        utterances.setdefault(conv_id, []).append((idx, row["speaker_idx"].strip(), text))
        situations.setdefault(conv_id, row["prompt"].replace("_comma_", ",").strip())
    if not utterances:
        raise ExpertDataError(f"{path}: no conversations. {LAYOUT}")
    out = []
    for conv_id, items in utterances.items():
        items.sort()
        first = items[0][1]
        turns = tuple(("speaker" if who == first else "listener", text) for _, who, text in items)
        if not any(role == "listener" for role, _ in turns):
            raise ExpertDataError(f"{path}: conversation {conv_id} has no listener turn (every utterance is by speaker "
                                  f"{first}); the rated side is the second speaker")
        out.append(Conversation(conv_id, situations[conv_id], turns))
    return tuple(out)


def _read_ratings(path: Path) -> dict[str, float]:
    ratings: dict[str, float] = {}
    for line, row in _rows(path, ("conv_id", "empathy")):
        conv_id, value = row["conv_id"].strip(), (row["empathy"] or "").strip()
        try:
            rating = float(value)
        except ValueError:
            rating = math.nan
        if not 1.0 <= rating <= 5.0:
            raise ExpertDataError(f"{path}:{line}: empathy is {value!r}; ratings are numbers from 1 to 5")
        if conv_id in ratings:
            raise ExpertDataError(f"{path}:{line}: conv_id {conv_id} is rated twice; give one row per conversation")
        ratings[conv_id] = rating
    return ratings


def _ids(ids: Sequence[str]) -> str:
    return ", ".join(sorted(ids)[:3]) + (", …" if len(ids) > 3 else "")


def load_experts(folder: Path) -> ExpertData:
    """Every rater's ratings and the conversations, checked: same conv ids everywhere, ratings on 1-5."""
    if not folder.is_dir():
        raise ExpertDataError(f"--experts {folder}: no such folder. {LAYOUT}")
    conv_path = folder / CONVERSATIONS
    conversations = _read_conversations(conv_path)
    known = {c.conv_id for c in conversations}
    ratings = {}
    for rater in RATERS:
        path = folder / RATINGS_DIR / f"{rater}_ratings.csv"
        ratings[rater] = _read_ratings(path)
        unrated, unknown = sorted(known - set(ratings[rater])), sorted(set(ratings[rater]) - known)
        if unrated or unknown:
            raise ExpertDataError(
                f"{path}: its conv ids do not match the {len(known)} conversations of {conv_path}: "
                f"{len(unrated)} not rated ({_ids(unrated)}), {len(unknown)} without a conversation ({_ids(unknown)}); "
                "give every rater's file for the same conversations")
    return ExpertData(folder, conversations, ratings)


def expert_median(data: ExpertData) -> dict[str, float]:
    """Per-conversation median of the three experts."""
    return {c.conv_id: float(median(data.ratings[e][c.conv_id] for e in EXPERTS)) for c in data.conversations}


def agreement_row(a: str, b: str, x: Mapping[str, float], y: Mapping[str, float], *, seed: int) -> dict[str, Any]:
    """κ (rounded ratings, with CI over conversations) and Spearman of two raters on the items both rated."""
    ids = [c for c in x if c in y]
    items = [(x[c], y[c]) for c in ids]

    def kappa(its: list[tuple[float, float]]) -> float:
        return quadratic_kappa([round_half_up(p) for p, _ in its], [round_half_up(q) for _, q in its])

    low, high = cluster_bootstrap([[it] for it in items], kappa, seed=seed, n_boot=1000)
    return {"a": a, "b": b, "kappa": kappa(items), "kappa_ci_low": low, "kappa_ci_high": high,
            "spearman": spearman([p for p, _ in items], [q for _, q in items]), "n": len(items),
            "paper_kappa": PAPER_KAPPA.get((a, b))}


def paper_rows(data: ExpertData, *, seed: int) -> list[dict[str, Any]]:
    """The paper's rows: expert–expert pairs, then the expert median against gemini, gpt, claude and the crowd."""
    r, med = data.ratings, expert_median(data)
    pairs = [agreement_row(a, b, r[a], r[b], seed=seed) for a, b in (("expert1", "expert2"), ("expert2", "expert3"),
                                                                      ("expert3", "expert1"))]
    return pairs + [agreement_row(MEDIAN, o, med, r[o], seed=seed) for o in ("gemini", "gpt", "claude", "crowd")]


def verdict(judge_kappa: float, paper: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Where the judge's κ against the expert median falls among the paper's rows (see the module docstring)."""
    k = {(row["a"], row["b"]): row["kappa"] for row in paper}
    thresholds = {"expert": min(k[("expert1", "expert2")], k[("expert2", "expert3")], k[("expert3", "expert1")]),
                  "llm": min(k[(MEDIAN, o)] for o in LLMS), "crowd": k[(MEDIAN, "crowd")]}
    if judge_kappa >= thresholds["expert"]:
        label = "like an expert"
    elif judge_kappa >= thresholds["llm"]:
        label = "like the paper's LLMs"
    elif judge_kappa >= thresholds["crowd"] and judge_kappa > 0:
        label = "like the crowd"
    else:
        label = "not at all"
    shown = "—" if math.isnan(judge_kappa) else f"{judge_kappa:.3f}"
    line = (f"agrees with experts {label}: κ vs the expert median {shown} (experts with each other ≥ "
            f"{thresholds['expert']:.3f}, the paper's LLMs ≥ {thresholds['llm']:.3f}, the crowd {thresholds['crowd']:.3f})")
    return {"label": label, "line": line, "kappa": judge_kappa, "thresholds": thresholds, "rule": VERDICT_RULE}


def expert_report(judge: Judge | TextScorer, folder: Path, *, seed: int) -> tuple[dict[str, Any], list[ListenerRating]]:
    """The judge's rows beside the paper's, the verdict, and the judge's rating of every conversation."""
    data = load_experts(folder)
    rated, how = rate_listeners(judge, data.conversations)
    score = {r.conv_id: r.score for r in rated if r.score is not None}
    rating = {r.conv_id: float(r.rating) for r in rated if r.rating is not None}
    references = {**{e: data.ratings[e] for e in EXPERTS}, MEDIAN: expert_median(data)}
    judge_rows = []
    for name, ref in references.items():
        row = agreement_row("judge", name, rating, ref, seed=seed)
        row["spearman"] = spearman([score[c] for c in score if c in ref], [ref[c] for c in score if c in ref])
        judge_rows.append(row)
    paper = paper_rows(data, seed=seed)
    report = {
        "folder": str(folder), "n_conversations": len(data.conversations),
        "n_unscored": sum(1 for r in rated if r.rating is None),
        "unscored_reasons": sorted({r.unscored_reason for r in rated if r.unscored_reason}),
        "judge_rating": how, "rounding": ROUNDING, "judge_rows": judge_rows, "paper_rows": paper,
        "verdict": verdict(judge_rows[-1]["kappa"], paper),
    }
    return report, rated


def fmt3(x: Any) -> str:
    """A κ or ρ of the expert table: 3 decimals (no "-0.000"), "—" when undefined."""
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{round(x, 3) + 0.0:.3f}"


def rating_rule(how: Mapping[str, Any]) -> str:
    """How the judge's 1–5 ratings were made: its prompt, or the rule mapping a reward model's scores."""
    return f"prompt {how['prompt_version']} {how['prompt_hash']}" if how["kind"] == "llm" else str(how.get("rule", ""))


def print_experts(report: Mapping[str, Any], console: Console) -> None:
    """The expert table and the verdict line."""
    from rich.table import Table

    num = fmt3
    how = report["judge_rating"]
    prompt = f", prompt {how['prompt_version']} {how['prompt_hash']}" if how["kind"] == "llm" else ""
    t = Table(title=f"agreement with experts — {report['n_conversations']} conversations, "
                    f"{report['n_unscored']} unrated by the judge{prompt}", title_justify="left")
    for col, justify in (("raters", "left"), ("κ (quadratic)", "right"), ("95 % CI", "right"), ("Spearman", "right"),
                         ("n", "right"), ("paper κ", "right")):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in [*report["judge_rows"], *report["paper_rows"]]:
        t.add_row(f"{row['a']} – {row['b']}", num(row["kappa"]),
                  f"{num(row['kappa_ci_low'])}–{num(row['kappa_ci_high'])}", num(row["spearman"]), str(row["n"]),
                  "" if row["paper_kappa"] is None else f"{row['paper_kappa']:.2f}")
    console.print(t)
    if report["n_unscored"]:
        reasons = report["unscored_reasons"]
        console.print(f"[yellow]warning:[/] the judge left {report['n_unscored']} conversations unrated, e.g. "
                      f"{reasons[0]}" + (f" (+{len(reasons) - 1} other reasons)" if len(reasons) > 1 else ""),
                      soft_wrap=True)
    console.print(report["verdict"]["line"], soft_wrap=True)
