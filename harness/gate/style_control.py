"""The style-controlled paired difference of ``empathy check``: is the candidate's win still there with style equal?

Per comparison both runs made (``vs_base``, ``vs_direct`` …; not the head to head), on the dialogues scored in both
runs: each run's per-dialogue outcome y (1 win, ½ tie, 0 loss) against the reference, and z, the normalised style
differences between that run's reply and the reference's (:func:`harness.score.style.style_difference` over
:data:`~harness.score.style.CONTROL_FEATURES`, each divided by its root mean square over both runs' rows). One joint
fit, a run intercept each and style slopes shared by both runs:

    y ~ σ(α_run + Σ_f β_f z_f)   (L2 1e-3 on the slopes, 1e-6 on the intercepts, as in the LC win rate),

and the style-controlled win rate of a run is σ(α_run), its win rate at zero style difference. Δ = σ(α_candidate) −
σ(α_baseline), with a 95 % percentile CI from a paired bootstrap of the dialogues (each resample refitted, all at
once by batched damped Newton; the gate's seed and resample count), beside the raw Δ of the win rates on the same
resamples. With no style difference anywhere the controlled win rates equal the raw ones up to the penalty.

Flag: a *win that disappears under style control* — the raw Δ's CI lies above 0 while the controlled Δ's CI reaches
0 or below: the candidate won by style. Reported in the JSON and the Markdown; a failure (exit 5) only with
``--fail-on-style-only-win``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit

from harness.evaluate.runs import Run
from harness.gate.models import EXIT, StyleControlled
from harness.gate.style_shift import style_shift
from harness.score.resample import resample_counts
from harness.score.stats import OUTCOME_SCORE
from harness.score.style import CONTROL_FEATURES, FEATURES, style_difference

Array = NDArray[np.float64]
L2_SLOPE, L2_INTERCEPT = 1e-3, 1e-6
HEAD_TO_HEAD = "vs_baseline"


def style_report(baseline: Run, candidate: Run, *, seed: int, n_boot: int) -> dict[str, object]:
    """The verdict's style fields: the paired style shift and the style-controlled Δ of every comparison."""
    shift, note = style_shift(baseline, candidate, seed=seed, n_boot=n_boot)
    controlled, control_note = style_controlled(baseline, candidate, seed=seed, n_boot=n_boot)
    return {"style_shift": shift, "style_note": note, "style_control": controlled,
            "style_control_note": control_note,
            "style_only_wins": [c.comparison for c in controlled if c.win_disappears]}


def style_exit(style: dict[str, object], code: int, warnings: list[str], fail: bool) -> tuple[int, list[str]]:
    """A warning per win that disappears under style control; exit 5 for it with ``fail`` when the gate passed."""
    flagged = [c for c in style["style_control"] if c.win_disappears]  # type: ignore[attr-defined]
    for c in flagged:
        warnings = [*warnings, (
            f"the win {c.comparison} disappears under style control: raw Δ {c.raw_delta:+.3f} [{c.raw_ci_low:+.3f}, "
            f"{c.raw_ci_high:+.3f}], with {', '.join(c.features)} held equal {c.delta:+.3f} [{c.ci_low:+.3f}, "
            f"{c.ci_high:+.3f}] — the candidate won by style" + ("" if fail else
                                                                 " (--fail-on-style-only-win makes this exit 5)"))]
    return (EXIT["style_only_win"] if fail and flagged and code == EXIT["pass"] else code), warnings


def style_controlled(baseline: Run, candidate: Run, *, seed: int, n_boot: int,
                     features: tuple[str, ...] = CONTROL_FEATURES) -> tuple[list[StyleControlled], str | None]:
    """Every shared comparison's raw and style-controlled paired Δ, or none and why."""
    lacking = [name for name, run in (("baseline", baseline), ("candidate", candidate)) if not run.style]
    if lacking:
        return [], (f"style control: not measured — the {' and '.join(lacking)} run has no style profile (schema 2: "
                    "re-run 'empathy eval', cached verdicts make it cheap)")
    prints = [sorted({r.fingerprint for r in run.style or []}) for run in (baseline, candidate)]
    if prints[0] != prints[1]:
        return [], (f"style control: not measured — the runs' style was counted differently (style fingerprint "
                    f"{','.join(prints[0])} vs {','.join(prints[1])})")
    columns = [FEATURES.index(f) for f in features]
    out = []
    for comparison in sorted(baseline.result.comparisons.keys() & candidate.result.comparisons.keys()):
        if comparison == HEAD_TO_HEAD:
            continue
        ys, zs = zip(*(_rows(run, comparison, columns) for run in (baseline, candidate)), strict=True)
        ids = sorted(ys[0].keys() & ys[1].keys() & zs[0].keys() & zs[1].keys())
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
    """One comparison's raw and style-controlled paired Δ (see the module docstring).

    ``ys``: the (baseline, candidate) runs' outcome by dialogue; ``zs``: their raw feature pairs by dialogue
    (2 × features: the run's reply, the reference's); ``ids``: the dialogues to use.
    """
    n, k = len(ids), len(features)
    y = np.array([[run[i] for i in ids] for run in ys])  # (2 runs × n)
    pairs = np.array([[run[i] for i in ids] for run in zs])  # (2 × n × 2 × k)
    x = style_difference(pairs[:, :, 0, :], pairs[:, :, 1, :], features).reshape(2 * n, k)
    rms = np.sqrt((x ** 2).mean(axis=0))
    z = np.divide(x, rms, out=np.zeros_like(x), where=rms > 0)
    design = np.zeros((2 * n, 2 + k))
    design[:n, 0] = design[n:, 1] = 1.0
    design[:, 2:] = z
    target = y.reshape(2 * n)
    full = _fit(design, target, np.ones((1, 2 * n)), np.zeros((1, 2 + k)))
    counts = resample_counts(seed, n, n_boot)
    weights = np.vstack([np.ones(n), counts])  # row 0: the data themselves
    phi = np.vstack([full, _fit(design, target, np.hstack([counts, counts]), np.repeat(full, n_boot, axis=0))])
    controlled = expit(phi[:, 1]) - expit(phi[:, 0])
    raw = (weights @ y[1] - weights @ y[0]) / n
    low, high = np.percentile(controlled[1:], [2.5, 97.5])
    raw_low, raw_high = np.percentile(raw[1:], [2.5, 97.5])
    return StyleControlled(
        comparison=comparison, features=features, n=n,
        raw_baseline=float(y[0].mean()), raw_candidate=float(y[1].mean()), raw_delta=float(raw[0]),
        raw_ci_low=float(raw_low), raw_ci_high=float(raw_high),
        baseline=float(expit(phi[0, 0])), candidate=float(expit(phi[0, 1])), delta=float(controlled[0]),
        ci_low=float(low), ci_high=float(high),
        slopes={f: float(phi[0, 2 + j]) for j, f in enumerate(features)},
        win_disappears=bool(raw_low > 0 and low <= 0))


def _fit(design: Array, target: Array, weights: Array, start: Array) -> Array:
    """(fits × parameters): the penalised fit for every row of ``weights`` (per-row case weights), at once."""
    n_fits, p = weights.shape[0], design.shape[1]
    penalty = np.full(p, L2_SLOPE)
    penalty[:2] = L2_INTERCEPT
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
