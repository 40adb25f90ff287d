"""The board's battles and its two rating columns: raw Bradley–Terry, and style-controlled when the protocol asks.

Each run's comparison with the anchor counts; a comparison with another board model counts only when the board
judged both runs itself (maintainer or verified): a self-reported run neither rates another model nor is linked to
one (its own verdicts would reach the other's rating through the link). A reference is matched to a board model by
fingerprint *and* revision.

The style-controlled column (:mod:`leaderboard.style_ratings`) needs both replies' style features, counted under
today's style fingerprint, for every battle. Its coefficients are fitted on the board's own runs only (maintainer,
verified, control): a self-reported run is rated with them, so its verdicts move its own rating only. When one of the
board's own runs cannot enter (no style profile: a schema-2 run; another fingerprint; anchor rows that differ from
the others'), the board gets no such column and says which runs and why (``StyleControl.refused``); a self-reported
run that cannot enter is left out of the column with its reason (``StyleControl.excluded``; its row shows none) —
never filled in, and never able to switch the column off for everyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.score.style import FEATURES, load_counter, style_difference
from leaderboard.admit import Entry
from leaderboard.models import StyleCoefficient, StyleControl
from leaderboard.protocol import BoardProtocol
from leaderboard.ratings import Battle, Rating, fit_raw, ranked_mask, ratings_of
from leaderboard.style_ratings import CI_METHOD, fit_style_ratings
from leaderboard.trust import JUDGED_BY_THE_BOARD

ANCHOR = "anchor"
Segment = tuple[Entry, str, str]
"""A run on the board, one of its comparisons, and the board system that comparison battles (ANCHOR or a run id)."""


def segments(entries: Sequence[Entry], protocol: BoardProtocol) -> list[Segment]:
    """Every comparison of the board's runs that gives battles (see the module docstring), in entry order."""
    judged = [e for e in entries if e.trust in JUDGED_BY_THE_BOARD and e.control is None]
    by_identity = {(m.fingerprint, m.revision): e.run_id
                   for e in judged for m in (e.run.result.provenance.systems["candidate"].model,)}
    out: list[Segment] = []
    for entry in entries:
        for name, stats in entry.run.result.comparisons.items():
            ref = (stats.reference_model.fingerprint, stats.reference_model.revision)
            if name == protocol.anchor.comparison:
                other = ANCHOR
            elif entry.trust in JUDGED_BY_THE_BOARD and ref in by_identity:
                other = by_identity[ref]
            else:
                continue
            if other != entry.run_id:  # a model against its own replies (an unchanged checkpoint's) is no battle
                out.append((entry, name, other))
    return out


def battles(entries: Sequence[Entry], protocol: BoardProtocol) -> list[Battle]:
    """Every dialogue-level outcome between two systems on the board (unscored dialogues are left out)."""
    return _battles_of(segments(entries, protocol))


def _battles_of(segs: Sequence[Segment]) -> list[Battle]:
    """The segments' outcomes as battles, in segment order (the order the style differences are built in)."""
    return [Battle(dialogue, entry.run_id, other, score)
            for entry, name, other in segs for dialogue, score in entry.run.outcomes[name]]


@dataclass(frozen=True)
class Rated:
    """Both rating columns (the style one empty when the board has none or refused it) and the style fit."""

    raw: dict[str, Rating]
    style: dict[str, Rating]
    style_control: StyleControl | None


def rate(entries: Sequence[Entry], protocol: BoardProtocol, *, n_boot: int, seed: int,
         ranked: Sequence[str]) -> Rated:
    """Fit the raw column and, when the protocol names style features, the style-controlled one."""
    segs = segments(entries, protocol)
    fights = _battles_of(segs)
    if not fights:
        return Rated({}, {}, None if protocol.style_control is None else
                     StyleControl(features=protocol.style_control, refused="no battles to rate"))
    raw = fit_raw(fights, anchor=ANCHOR, n_boot=n_boot, seed=seed)
    theta = np.append(raw.theta, 0.0)
    ratings = ratings_of(raw.design, theta, raw.boot, anchor_value=protocol.anchor.value, scale=400.0,
                         mask=ranked_mask(raw.design.models, ranked))
    if protocol.style_control is None:
        return Rated(ratings, {}, None)
    features = protocol.style_control
    shapers = {e.run_id for e in entries if e.trust in JUDGED_BY_THE_BOARD or e.control is not None}
    problems = _style_problems(segs, shapers)
    refused = {rid: why for rid, why in problems.items() if rid in shapers}
    if refused:
        return Rated(ratings, {}, StyleControl(features=features, refused=_refusal(refused)))
    kept = [seg for seg in segs if seg[0].run_id not in problems]
    style_fights = _battles_of(kept)
    if not style_fights:
        return Rated(ratings, {}, StyleControl(features=features, excluded=problems,
                                               refused="no battle has the style features of both replies"))
    columns = [FEATURES.index(f) for f in features]
    diffs = np.concatenate([style_difference(pairs[:, 0, columns], pairs[:, 1, columns], features)
                            for entry, name, _ in kept for pairs in (_style(entry, name),)])
    fit = fit_style_ratings(style_fights, diffs, features, anchor=ANCHOR, anchor_value=protocol.anchor.value,
                            n_boot=n_boot, seed=seed, ranked=[r for r in ranked if r not in problems],
                            raw=None if problems else raw, shapers=shapers & {e.run_id for e, _, _ in kept})
    control = StyleControl(
        features=features, fingerprint=load_counter().fingerprint, ci_method=CI_METHOD, excluded=problems,
        note=None if fit.converged else "the style-controlled fit did not converge in 100 Newton steps: read it "
                                        "with care",
        coefficients=[StyleCoefficient(feature=c.feature, points=c.points, low=c.ci_low, high=c.ci_high,
                                       sd=fit.scale[c.feature], varies=c.varies, identified=c.identified,
                                       within_share=c.within_share) for c in fit.coefficients])
    return Rated(ratings, fit.ratings, control)


def _style(entry: Entry, comparison: str) -> np.ndarray:
    style = entry.run.style
    assert style is not None  # (checked by _style_problems)
    return style[comparison]


def _names(ids: Sequence[str]) -> str:
    return ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def _refusal(problems: dict[str, str]) -> str:
    by_reason: dict[str, list[str]] = {}
    for rid, why in sorted(problems.items()):
        by_reason.setdefault(why, []).append(rid)
    return "; ".join(f"{len(ids)} of the board's own run(s) {why}: {_names(ids)}" for why, ids in by_reason.items()) \
        + " — evaluate them again with this harness (or leave them off) to get the style-controlled column; the raw " \
          "ratings are unaffected"


def _style_problems(segs: Sequence[Segment], shapers: set[str]) -> dict[str, str]:
    """Runs whose battles cannot enter the style fit, and why.

    The board's own runs are checked first: their anchor rows are what the others are checked against.
    - no style profile (a schema-2 run), or no style rows for a compared reference;
    - another style fingerprint than today's: ``load_run`` recounts a candidate's features from its replies only
      under today's phrase file and code, and features are comparable under one fingerprint only;
    - the anchor's features differ from the board's: no run can recount them (the reference file is not in the
      run), but the board's anchor replies are one file (its hash is in the protocol), so a run whose anchor rows
      differ was edited.
    """
    today = load_counter().fingerprint
    out: dict[str, str] = {}
    anchor: dict[str, tuple[float, ...]] = {}
    for entry, name, opponent in sorted(segs, key=lambda seg: seg[0].run_id not in shapers):
        rid, run = entry.run_id, entry.run
        if rid in out:
            continue
        if run.style is None or run.result.style is None:
            out[rid] = "carry no style profile (results schema 2, made before style profiles)"
        elif name not in run.style:
            out[rid] = f"lack the style rows of the {name.removeprefix('vs_')!r} replies they were compared with"
        elif run.result.style.fingerprint != today:
            out[rid] = f"were profiled with another style phrase file or code (this harness's fingerprint: {today})"
        elif opponent == ANCHOR:
            rows = run.style[name][:, 1, :]
            mine = {d: tuple(row) for (d, _), row in zip(run.outcomes[name], rows.tolist(), strict=True)}
            if any(anchor.setdefault(d, values) != values for d, values in mine.items()):
                out[rid] = ("carry style features of the anchor's replies that differ from the board's (one anchor "
                            "reference file gives one set of features: edited?)")
    return out
