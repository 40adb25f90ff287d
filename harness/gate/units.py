"""How ``empathy check`` words its numbers, shared by every report (Markdown, annotations, JUnit).

Units follow the metric's name: win rates (``win_rate:…``, ``lc_win_rate:…``, ``head_to_head``) are fractions
shown as percentages, their differences and margins as percentage points (pp); rubric means (1–5) and anything
else are shown as plain numbers with two decimals.
"""

from __future__ import annotations

from harness.gate.models import GateVerdict, HealthCheck, MetricVerdict
from harness.gate.power import DEFAULT_DROP

#: Health checks whose limit is a maximum (every other limit is a minimum).
UPPER_LIMITS = frozenset({"position_flip_rate", "unscored_share"})

DASH = "—"
POWER = "80 %"


def is_percent(m: MetricVerdict) -> bool:
    """Whether the metric is a win rate (shown in %, its differences in pp)."""
    base = m.name.split(":", 1)[0]
    return m.kind == "head_to_head" or base == "head_to_head" or base.endswith("win_rate")


def value_text(m: MetricVerdict, x: float | None, *, unit: str = " %", sign: str = "") -> str:
    """A value (``61.0 %``), or with ``unit=" pp"`` a difference, margin or MDE, in the metric's units."""
    if x is None:
        return DASH
    return f"{x * 100:{sign}.1f}{unit}" if is_percent(m) else f"{x:{sign}.2f}"


def signed_text(m: MetricVerdict, x: float) -> str:
    """A signed value in the metric's units, without the unit (a CI bound)."""
    return value_text(m, x, unit="", sign="+")


def amount_text(m: MetricVerdict, x: float | None) -> str:
    """A difference, margin or MDE in the metric's units (``2.0 pp`` or ``0.20``)."""
    return value_text(m, x, unit=" pp")


def drop_text(m: MetricVerdict, x: float) -> str:
    """A drop (the margin, 2·margin …) in words: ``2.0 pp`` or ``0.20 points``."""
    return amount_text(m, x) if is_percent(m) else f"{x:.2f} points"


def level_text(confidence: float) -> str:
    """A confidence level as ``98.57 %``."""
    return f"{confidence * 100:.2f}".rstrip("0").rstrip(".") + " %"


def delta_ci(m: MetricVerdict) -> str:
    """``-3.1 pp [-5.0, -1.2] (98.57 % CI)``."""
    if m.delta is None:
        return DASH
    text = value_text(m, m.delta, unit=" pp", sign="+")
    if m.ci_low is not None and m.ci_high is not None:
        text += f" [{signed_text(m, m.ci_low)}, {signed_text(m, m.ci_high)}] ({level_text(m.confidence)} CI)"
    return text


def p_text(p: float | None) -> str:
    """A p-value (three decimals, or scientific below 0.001)."""
    return DASH if p is None else f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def count_text(n: int | None) -> str:
    """A count with thousands separators (— for None)."""
    return DASH if n is None else f"{n:,}"


def candidate_text(m: MetricVerdict) -> str:
    """The candidate's value; head to head: its win rate, W/L/T and the sign test."""
    if m.kind != "head_to_head":
        return value_text(m, m.candidate)
    rate = m.candidate if m.candidate is not None else (None if m.delta is None else m.delta + 0.5)
    parts = [f"{value_text(m, rate)} win"]
    if m.wins is not None and m.losses is not None and m.ties is not None:
        parts.append(f"W/L/T {m.wins}/{m.losses}/{m.ties}")
    if m.sign_test_p is not None:
        parts.append(f"sign-test p = {p_text(m.sign_test_p)}")
    return ", ".join(parts)


def target(m: MetricVerdict) -> str:
    """The drop ``n_needed`` is sized for: 2·margin, or margin + the default drop at margin 0."""
    return f"2·margin ({drop_text(m, 2 * m.margin)})" if m.margin > 0 else f"margin + {drop_text(m, DEFAULT_DROP)}"


def needed_sentence(m: MetricVerdict) -> str:
    """Why an inconclusive metric stays so: its reason, or the dialogues needed to decide it."""
    if m.reason:  # no information: more dialogues of the same judge would not help
        return f"{m.reason}; it cannot pass"
    needed = "the dialogues needed could not be estimated" if m.n_needed is None else f"≈ {m.n_needed:,} dialogues"
    return f"to flag a drop of {target(m)} with {POWER} power: {needed} (this run has {m.n:,})"


def holm_line(v: GateVerdict) -> str:
    """The sentence that says how the family-wise error is controlled."""
    return f"Family-wise error controlled with {v.correction.capitalize()} across {len(v.metrics)} metrics at α = {v.alpha:g}."


def limit_text(h: HealthCheck) -> str:
    """A health floor as ``≥ 0.900`` (or ``≤`` for a ceiling)."""
    return f"{'≤' if h.name.split(':', 1)[0] in UPPER_LIMITS else '≥'} {h.floor:.3f}"


def health_value(h: HealthCheck) -> str:
    """A health value with three decimals (— for None)."""
    return DASH if h.value is None else f"{h.value:.3f}"


def plural(n: int, noun: str) -> str:
    """``1 problem``, ``2 problems``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
