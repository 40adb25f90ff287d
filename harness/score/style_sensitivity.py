"""How much each style feature moves a judge's preference, beside how much it moves people's ratings.

On the rated pairs of ``validate-judge`` (two replies to one dialogue, each rated by people, judged in both
orders): for every style feature (:mod:`harness.score.style`), x = the difference between the two replies'
features, standardised over the pairs. Two penalised logistic fits with an intercept, on the same x:

- the **judge**: target the verdict for reply a (1 / ½ / 0), every scored pair;
- **people**: target 1 when a is rated higher, 0 when lower (pairs with equal ratings left out).

Each coefficient is the change in log-odds of preferring a reply per standard deviation of that feature, with the
other features held fixed. A feature is named when the judge leans on it far more than people do: the judge's
coefficient is at least :data:`NAMED_MIN` and at least twice the people's (in absolute value) plus
:data:`NAMED_MARGIN` — "this judge is more length-driven than people". Features that do not vary over the pairs
are left out. The L2 penalty (:data:`L2`, on the slopes only) keeps the fits finite when a feature separates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from harness.core.records import Judgment
from harness.score.ratings import RatedDialogue
from harness.score.stats import OUTCOME_SCORE
from harness.score.style import FEATURES, StyleCounter, load_counter

L2 = 1.0
NAMED_MIN = 0.2
NAMED_MARGIN = 0.1


def _fit(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """Penalised logistic regression with fractional targets: the slopes (intercept unpenalised, dropped)."""
    from scipy.optimize import minimize
    from scipy.special import expit

    design = np.hstack([np.ones((len(x), 1)), x])

    def loss(beta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        z = design @ beta
        value = float(np.sum(np.logaddexp(0.0, z) - y * z)) + 0.5 * L2 * float(beta[1:] @ beta[1:])
        grad = design.T @ (expit(z) - y)
        grad[1:] += L2 * beta[1:]
        return value, grad

    res = minimize(loss, np.zeros(design.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": 1000})
    return np.asarray(res.x[1:], dtype=float)


def style_sensitivity(rated: Sequence[RatedDialogue], judgments: Sequence[Judgment],
                      counter: StyleCounter | None = None) -> dict[str, Any]:
    """Judge and people coefficients per style feature, the features the judge leans on far more, one line."""
    counter = counter or load_counter()
    by_id = {r.dialogue.id: r for r in rated}
    cache: dict[tuple[str, str], list[float]] = {}

    def features(dialogue_id: str, source: str) -> list[float]:
        if (dialogue_id, source) not in cache:
            r = by_id[dialogue_id]
            p = counter.profile(r.responses[source], r.dialogue.utterance)
            cache[dialogue_id, source] = [p[f] for f in FEATURES]
        return cache[dialogue_id, source]

    diffs, judge_y, human_y = [], [], []
    for j in judgments:
        r = by_id.get(j.dialogue_id)
        if r is None or j.candidate not in r.responses or j.reference not in r.responses:
            continue
        diffs.append(np.subtract(features(j.dialogue_id, j.candidate), features(j.dialogue_id, j.reference)))
        judge_y.append(math.nan if j.outcome is None else OUTCOME_SCORE[j.outcome])
        a, b = r.ratings[j.candidate], r.ratings[j.reference]
        human_y.append(1.0 if a > b else 0.0 if a < b else math.nan)
    x = np.asarray(diffs, dtype=float).reshape(len(diffs), len(FEATURES))
    sd = x.std(axis=0) if len(x) else np.zeros(len(FEATURES))
    keep = [k for k in range(len(FEATURES)) if sd[k] > 0]
    names = [FEATURES[k] for k in keep]
    xs = x[:, keep] / sd[keep] if keep else np.zeros((len(x), 0))
    jy, hy = np.asarray(judge_y), np.asarray(human_y)
    out: dict[str, Any] = {"features": names, "n_judge": int(np.sum(~np.isnan(jy))), "n_human": int(np.sum(~np.isnan(hy))),
                           "rule": f"named when |judge| ≥ {NAMED_MIN} and |judge| ≥ 2·|people| + {NAMED_MARGIN} "
                                   "(log-odds per SD of the feature's difference)"}
    if not keep or out["n_judge"] < 2 or out["n_human"] < 2:
        return {**out, "features": [], "judge": {}, "people": {}, "named": [],
                "line": "style sensitivity: too few pairs to fit"}
    judge = _fit(xs[~np.isnan(jy)], jy[~np.isnan(jy)])
    people = _fit(xs[~np.isnan(hy)], hy[~np.isnan(hy)])
    named = [f for f, a, b in zip(names, judge, people, strict=True)
             if abs(a) >= NAMED_MIN and abs(a) >= 2 * abs(b) + NAMED_MARGIN]
    line = ("style sensitivity: the judge leans on " + ", ".join(
        f"{f} ({judge[names.index(f)]:+.2f} vs people {people[names.index(f)]:+.2f})" for f in named)
        + " far more than people do") if named else "style sensitivity: no feature moves the judge far more than people"
    return {**out, "judge": dict(zip(names, judge.round(4).tolist(), strict=True)),
            "people": dict(zip(names, people.round(4).tolist(), strict=True)), "named": named, "line": line}
