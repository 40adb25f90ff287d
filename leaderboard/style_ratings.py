"""Style-controlled Bradley–Terry ratings: Chatbot Arena's style control on the board's battles.

The raw fit (:mod:`leaderboard.ratings`) explains each battle by the two systems' ratings alone. The controlled fit
adds the battle's style differences as covariates shared by every system:

    P(a beats b) = σ(θ_a − θ_b + Σ_f β_f · z_f),    z_f = d_f / rms(d_f),

where ``d_f`` is the normalised difference of feature ``f`` between a's and b's replies to the battle's dialogue —
relative for counts, ``(a − b) / (a + b)`` (0 when both are 0; Arena's length term), plain ``a − b`` for the reading
grade — and ``rms`` its root mean square over all the board's battles, so each β is "log-odds per SD of the
difference" whatever the unit. The θ are the style-controlled ratings: what a system wins with its style made equal
to its opponent's. β, shown in rating points, says what the judge pays for style ("+1 SD of relative length is
worth N points"). The same small L2 penalty as the raw fit is on θ and β; θ starts from the raw fit, and the joint
maximum likelihood is found by damped Newton with the exact Hessian (a feature that never varies gets β = 0).
With no style difference anywhere (every z = 0) the controlled ratings are the raw ones.

CIs: the raw fit's own dialogue resamples, each refitted exactly (:mod:`leaderboard.ratings`), plus what style
control changes in that resample, from a *score* bootstrap (Kline & Santos 2012): one Newton step from the full-data
fit, φ* = φ̂ − H⁻¹ Σ_d (c_d − 1) g_d (g_d: dialogue d's gradient contribution, c_d its draw count), for the
controlled and for the raw model:  θ*_controlled = θ*_raw (exact) + (θ̂_controlled − θ̂_raw) − (step_controlled −
step_raw).  Refitting the controlled model exactly for 1,000 systems × 250 dialogues × 1,000 resamples would cost
~10⁹ battle evaluations per Newton step; this costs one (resamples × dialogues) product and one solve per model,
keeps the raw refits' exactness for the nonlinear part (a score step alone is off by up to ~10 % of a CI's width
at 80 % win rates), and with no style difference gives the raw CIs exactly. A system unrated in a resample of the
raw fit is unrated in it here. Ranks and rank ranges as in the raw fit.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from scipy.linalg import cho_factor, cho_solve, lu_factor, lu_solve
from scipy.special import expit

from harness.score.lc import softplus
from leaderboard.ratings import (
    L2,
    Battle,
    Design,
    Rating,
    RawFit,
    check_scale,
    draw_counts,
    fit_raw,
    ranked_mask,
    ratings_of,
)

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

CI_METHOD = "raw dialogue-bootstrap refits + score-bootstrap style correction"
_MAX_NEWTON = 100
#: Below this within-system share of its information a feature is not separable from the ratings (left out).
MIN_WITHIN_SHARE = 0.05


@dataclass(frozen=True)
class Coefficient:
    """What the judge pays for one style feature: rating points per +1 SD (root mean square) of its difference."""

    feature: str
    points: float
    ci_low: float
    ci_high: float
    varies: bool
    """False when the feature's difference is 0 in every battle: nothing to control, β is 0."""
    identified: bool = True
    """False when the feature's differences lie (almost) all between systems, not within a system's battles: the
    data cannot tell its effect from the ratings, so it is left out of the control (β = 0)."""
    within_share: float | None = None
    """The share of the feature's information left once the ratings are fitted (see :data:`MIN_WITHIN_SHARE`)."""


@dataclass(frozen=True)
class StyleFit:
    """The style-controlled ratings and the fitted style coefficients."""

    ratings: dict[str, Rating]
    coefficients: tuple[Coefficient, ...]
    scale: dict[str, float]
    """Feature → the root mean square of its normalised difference (what "1 SD" is)."""
    converged: bool = True


def fit_style_ratings(
    battles: Sequence[Battle], differences: Array, features: Sequence[str], *, anchor: str,
    anchor_value: float = 1000.0, scale: float = 400.0, n_boot: int = 1000, seed: int = 0,
    ranked: Collection[str] | None = None, raw: RawFit | None = None, shapers: Collection[str] | None = None,
) -> StyleFit:
    """Fit style-controlled Bradley–Terry ratings (see the module docstring).

    Args:
        battles: As for :func:`leaderboard.ratings.fit_ratings`.
        differences: (battles × features) normalised style differences, a's reply minus b's
            (:func:`style_difference`), row k for ``battles[k]``.
        features: The feature names of the columns.
        anchor: As for :func:`~leaderboard.ratings.fit_ratings`.
        anchor_value: As there.
        scale: As there.
        n_boot: As there.
        seed: As there: the same seed gives the same dialogue resamples as the raw fit.
        ranked: As there.
        raw: The raw fit of the same battles (:func:`leaderboard.ratings.fit_raw`, same ``n_boot`` and ``seed``),
            when the caller has it; else it is fitted here.
        shapers: The systems whose battles estimate the style coefficients (default: all). A battle with a system
            outside them is rated with the coefficients the others gave: its verdicts move its own rating only.

    Raises:
        ValueError: what :func:`~leaderboard.ratings.fit_ratings` refuses; ``differences`` of the wrong shape or
            not finite; a name in ``shapers`` that is in no battle.
    """
    x = np.asarray(differences, dtype=np.float64)
    if x.shape != (len(battles), len(features)):
        raise ValueError(f"style differences have shape {x.shape}; need one row per battle and one column per "
                         f"feature: ({len(battles)}, {len(features)})")
    if not np.isfinite(x).all():
        raise ValueError("style differences hold NaN or infinity: every battle needs both replies' features")
    check_scale(scale, n_boot)
    if raw is None:
        raw = fit_raw(battles, anchor=anchor, n_boot=n_boot, seed=seed)
    elif (raw.boot is None) != (n_boot == 0) or (raw.boot is not None and len(raw.boot) != n_boot):
        raise ValueError(f"the raw fit given has {0 if raw.boot is None else len(raw.boot)} resamples, not {n_boot}")
    design, n = raw.design, raw.design.n_free
    shaping = ranked_mask(design.models, shapers) if shapers is not None else np.ones(n + 1, dtype=bool)
    shaping[-1] = True  # the anchor
    rows = _Rows.of(battles, design, x, shaping)
    start = np.concatenate([raw.theta, np.zeros(x.shape[1])])
    phi, converged = _fit(rows, start)
    share = _within_share(rows, phi)
    identified = (rows.rms > 0) & (share >= MIN_WITHIN_SHARE)
    if not identified[rows.rms > 0].all():  # refit with only the features the data can tell from the ratings
        rows = rows.keep(identified)
        phi, converged = _fit(rows, start)
    theta = np.append(phi[:n], 0.0)
    points = scale / math.log(10.0)
    beta = points * phi[n:]
    boot = b_low = b_high = None
    if raw.boot is not None:
        counts = draw_counts(n_boot, design.games.shape[0], seed)
        step = _score_steps(rows, phi, counts)
        step_raw = _score_steps(rows.without_style(), raw.theta, counts)
        boot = raw.boot.copy()
        boot[:, :n] += (phi[:n] - raw.theta) - (step[:, :n] - step_raw)
        b_low, b_high = np.percentile(points * (phi[n:] - step[:, n:]), [2.5, 97.5], axis=0)
    ratings = ratings_of(design, theta, boot, anchor_value=anchor_value, scale=scale,
                         mask=ranked_mask(design.models, ranked))
    coefficients = tuple(
        Coefficient(feature=f, points=float(beta[k]), ci_low=float(beta[k] if b_low is None else b_low[k]),
                    ci_high=float(beta[k] if b_high is None else b_high[k]), varies=bool(rows.rms[k] > 0),
                    identified=bool(identified[k]) or not rows.rms[k] > 0,
                    within_share=float(share[k]) if rows.rms[k] > 0 else None)
        for k, f in enumerate(features))
    return StyleFit(ratings=ratings, coefficients=coefficients, converged=converged,
                    scale={f: float(rows.rms[k]) for k, f in enumerate(features)})


@dataclass(frozen=True)
class _Rows:
    """The battles one by one: slots (anchor = ``n``, held at 0), dialogue index, score and scaled covariates."""

    left: IntArray
    right: IntArray
    dialogue: IntArray
    score: Array
    z: Array
    rms: Array
    n: int
    """Number of free systems."""
    shaping: npt.NDArray[np.bool_]
    """Battles whose both sides are shapers: only they estimate the coefficients."""
    pair: IntArray
    """Each battle's pair of slots, an index into ``ends``."""
    ends: IntArray
    """(pairs × 2): the two slots of each pair."""

    @classmethod
    def of(cls, battles: Sequence[Battle], design: Design, x: Array, shapers: npt.NDArray[np.bool_]) -> _Rows:
        slot = {name: k for k, name in enumerate(design.models)}
        dialogues = {d: k for k, d in enumerate(sorted({bt.dialogue_id for bt in battles}))}
        left = np.array([slot[bt.a] for bt in battles], dtype=np.intp)
        right = np.array([slot[bt.b] for bt in battles], dtype=np.intp)
        shaping = shapers[left] & shapers[right]
        # the unit of a coefficient ("1 SD") is the shapers' too: another battle moves nothing
        rms = np.sqrt((x[shaping] ** 2).mean(axis=0)) if shaping.any() else np.zeros(x.shape[1])
        z = np.divide(x, rms, out=np.zeros_like(x), where=rms > 0)
        size = design.n_free + 1
        codes, pair = np.unique(left * size + right, return_inverse=True)
        return cls(left=left, right=right,
                   dialogue=np.array([dialogues[bt.dialogue_id] for bt in battles], dtype=np.intp),
                   score=np.array([bt.score_a for bt in battles], dtype=np.float64), z=z, rms=rms,
                   n=design.n_free, shaping=shaping, pair=pair.astype(np.intp),
                   ends=np.stack([codes // size, codes % size], axis=1).astype(np.intp))

    def without_style(self) -> _Rows:
        return replace(self, z=self.z[:, :0], rms=self.rms[:0])

    def keep(self, features: npt.NDArray[np.bool_]) -> _Rows:
        """The same rows with the other features' differences set to 0 (their coefficients stay at 0)."""
        return replace(self, z=np.where(features, self.z, 0.0))

    def subset(self, mask: npt.NDArray[np.bool_]) -> _Rows:
        if mask.all():
            return self
        return replace(self, left=self.left[mask], right=self.right[mask], dialogue=self.dialogue[mask],
                       score=self.score[mask], z=self.z[mask], shaping=self.shaping[mask], pair=self.pair[mask])

    def margin(self, phi: Array) -> Array:
        theta = np.append(phi[:self.n], 0.0)
        return np.asarray(theta[self.left] - theta[self.right] + self.z @ phi[self.n:], dtype=np.float64)

    def loss(self, phi: Array) -> float:
        m = self.margin(phi)
        return float(softplus(m).sum() - self.score @ m + 0.5 * L2 * phi @ phi)

    def gradient(self, residual: Array, phi: Array) -> Array:
        """The estimating equations: θ from every battle, β from the shaping battles only."""
        size = self.n + 1
        g_theta = np.bincount(self.left, residual, size) - np.bincount(self.right, residual, size)
        return np.concatenate([g_theta[:self.n], self.z.T @ (residual * self.shaping)]) + L2 * phi

    def jacobian(self, weight: Array, penalty: float = L2) -> Array:
        """Their derivative: the Hessian of the likelihood when every battle shapes (else its β rows masked)."""
        size, n, k = self.n + 1, self.n, self.z.shape[1]
        # θθ: a weighted graph Laplacian — summed per pair first (few), then placed
        per_pair = np.bincount(self.pair, weight, len(self.ends))
        a, b = self.ends[:, 0], self.ends[:, 1]
        laplacian = np.zeros((size, size))
        np.add.at(laplacian, (a, b), -per_pair)
        np.add.at(laplacian, (b, a), -per_pair)
        laplacian[np.diag_indices(size)] += np.bincount(a, per_pair, size) + np.bincount(b, per_pair, size)
        h = np.zeros((n + k, n + k))
        h[:n, :n] = laplacian[:n, :n]
        wz = self.z * weight[:, None]
        shaped = wz * self.shaping[:, None]
        h[:n, n:] = _by_slot(self, wz)[:n]
        h[n:, :n] = _by_slot(self, shaped)[:n].T
        h[n:, n:] = self.z.T @ shaped
        h[np.diag_indices_from(h)] += penalty
        return h


def _by_slot(rows: _Rows, values: Array) -> Array:
    """(slots × features): Σ over a slot's battles of ``values``, + on its left side, − on its right."""
    from scipy import sparse

    size, count = rows.n + 1, len(rows.left)
    if not values.shape[1]:
        return np.zeros((size, 0))
    incidence = sparse.csr_matrix(
        (np.concatenate([np.ones(count), -np.ones(count)]),
         (np.concatenate([rows.left, rows.right]), np.tile(np.arange(count), 2))), shape=(size, count))
    return np.asarray(incidence @ values)


def _fit(rows: _Rows, start: Array) -> tuple[Array, bool]:
    """The estimates, and True when both stages converged (damped Newton each).

    First (θ of the shapers, β) by maximum likelihood on the shaping battles; then every θ with β held, by maximum
    likelihood on all battles (the shapers' θ do not move: no other battle involves them).
    """
    phi, done = _newton(rows.subset(rows.shaping), start, free_beta=True)
    if rows.shaping.all():
        return phi, done
    phi, done_b = _newton(rows, phi, free_beta=False)
    return phi, done and done_b


def _newton(rows: _Rows, phi: Array, *, free_beta: bool) -> tuple[Array, bool]:
    """Penalised maximum likelihood by damped Newton with a backtracking line search (β held unless ``free_beta``)."""
    n = rows.n
    free = slice(None) if free_beta else slice(0, n)
    loss = rows.loss(phi)
    for _ in range(_MAX_NEWTON):
        p = expit(rows.margin(phi))
        grad = rows.gradient(p - rows.score, phi)[free]
        step = np.zeros_like(phi)
        step[free] = -cho_solve(cho_factor(rows.jacobian(p * (1.0 - p))[free, free]), grad)
        t = 1.0
        while True:
            trial = phi + t * step
            trial_loss = rows.loss(trial)
            if trial_loss <= loss + 1e-4 * t * float(grad @ step[free]) or t < 1e-10:
                break
            t *= 0.5
        phi, loss = trial, trial_loss
        if float(np.abs(t * step).max(initial=0.0)) < 1e-10:
            return phi, True
    return phi, False


def _within_share(rows: _Rows, phi: Array) -> Array:
    """Per feature: the share of its information (on the shaping battles) that the ratings do not absorb.

    With I the unpenalised information of (θ, β), it is the diagonal of I_ββ − I_βθ I_θθ⁻¹ I_θβ over that of
    I_ββ: 1 when the feature varies independently of who plays, ~0 when each system's battles all carry the same
    difference (a feature only one model ever shows, against an anchor that never does): then no data separate its
    effect from that system's rating.
    """
    shaping = rows.subset(rows.shaping)
    n, k = rows.n, rows.z.shape[1]
    p = expit(shaping.margin(phi))
    info = shaping.jacobian(p * (1.0 - p), penalty=0.0)
    t_t, t_b, b_b = info[:n, :n], info[:n, n:], info[n:, n:]
    t_t[np.diag_indices(n)] += np.where(np.diag(t_t) > 0, 1e-9, 1.0)  # systems with no shaping battle
    absorbed = t_b.T @ cho_solve(cho_factor(t_t), t_b)
    total = np.diag(b_b)
    return np.asarray(np.divide(total - np.diag(absorbed), total, out=np.zeros(k), where=total > 0),
                      dtype=np.float64)


def _score_steps(rows: _Rows, phi: Array, counts: Array) -> Array:
    """(resamples × parameters): J⁻¹ Σ_d (c_d − 1) ψ_d at ``phi``, the full fit (see the module docstring)."""
    n, k = rows.n, rows.z.shape[1]
    n_dialogues, size = counts.shape[1], rows.n + 1
    p = expit(rows.margin(phi))
    residual = p - rows.score
    per_dialogue = (np.bincount(rows.dialogue * size + rows.left, residual, n_dialogues * size)
                    - np.bincount(rows.dialogue * size + rows.right, residual, n_dialogues * size))
    g = np.empty((n_dialogues, n + k))
    g[:, :n] = per_dialogue.reshape(n_dialogues, size)[:, :n]
    shaped = residual * rows.shaping
    for f in range(k):
        g[:, n + f] = np.bincount(rows.dialogue, shaped * rows.z[:, f], n_dialogues)
    lu = lu_factor(rows.jacobian(p * (1.0 - p)))
    return np.asarray(lu_solve(lu, ((counts - 1.0) @ g).T).T)
