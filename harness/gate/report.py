"""What ``empathy check`` shows and writes: a Markdown summary, GitHub annotations, a JUnit report, JSON.

Every output is built from one :class:`~harness.gate.models.GateVerdict`; nothing here decides anything.

Units follow the metric's name: win rates (``win_rate:…``, ``lc_win_rate:…``, ``head_to_head``) are fractions
shown as percentages, their differences and margins as percentage points (pp); rubric means (1–5) and anything
else are shown as plain numbers with two decimals.

A check made with ``--allow-unhealthy-judge`` over a judge that failed its health check says so on the first line
of every report (``GateVerdict.banner``): the Markdown summary, the JSON (its first key) and the JUnit XML (the
line after the declaration, and a ``banner`` property).

An invalid comparison is not a basis for a verdict, so its annotations and JUnit report carry the problems and
the health floors, not the per-metric outcomes (the Markdown summary still lists the metrics, marked as such).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

from harness.core.io import write_atomic
from harness.gate.models import GateVerdict, HealthCheck, MetricVerdict
from harness.gate.power import DEFAULT_DROP

#: Health checks whose limit is a maximum (every other limit is a minimum).
UPPER_LIMITS = frozenset({"position_flip_rate", "unscored_share"})

_SYMBOL = {"pass": "✓", "regression": "✗", "inconclusive": "?", "invalid": "⊘"}
_HEADLINE = {"pass": "metrics non-inferior", "regression": "metrics regressed", "inconclusive": "metrics undecided"}
_METRIC_OUTCOME = {"pass": "✓ pass", "regression": "✗ regression", "inconclusive": "? inconclusive"}
_DASH = "—"
_POWER = "80 %"
# Characters XML 1.0 cannot carry at all; a problem string quoting a model's output may hold them.
_XML_INVALID = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _is_percent(m: MetricVerdict) -> bool:
    base = m.name.split(":", 1)[0]
    return m.kind == "head_to_head" or base == "head_to_head" or base.endswith("win_rate")


def _value(m: MetricVerdict, x: float | None, *, unit: str = " %", sign: str = "") -> str:
    """A value (``61.0 %``), or with ``unit=" pp"`` a difference, margin or MDE, in the metric's units."""
    if x is None:
        return _DASH
    return f"{x * 100:{sign}.1f}{unit}" if _is_percent(m) else f"{x:{sign}.2f}"


def _signed(m: MetricVerdict, x: float) -> str:
    return _value(m, x, unit="", sign="+")


def _amount(m: MetricVerdict, x: float | None) -> str:
    return _value(m, x, unit=" pp")


def _drop(m: MetricVerdict, x: float) -> str:
    """A drop (the margin, 2·margin …) in words: ``2.0 pp`` or ``0.20 points``."""
    return _amount(m, x) if _is_percent(m) else f"{x:.2f} points"


def _level(confidence: float) -> str:
    return f"{confidence * 100:.2f}".rstrip("0").rstrip(".") + " %"


def _delta_ci(m: MetricVerdict) -> str:
    """``-3.1 pp [-5.0, -1.2] (98.57 % CI)``."""
    if m.delta is None:
        return _DASH
    text = _value(m, m.delta, unit=" pp", sign="+")
    if m.ci_low is not None and m.ci_high is not None:
        text += f" [{_signed(m, m.ci_low)}, {_signed(m, m.ci_high)}] ({_level(m.confidence)} CI)"
    return text


def _p(p: float | None) -> str:
    return _DASH if p is None else f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _count(n: int | None) -> str:
    return _DASH if n is None else f"{n:,}"


def _candidate(m: MetricVerdict) -> str:
    """The candidate's value; head to head: its win rate, W/L/T and the sign test."""
    if m.kind != "head_to_head":
        return _value(m, m.candidate)
    rate = m.candidate if m.candidate is not None else (None if m.delta is None else m.delta + 0.5)
    parts = [f"{_value(m, rate)} win"]
    if m.wins is not None and m.losses is not None and m.ties is not None:
        parts.append(f"W/L/T {m.wins}/{m.losses}/{m.ties}")
    if m.sign_test_p is not None:
        parts.append(f"sign-test p = {_p(m.sign_test_p)}")
    return ", ".join(parts)


def _target(m: MetricVerdict) -> str:  # the drop n_needed is sized for
    return f"2·margin ({_drop(m, 2 * m.margin)})" if m.margin > 0 else f"margin + {_drop(m, DEFAULT_DROP)}"


def _needed_sentence(m: MetricVerdict) -> str:
    if m.reason:  # no information: more dialogues of the same judge would not help
        return f"{m.reason}; it cannot pass"
    needed = "the dialogues needed could not be estimated" if m.n_needed is None else f"≈ {m.n_needed:,} dialogues"
    return f"to flag a drop of {_target(m)} with {_POWER} power: {needed} (this run has {m.n:,})"


def _holm_line(v: GateVerdict) -> str:
    return f"Family-wise error controlled with {v.correction.capitalize()} across {len(v.metrics)} metrics at α = {v.alpha:g}."


def _limit(h: HealthCheck) -> str:
    return f"{'≤' if h.name.split(':', 1)[0] in UPPER_LIMITS else '≥'} {h.floor:.3f}"


def _health_value(h: HealthCheck) -> str:
    return _DASH if h.value is None else f"{h.value:.3f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _headline(v: GateVerdict) -> str:
    if v.outcome == "invalid":
        detail = f"the runs cannot be compared ({_plural(len(v.problems), 'problem')})"
    else:
        hits = sum(m.outcome == v.outcome for m in v.metrics)
        detail = f"{hits} of {len(v.metrics)} {_HEADLINE[v.outcome]}"
    return f"{_SYMBOL[v.outcome]} **{v.outcome.upper()}** — {detail} (exit {v.exit_code})"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _metrics_table(v: GateVerdict) -> list[str]:
    head = (f"| metric | baseline | candidate | Δ [CI] | margin | outcome | n | flags a drop ≥ ({_POWER} power) "
            f"| n to flag 2·margin ({_POWER} power) |")
    return [head, "|---|---:|---:|---:|---:|:---|---:|---:|---:|", *(_row([
        _code(m.name), _value(m, m.baseline), _candidate(m), _delta_ci(m), _amount(m, m.margin),
        _METRIC_OUTCOME[m.outcome], _count(m.n), _amount(m, m.mde), _count(m.n_needed)]) for m in v.metrics)]


def _health_table(v: GateVerdict) -> list[str]:
    broken_first = sorted(v.health, key=lambda h: h.ok)  # stable: otherwise as given
    return ["| run | check | value | limit | status |", "|---|---|---:|---:|:---|", *(_row([
        h.run, _code(h.name), _health_value(h), _limit(h), "✓ ok" if h.ok else "✗ broken"]) for h in broken_first)]


def _restates(warning: str, names: set[str]) -> bool:
    """Whether a warning is the verdict's own 'inconclusive: <metric> …' line for one of ``names``."""
    head = warning.removeprefix("inconclusive: ")
    return head != warning and any(head == n or head.startswith((f"{n} ", f"{n}:", f"{n}(")) for n in names)


def _warnings(v: GateVerdict) -> list[str]:
    inconclusive = [m for m in v.metrics if m.outcome == "inconclusive"]
    lines = [f"inconclusive: {m.name}: {_needed_sentence(m)}." for m in inconclusive]
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
        out += ["", _holm_line(v) + " 'flags a drop ≥': the smallest true drop flagged, margin included."]
    if v.health:
        out += ["", "### Health floors", "", *_health_table(v)]
    if v.problems:
        out += ["", "### Problems", "", *(f"- {p}" for p in v.problems)]
    warnings = _warnings(v)
    if warnings:
        out += ["", "### Warnings", "", *(f"- {w}" for w in warnings)]
    return "\n".join(out) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(level: str, title: str, message: str) -> str:
    return f"::{level} title={_escape_property(title)}::{_escape_data(message)}"


def _regression_message(v: GateVerdict, m: MetricVerdict) -> str:
    return (f"{m.name}: Δ {_delta_ci(m)} is beyond the margin of {_drop(m, m.margin)} "
            f"(p regression = {_p(m.p_regression)}, p pass = {_p(m.p_pass)}, n = {m.n:,}; "
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
    for m in v.metrics:
        if m.outcome == "regression":
            lines.append(_command("error", f"empathy check: regression in {m.name}", _regression_message(v, m)))
        elif m.outcome == "inconclusive":
            message = (f"{m.name}: {_needed_sentence(m)}" if m.reason else
                       f"{m.name}: Δ {_delta_ci(m)} neither clears nor breaks the margin; {_needed_sentence(m)}")
            lines.append(_command("warning", f"empathy check: inconclusive {m.name}", message))
    return lines


def _xml_text(text: str) -> str:
    return _XML_INVALID.sub("\ufffd", text)


def _sub(parent: ET.Element, tag: str, **attrib: str) -> ET.Element:
    return ET.SubElement(parent, tag, {k: _xml_text(a) for k, a in attrib.items()})


def _metric_details(v: GateVerdict, m: MetricVerdict) -> str:
    lines = [f"metric: {m.name} ({m.kind})", f"baseline: {_value(m, m.baseline)}", f"candidate: {_candidate(m)}",
             f"delta [CI]: {_delta_ci(m)}", f"margin: {_amount(m, m.margin)}", f"p regression: {_p(m.p_regression)}",
             f"p pass: {_p(m.p_pass)}", f"n: {m.n:,}",
             f"flags a drop ≥ {_amount(m, m.mde)} with {_POWER} power (MDE, margin included)",
             f"dialogues to flag a drop of {_target(m)} with {_POWER} power: {_count(m.n_needed)}", _holm_line(v)]
    return _xml_text("\n".join(lines))


def _metric_case(suite: ET.Element, v: GateVerdict, m: MetricVerdict) -> None:
    case = _sub(suite, "testcase", classname="empathy.check", name=m.name)
    if m.outcome == "regression":
        el = _sub(case, "failure", message=f"regression: Δ {_delta_ci(m)} beyond the margin of {_drop(m, m.margin)}",
                  type="regression")
        el.text = _metric_details(v, m)
    elif m.outcome == "inconclusive":
        _sub(case, "skipped", message=f"inconclusive: {_needed_sentence(m)}")


def _invalid_cases(suite: ET.Element, v: GateVerdict) -> None:
    case = _sub(suite, "testcase", classname="empathy.check", name="comparison")
    el = _sub(case, "error", message=f"invalid comparison: {_plural(len(v.problems), 'problem')}", type="invalid")
    el.text = _xml_text("\n".join(f"- {p}" for p in v.problems))
    for h in v.health:
        hcase = _sub(suite, "testcase", classname="empathy.check.health", name=f"{h.run}:{h.name}")
        if not h.ok:
            _sub(hcase, "failure", message=f"{h.run} {h.name} = {_health_value(h)}, limit {_limit(h)}",
                 type="health")


def junit_xml(v: GateVerdict) -> str:
    """A JUnit XML report of the verdict, as GitLab and most CI systems read it.

    Args:
        v: The verdict to report.

    Returns:
        The XML document: one ``<testcase>`` per metric (regression: ``<failure>`` whose text carries Δ, CI,
        margin and p-values; inconclusive: ``<skipped>``); for an invalid comparison instead one ``comparison``
        testcase with an ``<error>`` listing the problems, plus one testcase per health check (broken:
        ``<failure>``).
    """
    root = ET.Element("testsuites", name="empathy-check")
    suite = _sub(root, "testsuite", name="empathy-check")
    props = _sub(suite, "properties")
    for key, value in (("outcome", v.outcome), ("baseline", v.baseline), ("candidate", v.candidate),
                       ("judge", v.judge), ("alpha", f"{v.alpha:g}"), ("correction", v.correction)):
        _sub(props, "property", name=key, value=value)
    if v.banner:
        _sub(props, "property", name="banner", value=v.banner)
    if v.outcome == "invalid":
        _invalid_cases(suite, v)
    else:
        for m in v.metrics:
            _metric_case(suite, v, m)
    cases = suite.findall("testcase")
    counts = {
        "tests": len(cases),
        "failures": sum(c.find("failure") is not None for c in cases),
        "errors": sum(c.find("error") is not None for c in cases),
        "skipped": sum(c.find("skipped") is not None for c in cases),
    }
    for el in (root, suite):
        el.attrib.update({k: str(n) for k, n in counts.items()})
    ET.indent(root)
    # the banner on the line after the declaration ("--" cannot appear inside an XML comment)
    banner = f"<!-- {_xml_text(v.banner).replace('--', '‐‐')} -->\n" if v.banner else ""
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + banner + ET.tostring(root, encoding="unicode") + "\n"


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
