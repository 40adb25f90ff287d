"""The style-controlled paired difference of ``empathy check``: is the candidate's win still there with style equal?

Per comparison both runs made (``vs_base``, ``vs_direct`` …), on the dialogues scored in both runs: each run's
per-dialogue outcome y (1 win, ½ tie, 0 loss) against the reference, and z, the normalised style differences between
that run's reply and the reference's (:func:`harness.score.style.style_difference` over
:data:`~harness.score.style.CONTROL_FEATURES`, each divided by its root mean square over both runs' rows). One joint
fit, a run intercept each and style slopes shared by both runs:

    y ~ σ(α_run + Σ_f β_f z_f)   (L2 1e-3 on the slopes, 1e-6 on the intercepts, as in the LC win rate),

and the style-controlled win rate of a run is σ(α_run), its win rate at zero style difference. Δ = σ(α_candidate) −
σ(α_baseline), with a 95 % percentile CI from a paired bootstrap of the dialogues (each resample refitted, all at
once by batched damped Newton; the gate's seed and resample count), beside the raw Δ of the win rates on the same
resamples. With no style difference anywhere the controlled win rates equal the raw ones up to the penalty. The head
to head (``vs_baseline``: the candidate judged against the baseline's replies) is one run: one intercept, and Δ is
against parity (½). A feature whose information the run intercepts absorb (< :data:`MIN_WITHIN_SHARE` left: it
differs only between the runs, e.g. emoji in every candidate reply and in no other) is left out (``left_out``) —
its effect cannot be told from the runs' own, and a penalty must not decide it.

Flag: a *win that disappears under style control* — the raw Δ's CI lies above 0 while the controlled Δ's CI reaches
0 or below: the candidate won by style. Reported in the JSON, the Markdown, the annotations and JUnit; with
``--fail-on-style-only-win`` a gate that would pass gets outcome ``style_only_win``, exit 5.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit

from harness.evaluate.runs import Run
from harness.gate.models import EXIT, StyleControlled
from harness.gate.style_shift import not_comparable, style_shift
from harness.score.resample import resample_counts
from harness.score.stats import OUTCOME_SCORE
from harness.score.style import CONTROL_FEATURES, FEATURES, style_difference

Array = NDArray[np.float64]
L2_SLOPE, L2_INTERCEPT = 1e-3, 1e-6
#: Below this share of its information left by the run intercepts a feature is left out (see ``_within_share``).
MIN_WITHIN_SHARE = 0.05
HEAD_TO_HEAD = "vs_baseline"


def style_report(baseline: Run, candidate: Run, *, seed: int, n_boot: int) -> dict[str, object]:
    """The verdict's style fields: the paired style shift and the style-controlled Δ of every comparison."""
    shift, note = style_shift(baseline, candidate, seed=seed, n_boot=n_boot)
    controlled, control_note = style_controlled(baseline, candidate, seed=seed, n_boot=n_boot)
    return {"style_shift": shift, "style_note": note, "style_control": controlled,
            "style_control_note": control_note,
            "style_only_wins": [c.comparison for c in controlled if c.win_disappears]}


def style_exit(style: dict[str, object], outcome: str, code: int, warnings: list[str],
               fail: bool) -> tuple[str, int, list[str]]:
    """A warning per win that disappears under style control, and the gate's outcome and exit code.

    With ``fail``, a passing gate with such a win becomes outcome ``style_only_win``, exit 5; a regression or an
    inconclusive gate keeps its own.
    """
    flagged = [c for c in style["style_control"] if c.win_disappears]  # type: ignore[attr-defined]
    for c in flagged:
        warnings = [*warnings, (
            f"the win {c.comparison} disappears under style control: raw Δ {c.raw_delta:+.3f} [{c.raw_ci_low:+.3f}, "
            f"{c.raw_ci_high:+.3f}], with {', '.join(c.features)} held equal {c.delta:+.3f} [{c.ci_low:+.3f}, "
            f"{c.ci_high:+.3f}] — the candidate won by style" + ("" if fail else
                                                                 " (--fail-on-style-only-win makes this exit 5)"))]
    if fail and flagged and code == EXIT["pass"]:
        return "style_only_win", EXIT["style_only_win"], warnings
    return outcome, code, warnings


def style_controlled(baseline: Run, candidate: Run, *, seed: int, n_boot: int,
                     features: tuple[str, ...] = CONTROL_FEATURES) -> tuple[list[StyleControlled], str | None]:
    """Every shared comparison's raw and style-controlled paired Δ, or none and why."""
    why = not_comparable(baseline, candidate, "style control")
    if why:
        return [], why
    columns = [FEATURES.index(f) for f in features]
    out = []
    shared = sorted(baseline.result.comparisons.keys() & candidate.result.comparisons.keys() - {HEAD_TO_HEAD})
    for comparison in [*shared, *([HEAD_TO_HEAD] if HEAD_TO_HEAD in candidate.result.comparisons else [])]:
        runs = (candidate,) if comparison == HEAD_TO_HEAD else (baseline, candidate)
        ys, zs = zip(*(_rows(run, comparison, columns) for run in runs), strict=True)
        ids = sorted(set.intersection(*(set(v) for v in (*ys, *zs))))
        if ids:
            out.append(paired_difference(comparison, ids, ys, zs, features, seed=seed, n_boot=n_boot))
    return out, None if out else "style control: not measured — the runs share no scored dialogue"


def _rows(run: Run, comparison: str, columns: list[int]) -> tuple[dict[str, float], dict[str, Array]]:
    """The run's scored outcomes of ``comparison`` and its replies' raw feature pairs (candidate, reference)."""
    y = {j.dialogue_id: OUTCOME_SCORE[j.outcome] for j in run.judgments
         if j.comparison == comparison and j.outcome is not None}
    reference = comparison.removeprefix("vs_")
    feats: dict[tuple[str, str], list[float]] = {
        (r.system, r.dialogue_id): [r.features[FEATURES[c]] for c in columns] for r in run.style or []}
    z = {d: np.array([feats[("candidate", d)], feats[(reference, d)]]) for d in y
         if ("candidate", d) in feats and (reference, d) in feats}
    return y, z


def paired_difference(comparison: str, ids: list[str], ys: tuple[dict[str, float], ...],
                      zs: tuple[dict[str, Array], ...], features: tuple[str, ...], *, seed: int,
                      n_boot: int) -> StyleControlled:
    """One comparison's raw and style-controlled Δ (see the module docstring).

    ``ys``: the runs' outcome by dialogue — (baseline, candidate), or (candidate,) alone for the head to head,
    whose baseline is parity (½); ``zs``: their raw feature pairs by dialogue (2 × features: the run's reply, the
    reference's); ``ids``: the dialogues to use.
    """
    n, k, m = len(ids), len(features), len(ys)
    y = np.array([[run[i] for i in ids] for run in ys])  # (runs × n)
    pairs = np.array([[run[i] for i in ids] for run in zs])  # (runs × n × 2 × k)
    x = style_difference(pairs[:, :, 0, :], pairs[:, :, 1, :], features).reshape(m * n, k)
    rms = np.sqrt((x ** 2).mean(axis=0))
    z = np.divide(x, rms, out=np.zeros_like(x), where=rms > 0)
    design = np.zeros((m * n, m + k))
    for r in range(m):
        design[r * n:(r + 1) * n, r] = 1.0
    design[:, m:] = z
    target = y.reshape(m * n)
    full = _fit(design, target, np.ones((1, m * n)), np.zeros((1, m + k)), m)
    share = _within_share(design, full[0], m)
    left_out = [f for j, f in enumerate(features) if rms[j] > 0 and share[j] < MIN_WITHIN_SHARE]
    if left_out:  # a feature only one run shows cannot be told from the run's intercept: left out, not guessed
        design[:, m:] *= np.array([f not in left_out for f in features], dtype=float)
        full = _fit(design, target, np.ones((1, m * n)), np.zeros((1, m + k)), m)
    counts = resample_counts(seed, n, n_boot)
    weights = np.vstack([np.ones(n), counts])  # row 0: the data themselves
    phi = np.vstack([full, _fit(design, target, np.hstack([counts] * m), np.repeat(full, n_boot, axis=0), m)])
    if m == 2:
        controlled, raw = expit(phi[:, 1]) - expit(phi[:, 0]), (weights @ y[1] - weights @ y[0]) / n
        base_raw, base, cand, cand_raw = float(y[0].mean()), float(expit(phi[0, 0])), float(expit(phi[0, 1])), y[1]
    else:
        controlled, raw = expit(phi[:, 0]) - 0.5, weights @ y[0] / n - 0.5
        base_raw, base, cand, cand_raw = 0.5, 0.5, float(expit(phi[0, 0])), y[0]
    low, high = np.percentile(controlled[1:], [2.5, 97.5])
    raw_low, raw_high = np.percentile(raw[1:], [2.5, 97.5])
    return StyleControlled(
        comparison=comparison, features=features, n=n,
        raw_baseline=base_raw, raw_candidate=float(cand_raw.mean()), raw_delta=float(raw[0]),
        raw_ci_low=float(raw_low), raw_ci_high=float(raw_high),
        baseline=base, candidate=cand, delta=float(controlled[0]), ci_low=float(low), ci_high=float(high),
        slopes={f: float(phi[0, m + j]) for j, f in enumerate(features)}, left_out=left_out,
        win_disappears=bool(raw_low > 0 and low <= 0))


def _within_share(design: Array, phi: Array, intercepts: int) -> Array:
    """Per slope: the share of its information the run intercepts do not absorb.

    0 when the feature differs only between the runs (each run's replies all differ from the reference alike): its
    effect then cannot be told from the runs' own.
    """
    p = expit(design @ phi)
    info = (design * (p * (1.0 - p))[:, None]).T @ design
    a_a, a_s, s_s = info[:intercepts, :intercepts], info[:intercepts, intercepts:], info[intercepts:, intercepts:]
    absorbed = np.einsum("ij,ij->j", a_s, np.linalg.solve(a_a + 1e-12 * np.eye(intercepts), a_s))
    total = np.diag(s_s)
    return np.asarray(np.divide(total - absorbed, total, out=np.zeros_like(total), where=total > 0),
                      dtype=np.float64)


def _fit(design: Array, target: Array, weights: Array, start: Array, intercepts: int) -> Array:
    """(fits × parameters): the penalised fit for every row of ``weights`` (per-row case weights), at once."""
    n_fits, p = weights.shape[0], design.shape[1]
    penalty = np.full(p, L2_SLOPE)
    penalty[:intercepts] = L2_INTERCEPT
    phi = start.copy()

    def loss(params: Array) -> Array:
        m = params @ design.T
        return np.asarray((weights * (np.logaddexp(0.0, m) - target * m)).sum(axis=1)
                          + 0.5 * (penalty * params ** 2).sum(axis=1))

    current = loss(phi)
    outer = (design[:, :, None] * design[:, None, :]).reshape(len(design), p * p)
    for _ in range(100):
        prob = expit(phi @ design.T)
        grad = (weights * (prob - target)) @ design + penalty * phi
        curvature = ((weights * prob * (1.0 - prob)) @ outer).reshape(n_fits, p, p)
        curvature[:, np.arange(p), np.arange(p)] += penalty
        step = -np.linalg.solve(curvature, grad[:, :, None])[:, :, 0]
        size = np.ones(n_fits)
        for _ in range(40):  # backtracking, per fit
            trial = phi + size[:, None] * step
            trial_loss = loss(trial)
            worse = trial_loss > current + 1e-4 * size * (grad * step).sum(axis=1) + 1e-12 * np.abs(current)
            if not worse.any():
                break
            size = np.where(worse, size / 2, size)
        phi, current = trial, trial_loss
        if float(np.abs(size[:, None] * step).max()) < 1e-9:
            break
    return np.asarray(phi, dtype=np.float64)
