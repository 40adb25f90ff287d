"""The board's battles and its two rating columns: raw Bradley–Terry, and style-controlled when the protocol asks.

Each run's comparison with the anchor counts; a comparison with another board model counts only when the board
judged both runs itself (maintainer or verified): a self-reported run neither rates another model nor is linked to
one (its own verdicts would reach the other's rating through the link). A reference is matched to a board model by
fingerprint *and* revision.

The style-controlled column (:mod:`leaderboard.style_ratings`) needs both replies' style features for every battle:
a board where a rated run has no style profile (a schema-2 run), or where runs were profiled under different style
fingerprints (another phrase file), gets no such column and says why (``StyleControl.refused``) — it is never
filled from the runs that have one.
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
    return [Battle(dialogue, entry.run_id, other, score)
            for entry, name, other in segments(entries, protocol) for dialogue, score in entry.run.outcomes[name]]


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
    fights = battles(entries, protocol)
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
    fingerprint, refused = _style_fingerprint(segs)
    if refused:
        return Rated(ratings, {}, StyleControl(features=features, refused=refused))
    columns = [FEATURES.index(f) for f in features]
    diffs = np.concatenate([style_difference(pairs[:, 0, columns], pairs[:, 1, columns], features)
                            for entry, name, _ in segs for pairs in (_style(entry, name),)])
    fit = fit_style_ratings(fights, diffs, features, anchor=ANCHOR, anchor_value=protocol.anchor.value,
                            n_boot=n_boot, seed=seed, ranked=ranked, raw=raw)
    control = StyleControl(
        features=features, fingerprint=fingerprint, ci_method=CI_METHOD,
        coefficients=[StyleCoefficient(feature=c.feature, points=c.points, low=c.ci_low, high=c.ci_high,
                                       sd=fit.scale[c.feature], varies=c.varies) for c in fit.coefficients])
    return Rated(ratings, fit.ratings, control)


def _style(entry: Entry, comparison: str) -> np.ndarray:
    style = entry.run.style
    assert style is not None  # (checked by _style_fingerprint)
    return style[comparison]


def _names(ids: Sequence[str]) -> str:
    return ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def _style_fingerprint(segs: Sequence[Segment]) -> tuple[str | None, str | None]:
    """Today's style fingerprint when every battle's run was profiled with it, or why the column cannot be fitted.

    Today's only: ``load_run`` recounts a candidate's features from its replies only under today's phrase file and
    code, so only then are they the replies' own. The anchor's features, which no run can recount (the reference
    file is not in the run), must be the same in every run: the board's anchor replies are one file (its hash is in
    the protocol), so a run whose anchor rows differ was edited.
    """
    lacking = sorted({e.run_id for e, name, _ in segs if e.run.style is None or name not in e.run.style})
    if lacking:
        return None, (f"{len(lacking)} rated run(s) carry no style profile (results schema 2, made before style "
                      f"profiles): {_names(lacking)} — evaluate them again with this harness (or leave them off the "
                      "board) to get the style-controlled column; the raw ratings are unaffected")
    today = load_counter().fingerprint
    runs = {e.run_id: e for e, _, _ in segs}
    other = sorted(rid for rid, e in runs.items() if e.run.result.style is None or e.run.result.style.fingerprint != today)
    if other:
        return None, (f"{len(other)} rated run(s) were profiled with another style phrase file or code than this "
                      f"harness's (fingerprint {today}): {_names(other)} — style features are comparable under one "
                      "fingerprint only, and recounted from the replies only under today's: evaluate them again")
    anchor: dict[str, tuple[float, ...]] = {}
    differ: list[str] = []
    for entry, name, opponent in sorted(segs, key=lambda s: s[0].trust not in (*JUDGED_BY_THE_BOARD, "control")):
        if opponent != ANCHOR:
            continue
        rows = _style(entry, name)[:, 1, :]
        mine = {d: tuple(row) for (d, _), row in zip(entry.run.outcomes[name], rows.tolist(), strict=True)}
        if any(anchor.setdefault(d, values) != values for d, values in mine.items()):
            differ.append(entry.run_id)
    if differ:
        return None, (f"{len(differ)} rated run(s) carry style features of the anchor's replies that differ from the "
                      f"board's (one anchor reference file gives one set of features; edited?): {_names(sorted(differ))}"
                      " — leave them off the board or evaluate them again")
    return today, None
