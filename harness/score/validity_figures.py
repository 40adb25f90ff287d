"""Validity at a glance: how often a judge sides with people, beside two baselines that know nothing of empathy.

A pure function of per-pair records, so ``validate-judge`` and a judge-training command report the same figures.
Input: one :class:`PairRecord` per judged pair of two rated replies to the *same* dialogue (any rating scale;
the judge's preference either a verdict 1 / ½ / 0 or a probability that reply a is the better one).

Figures of :func:`validity_figures` (every CI: 95 % percentile bootstrap resampling whole dialogues, since the pairs
of one dialogue are not independent):

- ``agreement``: on the *non-tied* pairs — the two human ratings differ and the judge's preference is known —
  1 − |preference − human| with human = 1 when a is rated higher, else 0. With a verdict: 1 when the judge prefers
  the better-rated reply, ½ for a judge tie, 0 otherwise.
- ``length_baseline``: the same score for the rule "the reply with more words wins" (equal length: ½), on the same
  pairs.
- ``source_prior_baseline``: the same for "the reply from the source with the higher mean rating wins" (equal
  means, or a source the prior does not know: ½), on the same pairs. The prior must come from ratings other than
  the evaluated ones (see :func:`source_means`, :func:`cross_fitted_prior`); it is what a judge that only
  recognises who wrote a reply could reach.
- ``per_source_spearman``: each reply's judge score is its mean preference over all its scored pairs (p for a,
  1 − p for b; human ties included, since the score is the judge's own); within each source separately, Spearman's ρ
  of that score against the reply's human rating, with its CI. High values show the judge ranks replies of one
  writer, not only writers. ``per_source_spearman_mean``: the mean of the defined ρs.
- ``source_kendall_tau``: Kendall's τ-b between the sources ordered by mean human rating and by mean judge score
  (over the replies in the pairs).
- ``summary``: "agrees with people on X % of non-tied pairs [CI], vs length Y %, vs source prior Z %".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.score.agreement import kendall_tau, rate_entry, spearman_entry
from harness.score.stats import mean_or_nan


@dataclass(frozen=True)
class PairRecord:
    """One judged pair of two rated replies (a, b) to one dialogue."""

    dialogue_id: str
    source_a: str
    source_b: str
    rating_a: float
    rating_b: float
    preference: float | None
    """The judge's preference for a: a verdict (1 = a, ½ = tie, 0 = b) or P(a is better); None when unscored."""
    words_a: int
    words_b: int


#: Source → mean rating; or, for cross-fitted priors, dialogue id → the source means that dialogue is judged by.
Prior = Mapping[str, float] | Callable[[str], Mapping[str, float]]


def source_means(ratings: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Mean rating of each source from (source, rating) items."""
    by_source: dict[str, list[float]] = {}
    for source, rating in ratings:
        by_source.setdefault(source, []).append(float(rating))
    return {s: mean_or_nan(v) for s, v in sorted(by_source.items())}


def two_folds(dialogue_ids: Iterable[str], seed: int) -> dict[str, int]:
    """A seeded split of the dialogues into folds 0 and 1 (halves of a permutation of the sorted ids)."""
    ids = sorted(set(dialogue_ids))
    order = np.random.default_rng(seed).permutation(len(ids))
    return {ids[i]: int(k >= len(ids) / 2) for k, i in enumerate(order)}


def cross_fitted_prior(ratings: Mapping[str, Mapping[str, float]], seed: int) -> Callable[[str], dict[str, float]]:
    """Source means learnt on the *other* fold of a seeded 2-fold split by dialogue (dialogue → source → rating).

    A dialogue of fold k is judged by the means of fold 1 − k, so no dialogue's own ratings inform its baseline.
    A dialogue the split does not know gets the means of every rated dialogue.
    """
    folds = two_folds(ratings, seed)
    means = [source_means((s, r) for d, row in ratings.items() if folds[d] == k for s, r in row.items())
             for k in (0, 1)]
    overall = source_means((s, r) for row in ratings.values() for s, r in row.items())

    def prior(dialogue_id: str) -> dict[str, float]:
        k = folds.get(dialogue_id)
        return overall if k is None else means[1 - k]

    return prior


def _side(x: float, y: float) -> float:
    """1 when x > y, 0 when x < y, ½ when equal or either is unknown (NaN)."""
    if math.isnan(x) or math.isnan(y) or x == y:
        return 0.5
    return 1.0 if x > y else 0.0


def validity_figures(pairs: Sequence[PairRecord], prior: Prior, *, seed: int) -> dict[str, Any]:
    """The figures described in the module docstring, as one JSON-ready dict."""
    agree: dict[str, list[float]] = {}
    length: dict[str, list[float]] = {}
    source: dict[str, list[float]] = {}
    reply_scores: dict[tuple[str, str], list[float]] = {}
    reply_rating: dict[tuple[str, str], float] = {}
    for p in pairs:
        reply_rating[(p.dialogue_id, p.source_a)] = float(p.rating_a)
        reply_rating[(p.dialogue_id, p.source_b)] = float(p.rating_b)
        if p.preference is None:
            continue
        reply_scores.setdefault((p.dialogue_id, p.source_a), []).append(p.preference)
        reply_scores.setdefault((p.dialogue_id, p.source_b), []).append(1.0 - p.preference)
        if p.rating_a == p.rating_b:
            continue
        human = 1.0 if p.rating_a > p.rating_b else 0.0
        means = prior(p.dialogue_id) if callable(prior) else prior
        agree.setdefault(p.dialogue_id, []).append(1.0 - abs(p.preference - human))
        length.setdefault(p.dialogue_id, []).append(1.0 - abs(_side(p.words_a, p.words_b) - human))
        guess = _side(means.get(p.source_a, math.nan), means.get(p.source_b, math.nan))
        source.setdefault(p.dialogue_id, []).append(1.0 - abs(guess - human))

    points: dict[str, dict[str, list[tuple[float, float]]]] = {}
    judge_by_source: dict[str, list[float]] = {}
    for (dialogue_id, src), scores in reply_scores.items():
        score = mean_or_nan(scores)
        points.setdefault(src, {}).setdefault(dialogue_id, []).append((score, reply_rating[(dialogue_id, src)]))
        judge_by_source.setdefault(src, []).append(score)
    per_source = {s: spearman_entry(points[s], seed) for s in sorted(points)}
    rhos = [e["rho"] for e in per_source.values() if not math.isnan(e["rho"])]
    human_mean = source_means((s, r) for (_, s), r in reply_rating.items())
    judge_mean = {s: mean_or_nan(v) for s, v in sorted(judge_by_source.items())}
    common = [s for s in human_mean if s in judge_mean]
    figures = {
        "agreement": rate_entry(agree, seed),
        "length_baseline": rate_entry(length, seed),
        "source_prior_baseline": rate_entry(source, seed),
        "per_source_spearman": per_source,
        "per_source_spearman_mean": mean_or_nan(rhos),
        "source_kendall_tau": kendall_tau([human_mean[s] for s in common], [judge_mean[s] for s in common]),
        "source_means": {"human": human_mean, "judge": judge_mean},
        "n_pairs": len(pairs),
        "n_unscored": sum(1 for p in pairs if p.preference is None),
    }
    figures["summary"] = summary_line(figures)
    return figures


def summary_line(figures: Mapping[str, Any]) -> str:
    """'agrees with people on X % of non-tied pairs [CI], vs length Y %, vs source prior Z %'."""
    def pct(x: float) -> str:
        return "—" if math.isnan(x) else f"{100 * x:.1f} %"

    a = figures["agreement"]
    ci = "" if math.isnan(a["ci_low"]) else f" [{100 * a['ci_low']:.1f}–{100 * a['ci_high']:.1f} %]"
    return (f"agrees with people on {pct(a['value'])} of {a['n']} non-tied pairs{ci}, vs length "
            f"{pct(figures['length_baseline']['value'])}, vs source prior {pct(figures['source_prior_baseline']['value'])}")
