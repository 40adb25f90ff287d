"""The paired style shift of ``empathy check``: how the candidate's replies changed in style, feature by feature.

Per style feature (:mod:`harness.score.style`) and per dialogue both runs answered: Δ = candidate − baseline of the
candidate replies' feature; the mean Δ with a 95 % percentile bootstrap CI over dialogues (the gate's seed and
resample count; one draw for every feature). A feature has ``shifted`` when its CI excludes 0. Reported beside the
verdict, never gated: a win rate that rose because replies got longer or more formulaic is for the reader to weigh.

Both runs need a style profile made with the same counting code and phrase file (its fingerprint): a schema-2 run,
or runs counted differently, give no shift and a note that says which.
"""

from __future__ import annotations

import numpy as np

from harness.evaluate.runs import Run
from harness.gate.models import StyleShift
from harness.score.resample import resample_counts
from harness.score.style import FEATURES


def not_comparable(baseline: Run, candidate: Run, what: str) -> str | None:
    """Why the two runs' style rows cannot be compared, or None.

    A run without a profile, or runs counted with another phrase file or code (load_run holds each run to one
    fingerprint, so the run's rows name it).
    """
    lacking = [name for name, run in (("baseline", baseline), ("candidate", candidate)) if not run.style]
    if lacking:
        return (f"{what}: not measured — the {' and '.join(lacking)} run has no style profile (schema 2: re-run "
                "'empathy eval', cached verdicts make it cheap)")
    prints = [sorted({r.fingerprint for r in run.style or []}) for run in (baseline, candidate)]
    if prints[0] != prints[1]:
        return (f"{what}: not measured — the runs' style was counted differently (style fingerprint "
                f"{','.join(prints[0])} vs {','.join(prints[1])})")
    return None


def style_shift(baseline: Run, candidate: Run, *, seed: int, n_boot: int) -> tuple[list[StyleShift], str | None]:
    """Every feature's paired shift, or none and why."""
    why = not_comparable(baseline, candidate, "style shift")
    if why:
        return [], why
    rows = {name: {r.dialogue_id: r for r in run.style or [] if r.system == "candidate"}
            for name, run in (("baseline", baseline), ("candidate", candidate))}
    ids = sorted(rows["baseline"].keys() & rows["candidate"].keys())
    if not ids:
        return [], "style shift: not measured — the runs share no dialogue"
    b = np.array([[rows["baseline"][i].features[f] for f in FEATURES] for i in ids], dtype=float)
    c = np.array([[rows["candidate"][i].features[f] for f in FEATURES] for i in ids], dtype=float)
    diff = c - b
    boots = resample_counts(seed, len(ids), n_boot) @ diff / len(ids)
    low, high = np.percentile(boots, [2.5, 97.5], axis=0)
    return [StyleShift(feature=f, baseline=float(b[:, k].mean()), candidate=float(c[:, k].mean()),
                       delta=float(diff[:, k].mean()), ci_low=float(low[k]), ci_high=float(high[k]), n=len(ids),
                       shifted=bool(low[k] > 0 or high[k] < 0)) for k, f in enumerate(FEATURES)], None
