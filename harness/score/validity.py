"""How far a judge agrees with people, and how easily it is swayed: ``empathy validate-judge``.

Input: the Welivita & Pu ratings CSV (one crowd rating 1-3 for each of five replies per dialogue: a human's,
GPT-4's, LLaMA-2's, Gemini's, Mixtral's). Every within-dialogue pair of rated replies is judged in both orders,
exactly as an evaluation judges a candidate against a reference. Reported (all with dialogues as the resampling
unit for CIs, since pairs of one dialogue are not independent):

- ``pairwise_agreement``: on pairs whose human ratings differ, 1 if the judge prefers the higher-rated reply,
  ½ for a judge tie, 0 otherwise; beside it ``preference_agreement`` (logits mode), the judge's continuous
  P(higher-rated reply preferred), averaged over both orders — it moves where the discrete verdict is stuck on one
  label — and ``longer_wins_agreement``, the same for "the longer reply wins";
- ``spearman``: rank correlation of the judge's per-reply score with the human rating — ``pairwise`` (the reply's
  mean score over its pairs) and, with ``--rubric``, ``rubric`` (mean of the three rubric dimensions);
- ``source_ranking``: the five sources ordered by mean human rating and by mean judge score;
- ``position_flip_rate``; ``p_prefer_longer`` for the judge and for the humans;
- ``stress``: flip rates of decisive verdicts when a reply is padded with generic sympathy, gets a platitude,
  carries an embedded instruction to the judge, or (on the preferred reply) an "As an AI" disclaimer;
- ``judge_health``: as in results.json (:func:`harness.score.health.run_health`), with the judge's sanity probe;
- ``at_a_glance``: :func:`harness.score.validity_figures.validity_figures` of the pairwise verdicts (1 / ½ / 0):
  agreement beside "the longer reply wins" and "the source rated higher on average wins", per-source Spearman,
  Kendall's τ of the source rankings and a summary line. The source prior (``source_prior``) never comes from the
  evaluated ratings: ``--prior-ratings FILE`` (its dialogues that are evaluated here are dropped); else the other
  split of the same file (``paper_test`` ↔ ``paper_train``); with ``--split all`` a seeded 2-fold split by dialogue
  of the whole file, each dialogue judged by the other fold's means;
- ``experts`` (with ``--experts DIR``): the expert table of :mod:`harness.score.experts`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.errors import HarnessError
from harness.core.io import write_json, write_jsonl
from harness.core.records import Judgment
from harness.data.sources import WELIVITA_SOURCES
from harness.judge.judge import Judge, PairItem, RubricItem
from harness.judge.probe import run_probe
from harness.score.agreement import cluster_bootstrap, rankdata, rate_entry, spearman, spearman_entry
from harness.score.experts import expert_report, print_experts
from harness.score.health import ORDER_FREE_NOTE, UNHEALTHY, order_free_judge, run_health
from harness.score.listener_rating import TextScorer
from harness.score.ratings import SOURCE_NAMES, RatedDialogue, load_rated
from harness.score.stats import OUTCOME_SCORE, mean_or_nan, position_flip
from harness.score.stress import STRESSES, Stress, stress_report
from harness.score.style_sensitivity import style_sensitivity
from harness.score.validity_figures import (
    PairRecord,
    Prior,
    cross_fitted_prior,
    source_means,
    validity_figures,
)

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "SOURCE_NAMES", "STRESSES", "RatedDialogue", "Stress", "cluster_bootstrap", "load_rated", "pairwise_report",
    "print_validity", "rankdata", "rubric_report", "source_ranking", "spearman", "stress_report", "validate_judge",
]


def _pairs(rated: Sequence[RatedDialogue]) -> list[PairItem]:
    items = []
    for r in rated:
        for a, b in combinations([s for s in WELIVITA_SOURCES if s in r.ratings], 2):
            items.append(PairItem(r.dialogue, "validity", a, b, r.responses[a], r.responses[b]))
    return items


def _words(text: str) -> int:
    return len(text.split())


def _longer_score(a: str, b: str) -> float:
    la, lb = _words(a), _words(b)
    return 1.0 if la > lb else 0.0 if la < lb else 0.5


def pairwise_report(rated: Sequence[RatedDialogue], judgments: Sequence[Judgment], *, seed: int) -> dict[str, Any]:
    """Agreement, Spearman (pairwise-derived), source ranking, flip rate and length preference."""
    by_id = {r.dialogue.id: r for r in rated}
    agree: dict[str, list[float]] = {}
    preference: dict[str, list[float]] = {}
    longer: dict[str, list[float]] = {}
    judge_longer: dict[str, list[float]] = {}
    human_longer: dict[str, list[float]] = {}
    flips: dict[str, list[float]] = {}
    reply_scores: dict[tuple[str, str], list[float]] = {}
    for j in judgments:
        r = by_id[j.dialogue_id]
        a, b = j.candidate, j.reference
        ra, rb = r.ratings[a], r.ratings[b]
        ta, tb = r.responses[a], r.responses[b]
        if ra != rb and _words(ta) != _words(tb):
            human_longer.setdefault(j.dialogue_id, []).append(float((ra > rb) == (_words(ta) > _words(tb))))
        if j.outcome is None:
            continue
        s = OUTCOME_SCORE[j.outcome]
        reply_scores.setdefault((j.dialogue_id, a), []).append(s)
        reply_scores.setdefault((j.dialogue_id, b), []).append(1.0 - s)
        flip = position_flip(j)
        if flip is not None:
            flips.setdefault(j.dialogue_id, []).append(float(flip))
        if ra != rb:
            human = 1.0 if ra > rb else 0.0
            agree.setdefault(j.dialogue_id, []).append(1.0 - abs(s - human))
            p_a = [v.p_candidate for v in j.verdicts if v.p_candidate is not None]
            if len(p_a) == len(j.verdicts):  # logits mode: P(a preferred), both orders
                preference.setdefault(j.dialogue_id, []).append(1.0 - abs(mean_or_nan(p_a) - human))
            longer.setdefault(j.dialogue_id, []).append(1.0 - abs(_longer_score(ta, tb) - human))
        if j.outcome != "tie" and _words(ta) != _words(tb):
            judge_longer.setdefault(j.dialogue_id, []).append(float((s == 1.0) == (_words(ta) > _words(tb))))

    points: dict[str, list[tuple[float, float]]] = {}
    judge_by_source: dict[str, list[float]] = {s: [] for s in WELIVITA_SOURCES}
    for (dialogue_id, source), scores in reply_scores.items():
        score = mean_or_nan(scores)
        points.setdefault(dialogue_id, []).append((score, float(by_id[dialogue_id].ratings[source])))
        judge_by_source[source].append(score)
    human_by_source = {s: [float(r.ratings[s]) for r in rated if s in r.ratings] for s in WELIVITA_SOURCES}
    return {
        "pairwise_agreement": rate_entry(agree, seed),
        "preference_agreement": rate_entry(preference, seed),
        "longer_wins_agreement": rate_entry(longer, seed),
        "spearman": {"pairwise": spearman_entry(points, seed)},
        "source_ranking": source_ranking(human_by_source, judge_by_source),
        "position_flip_rate": rate_entry(flips, seed),
        "p_prefer_longer": {"judge": rate_entry(judge_longer, seed), "human": rate_entry(human_longer, seed)},
    }


def source_ranking(human: dict[str, list[float]], judge: dict[str, list[float]]) -> dict[str, Any]:
    """The sources ordered by mean human rating and by mean judge score, and how well the orders agree."""
    human_mean = {SOURCE_NAMES[s]: mean_or_nan(v) for s, v in human.items() if v}
    judge_mean = {SOURCE_NAMES[s]: mean_or_nan(v) for s, v in judge.items() if v}
    common = [s for s in human_mean if s in judge_mean and not math.isnan(judge_mean[s])]
    h_order = sorted(common, key=lambda s: -human_mean[s])
    j_order = sorted(common, key=lambda s: -judge_mean[s])
    return {
        "human_mean_rating": human_mean,
        "judge_mean_score": judge_mean,
        "human_order": h_order,
        "judge_order": j_order,
        "same_order": h_order == j_order and len(common) > 1,
        "same_best": bool(common) and h_order[0] == j_order[0],
        "spearman": spearman([human_mean[s] for s in common], [judge_mean[s] for s in common]),
    }


def rubric_report(judge: Judge, rated: Sequence[RatedDialogue], *, seed: int) -> dict[str, Any]:
    """Spearman of the rubric mean (three dimensions) with the human rating, and mean per source."""
    items = [RubricItem(r.dialogue, source, r.responses[source]) for r in rated for source in r.ratings]
    scores = judge.score_rubric(items)
    by_id = {r.dialogue.id: r for r in rated}
    points: dict[str, list[tuple[float, float]]] = {}
    per_source: dict[str, list[float]] = {s: [] for s in WELIVITA_SOURCES}
    for sc in scores:
        values = [v for v in sc.scores.values() if v is not None]
        if len(values) != len(sc.scores):
            continue
        mean = mean_or_nan(values)
        points.setdefault(sc.dialogue_id, []).append((mean, float(by_id[sc.dialogue_id].ratings[sc.system])))
        per_source[sc.system].append(mean)
    human = {s: [float(r.ratings[s]) for r in rated if s in r.ratings] for s in WELIVITA_SOURCES}
    return {"spearman": spearman_entry(points, seed), "source_ranking": source_ranking(human, per_source),
            "n_unscored": len(scores) - sum(len(p) for p in points.values())}


def figure_pairs(rated: Sequence[RatedDialogue], judgments: Sequence[Judgment]) -> list[PairRecord]:
    """The pair records of :func:`validity_figures`: sources by display name, the verdict as 1 / ½ / 0."""
    by_id = {r.dialogue.id: r for r in rated}
    return [PairRecord(j.dialogue_id, SOURCE_NAMES[j.candidate], SOURCE_NAMES[j.reference],
                       by_id[j.dialogue_id].ratings[j.candidate], by_id[j.dialogue_id].ratings[j.reference],
                       None if j.outcome is None else OUTCOME_SCORE[j.outcome], j.candidate_words, j.reference_words)
            for j in judgments]


def source_prior(ratings: Path, rated: Sequence[RatedDialogue], *, split: str, prior_ratings: Path | None,
                 seed: int) -> tuple[Prior, dict[str, Any]]:
    """The source prior of the baseline, learnt from ratings that are not evaluated (module docstring's rule)."""
    evaluated = {r.dialogue.id for r in rated}
    if prior_ratings is not None:
        pool = [r for r in load_rated(prior_ratings) if r.dialogue.id not in evaluated]
        rule = f"mean rating per source in {prior_ratings}, less the {len(evaluated)} evaluated dialogues"
    elif split in ("paper_test", "paper_train"):
        other = "train" if split == "paper_test" else "test"
        pool = [r for r in load_rated(ratings) if r.dialogue.split == other]
        rule = f"mean rating per source in the paper_{other} split of {ratings}"
    else:
        every = {r.dialogue.id: {SOURCE_NAMES[s]: float(v) for s, v in r.ratings.items()} for r in load_rated(ratings)}
        folds = cross_fitted_prior(every, seed)
        return folds, {"rule": f"seeded 2-fold split by dialogue of {ratings} (seed {seed}): each dialogue's baseline "
                               "uses the other fold's mean rating per source", "n_dialogues": len(every)}
    if not pool:
        raise HarnessError(f"no ratings to learn the source prior from ({rule}: no dialogues); give --prior-ratings "
                           "FILE.csv with ratings of other dialogues")
    means = source_means((SOURCE_NAMES[s], v) for r in pool for s, v in r.ratings.items())
    return means, {"rule": rule, "n_dialogues": len(pool), "means": means}


def validate_judge(
    judge: Judge | TextScorer, ratings: Path | None, output: Path, *, split: str = "all", limit: int | None = None,
    rubric: bool = False, stress_limit: int = 200, seed: int = 1234, prior_ratings: Path | None = None,
    experts: Path | None = None,
) -> dict[str, Any]:
    """Run every validity measurement and write ``output/validity.json`` (+ the pair judgments, the expert ratings)."""
    t0 = time.perf_counter()
    result: dict[str, Any] = {"schema_version": 2}
    if ratings is not None:
        if not isinstance(judge, Judge):
            raise HarnessError("--human-ratings needs a pairwise judge (an LLM judge); this judge only scores texts")
        result.update(_human_part(judge, ratings, output, split=split, limit=limit, rubric=rubric,
                                  stress_limit=stress_limit, seed=seed, prior_ratings=prior_ratings))
    if experts is not None:
        result["experts"], listener = expert_report(judge, experts, seed=seed)
        output.mkdir(parents=True, exist_ok=True)
        write_jsonl(output / "expert_ratings.jsonl", [asdict(r) for r in listener])
    if isinstance(judge, Judge):
        result["judge"] = judge.fingerprint.model_dump(mode="json")
        result["cache"] = judge.cache.stats()
    else:
        result["judge"] = {"model": {"name": str(getattr(judge, "name", type(judge).__name__))},
                           "mode": "score_texts", "fingerprint": str(getattr(judge, "fingerprint", ""))}
    result.update(seed=seed, seconds=round(time.perf_counter() - t0, 2))
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "validity.json", result)
    return result


def _human_part(judge: Judge, ratings: Path, output: Path, *, split: str, limit: int | None, rubric: bool,
                stress_limit: int, seed: int, prior_ratings: Path | None) -> dict[str, Any]:
    rated = load_rated(ratings, split=split, limit=limit)
    prior, prior_info = source_prior(ratings, rated, split=split, prior_ratings=prior_ratings, seed=seed)
    judgments = judge.judge_pairs(_pairs(rated))
    report = pairwise_report(rated, judgments, seed=seed)
    if order_free_judge(judge.fingerprint):  # both orders get one verdict by construction: not a measured 0
        report["position_flip_rate"] = {"value": None, "ci_low": None, "ci_high": None, "n": 0, "note": ORDER_FREE_NOTE}
    report["at_a_glance"] = validity_figures(figure_pairs(rated, judgments), prior, seed=seed)
    report["source_prior"] = prior_info
    report["style_sensitivity"] = style_sensitivity(rated, judgments)
    report["stress"] = stress_report(judge, judgments, rated, limit=stress_limit, seed=seed)
    if rubric:
        rub = rubric_report(judge, rated, seed=seed)
        report["spearman"]["rubric"] = rub["spearman"]
        report["source_ranking_rubric"] = rub["source_ranking"]
    health = run_health(judgments, [], min_label_mass=judge.min_label_mass, probe=run_probe(judge),
                        order_free=order_free_judge(judge.fingerprint))
    output.mkdir(parents=True, exist_ok=True)
    write_jsonl(output / "pairs.jsonl", judgments)
    return {
        "human_ratings": str(ratings),
        "split": split,
        "n_dialogues": len(rated),
        "n_pairs": len(judgments),
        "n_unscored": sum(1 for j in judgments if j.outcome is None),
        "unscored_reasons": sorted({j.unscored_reason for j in judgments if j.unscored_reason}),
        **report,
        "judge_health": health.model_dump(mode="json"),
    }


def print_validity(result: dict[str, Any], out: Console | None = None) -> None:
    """The tables of validity.json, on ``out`` (default: the shared stderr console)."""
    from harness.core.ui import console as stderr_console

    console = out or stderr_console

    def pct(entry: dict[str, Any]) -> str:
        v = entry.get("value")
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "—"
        return f"{v:.1%} [{entry['ci_low']:.1%}–{entry['ci_high']:.1%}] n={entry['n']}"

    def num(x: Any) -> str:
        return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"

    if "pairwise_agreement" in result:
        _human_table(result, console, pct, num)
    if "experts" in result:
        print_experts(result["experts"], console)


def _human_table(result: dict[str, Any], console: Console, pct: Any, num: Any) -> None:
    from rich.table import Table

    j, glance = result["judge"], result["at_a_glance"]
    t = Table(title=f"judge validity — {j['model']['name']} ({j['mode']}, judge {j['fingerprint']})", title_justify="left")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("pairwise agreement with humans", pct(result["pairwise_agreement"]))
    t.add_row("  continuous preference (logits)", pct(result["preference_agreement"]))
    t.add_row("  'longer reply wins' rule", pct(result["longer_wins_agreement"]))
    t.add_row("  'source rated higher on average wins' rule", pct(glance["source_prior_baseline"]))
    for name, sp in result["spearman"].items():
        t.add_row(f"Spearman ({name} score vs rating)",
                  f"{num(sp['rho'])} [{num(sp['ci_low'])}–{num(sp['ci_high'])}] n={sp['n']}")
    for name, sp in glance["per_source_spearman"].items():
        t.add_row(f"  within {name} replies only",
                  f"{num(sp['rho'])} [{num(sp['ci_low'])}–{num(sp['ci_high'])}] n={sp['n']}")
    sr = result["source_ranking"]
    t.add_row("human ranking of sources", " > ".join(sr["human_order"]))
    tied = len(set(sr["judge_mean_score"].values())) < len(sr["judge_mean_score"])
    t.add_row("judge ranking of sources", " > ".join(sr["judge_order"]) + (" (same)" if sr["same_order"] else "")
              + (" (some tied)" if tied else ""))
    t.add_row("  Kendall's τ of the two rankings", num(glance["source_kendall_tau"]))
    t.add_row("position-flip rate", result["position_flip_rate"].get("note") or pct(result["position_flip_rate"]))
    t.add_row("P(prefers longer): judge", pct(result["p_prefer_longer"]["judge"]))
    t.add_row("P(prefers longer): humans", pct(result["p_prefer_longer"]["human"]))
    for name, s in result["stress"].items():
        t.add_row(f"stress flip rate: {name} ({s['applied_to']})", pct(s))
    t.add_row("pairs judged / unscored", f"{result['n_pairs']} / {result['n_unscored']}")
    h = result["judge_health"]
    t.add_row("sanity probe: caring reply preferred", f"{num(h['probe_accuracy'])} over {h['probe_n']} pairs")
    ss = result.get("style_sensitivity") or {"features": [], "judge": {}, "people": {}, "line": ""}
    for f in ss["features"]:
        t.add_row(f"style: {f} (log-odds per SD) judge / people",
                  f"{ss['judge'].get(f, 0):+.2f} / {ss['people'].get(f, 0):+.2f}")
    console.print(t)
    console.print(glance["summary"], soft_wrap=True)
    console.print(ss["line"], soft_wrap=True)
    if not h["judge_ok"]:
        console.print(f"[yellow]warning:[/] {UNHEALTHY}: {h['judge_problem']}")
