"""What ``empathy check`` shows and writes: a Markdown summary, GitHub annotations, a JUnit report, JSON.

Every output is built from one :class:`~harness.gate.models.GateVerdict`; nothing here decides anything. The
units and wording of numbers are in :mod:`harness.gate.units`, the JUnit report in :mod:`harness.gate.junit`.

A check made with ``--allow-unhealthy-judge`` over a judge that failed its health check says so on the first line
of every report (``GateVerdict.banner``): the Markdown summary, the JSON (its first key) and the JUnit XML (the
line after the declaration, and a ``banner`` property).

An invalid comparison is not a basis for a verdict, so its annotations and JUnit report carry the problems and
the health floors, not the per-metric outcomes (the Markdown summary still lists the metrics, marked as such).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from harness.core.io import write_atomic
from harness.gate.junit import junit_xml
from harness.gate.models import GateVerdict, MetricVerdict
from harness.gate.units import (
    POWER,
    UPPER_LIMITS,
    amount_text,
    candidate_text,
    count_text,
    delta_ci,
    drop_text,
    health_value,
    holm_line,
    limit_text,
    needed_sentence,
    p_text,
    plural,
    value_text,
)

__all__ = ["UPPER_LIMITS", "github_annotations", "junit_xml", "markdown_summary", "write_outputs"]

_SYMBOL = {"pass": "✓", "regression": "✗", "inconclusive": "?", "invalid": "⊘", "style_only_win": "⚑"}
_HEADLINE = {"pass": "metrics non-inferior", "regression": "metrics regressed", "inconclusive": "metrics undecided"}
_METRIC_OUTCOME = {"pass": "✓ pass", "regression": "✗ regression", "inconclusive": "? inconclusive"}

def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _headline(v: GateVerdict) -> str:
    if v.outcome == "invalid":
        detail = f"the runs cannot be compared ({plural(len(v.problems), 'problem')})"
    elif v.outcome == "style_only_win":
        detail = (f"no metric regressed, but the win {', '.join(v.style_only_wins)} disappears under style control "
                  "(--fail-on-style-only-win)")
    else:
        hits = sum(m.outcome == v.outcome for m in v.metrics)
        detail = f"{hits} of {len(v.metrics)} {_HEADLINE[v.outcome]}"
    return f"{_SYMBOL[v.outcome]} **{v.outcome.upper()}** — {detail} (exit {v.exit_code})"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _metrics_table(v: GateVerdict) -> list[str]:
    head = (f"| metric | baseline | candidate | Δ [CI] | margin | outcome | n | flags a drop ≥ ({POWER} power) "
            f"| n to flag 2·margin ({POWER} power) |")
    return [head, "|---|---:|---:|---:|---:|:---|---:|---:|---:|", *(_row([
        _code(m.name), value_text(m, m.baseline), candidate_text(m), delta_ci(m), amount_text(m, m.margin),
        _METRIC_OUTCOME[m.outcome], count_text(m.n), amount_text(m, m.mde), count_text(m.n_needed)]) for m in v.metrics)]


def _health_table(v: GateVerdict) -> list[str]:
    broken_first = sorted(v.health, key=lambda h: h.ok)  # stable: otherwise as given
    return ["| run | check | value | limit | status |", "|---|---|---:|---:|:---|", *(_row([
        h.run, _code(h.name), health_value(h), limit_text(h), "✓ ok" if h.ok else "✗ broken"]) for h in broken_first)]


def _restates(warning: str, names: set[str]) -> bool:
    """Whether a warning is the verdict's own 'inconclusive: <metric> …' line for one of ``names``."""
    head = warning.removeprefix("inconclusive: ")
    return head != warning and any(head == n or head.startswith((f"{n} ", f"{n}:", f"{n}(")) for n in names)


def _warnings(v: GateVerdict) -> list[str]:
    inconclusive = [m for m in v.metrics if m.outcome == "inconclusive"]
    lines = [f"inconclusive: {m.name}: {needed_sentence(m)}." for m in inconclusive]
    # The checker words the same warning in raw units; the line above says it in the metric's units.
    names = {m.name for m in inconclusive}
    return lines + [w for w in v.warnings if not _restates(w, names)]


def markdown_summary(v: GateVerdict) -> str:
    """The gate's summary, printed on stdout and appended to ``$GITHUB_STEP_SUMMARY``.

    Args:
        v: The verdict to show.

    Returns:
        GitHub-flavoured Markdown ending with a newline: the outcome, what was compared, the metrics table with
        the Holm line, the health floors (broken ones first), the problems and the warnings.
    """
    out = [f"> ⚠ **{v.banner}**", ""] if v.banner else []
    out += ["## empathy check", "", _headline(v), "", f"- baseline: {_code(v.baseline)}",
           f"- candidate: {_code(v.candidate)}", f"- judge: {_code(v.judge)}",
           f"- dialogues: {v.n_dialogues:,} (bootstrap: {v.n_boot:,} resamples, seed {v.seed})"]
    if v.metrics:
        out += ["", "### Metrics", ""]
        if v.outcome == "invalid":
            out += ["_The comparison is invalid: these numbers are not a basis for a verdict._", ""]
        out += _metrics_table(v)
        out += ["", holm_line(v) + " 'flags a drop ≥': the smallest true drop flagged, margin included."]
    if v.style_shift or v.style_note:
        out += ["", "### Style shift (candidate replies, candidate − baseline run; reported, not gated)", "",
                *_style_table(v)]
    if v.style_control or v.style_control_note:
        out += ["", "### Style control (win rate Δ with style held equal; reported, gated only with "
                "--fail-on-style-only-win)", "", *_style_control_table(v)]
    if v.health:
        out += ["", "### Health floors", "", *_health_table(v)]
    if v.problems:
        out += ["", "### Problems", "", *(f"- {p}" for p in v.problems)]
    warnings = _warnings(v)
    if warnings:
        out += ["", "### Warnings", "", *(f"- {w}" for w in warnings)]
    return "\n".join(out) + "\n"


def _style_table(v: GateVerdict) -> list[str]:
    """The features whose paired 95 % CI excludes 0, largest relative change first; or a line why there are none."""
    if v.style_note:
        return [v.style_note]
    moved = sorted((s for s in v.style_shift if s.shifted),
                   key=lambda s: -abs(s.delta) / max(abs(s.baseline), abs(s.candidate), 1e-9))
    if not moved:
        return [f"No style feature moved (every 95 % CI of the {len(v.style_shift)} features includes 0)."]
    return ["| feature | baseline | candidate | Δ [95 % CI] |", "|---|---:|---:|---|",
            *(f"| `{s.feature}` | {s.baseline:.3g} | {s.candidate:.3g} | {s.delta:+.3g} [{s.ci_low:+.3g}, "
              f"{s.ci_high:+.3g}] |" for s in moved)]


def _style_control_table(v: GateVerdict) -> list[str]:
    """Raw and style-controlled paired Δ per comparison; a flagged row says the win came from style."""
    if v.style_control_note:
        return [v.style_control_note]
    rows = ["| comparison | raw Δ [95 % CI] | style-controlled Δ [95 % CI] | |", "|---|---|---|---|"]
    for c in v.style_control:
        flag = "⚑ **win disappears under style control**" if c.win_disappears else ""
        rows.append(f"| `{c.comparison}` | {c.raw_delta:+.3f} [{c.raw_ci_low:+.3f}, {c.raw_ci_high:+.3f}] | "
                    f"{c.delta:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}] | {flag} |")
    features = v.style_control[0].features if v.style_control else ()
    return [*rows, "", f"Held equal: {', '.join(features)} (relative differences, per SD). A flagged comparison "
            "won by style: its raw win-rate rise is real, its rise with style equal is not shown by the data."]


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(level: str, title: str, message: str) -> str:
    return f"::{level} title={_escape_property(title)}::{_escape_data(message)}"


def _regression_message(v: GateVerdict, m: MetricVerdict) -> str:
    return (f"{m.name}: Δ {delta_ci(m)} is beyond the margin of {drop_text(m, m.margin)} "
            f"(p regression = {p_text(m.p_regression)}, p pass = {p_text(m.p_pass)}, n = {m.n:,}; "
            f"Holm across {len(v.metrics)} metrics at α = {v.alpha:g}); "
            f"baseline {v.baseline}, candidate {v.candidate}")


def github_annotations(v: GateVerdict) -> list[str]:
    """GitHub Actions workflow commands for the verdict (the caller prints them when ``GITHUB_ACTIONS=true``).

    Args:
        v: The verdict to annotate.

    Returns:
        One ``::error`` line for an invalid comparison (its problems, and nothing per metric); otherwise one
        ``::error`` per regressed metric and one ``::warning`` per inconclusive metric. Titles and messages are
        escaped as workflow commands require.
    """
    if v.banner:
        lines = [_command("warning", "empathy check: unhealthy judge", v.banner)]
    else:
        lines = []
    if v.outcome == "invalid":
        problems = v.problems or ["(no problem recorded)"]
        message = "The baseline and candidate runs cannot be compared:\n" + "\n".join(f"- {p}" for p in problems)
        return [*lines, _command("error", "empathy check: invalid comparison", message)]
    for c in v.style_control:
        if c.win_disappears:
            level = "error" if v.outcome == "style_only_win" else "warning"
            lines.append(_command(level, f"empathy check: the win {c.comparison} is style only",
                                  f"raw Δ {c.raw_delta:+.3f} [{c.raw_ci_low:+.3f}, {c.raw_ci_high:+.3f}]; with "
                                  f"{', '.join(c.features)} held equal {c.delta:+.3f} [{c.ci_low:+.3f}, "
                                  f"{c.ci_high:+.3f}]"))
    for m in v.metrics:
        if m.outcome == "regression":
            lines.append(_command("error", f"empathy check: regression in {m.name}", _regression_message(v, m)))
        elif m.outcome == "inconclusive":
            message = (f"{m.name}: {needed_sentence(m)}" if m.reason else
                       f"{m.name}: Δ {delta_ci(m)} neither clears nor breaks the margin; {needed_sentence(m)}")
            lines.append(_command("warning", f"empathy check: inconclusive {m.name}", message))
    return lines


def _append_step_summary(path: Path, markdown: str) -> None:
    # Earlier steps may have written to the same summary file: append, separated by a blank line.
    separator = "\n" if path.is_file() and path.stat().st_size > 0 else ""
    with path.open("a", encoding="utf-8") as f:
        f.write(separator + markdown)


def write_outputs(v: GateVerdict, *, junit: Path | None, json_path: Path | None, env: Mapping[str, str]) -> None:
    """Write the gate's files: the JUnit report, the JSON verdict, and the GitHub step summary.

    Args:
        v: The verdict to write.
        junit: Where to write the JUnit XML report (atomically); None for none.
        json_path: Where to write the verdict as JSON (atomically, indent 2); None for none.
        env: The environment; when ``GITHUB_STEP_SUMMARY`` names a file, the Markdown summary is appended to
            it (the file is created if missing).
    """
    if junit is not None:
        write_atomic(junit, junit_xml(v))
    if json_path is not None:
        # the banner is the first key when there is one, and absent (not null) when there is none
        write_atomic(json_path, v.model_dump_json(indent=2, exclude={"banner"} if v.banner is None else None) + "\n")
    summary = env.get("GITHUB_STEP_SUMMARY", "")
    if summary:
        _append_step_summary(Path(summary), markdown_summary(v))
