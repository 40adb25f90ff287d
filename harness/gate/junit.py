"""The JUnit XML report of ``empathy check``, as GitLab and most CI systems read it."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from harness.gate.models import GateVerdict, MetricVerdict
from harness.gate.units import (
    POWER,
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
    target,
    value_text,
)

# Characters XML 1.0 cannot carry at all; a problem string quoting a model's output may hold them.
_XML_INVALID = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return _XML_INVALID.sub("\ufffd", text)


def _sub(parent: ET.Element, tag: str, **attrib: str) -> ET.Element:
    return ET.SubElement(parent, tag, {k: _xml_text(a) for k, a in attrib.items()})


def _metric_details(v: GateVerdict, m: MetricVerdict) -> str:
    lines = [f"metric: {m.name} ({m.kind})", f"baseline: {value_text(m, m.baseline)}", f"candidate: {candidate_text(m)}",
             f"delta [CI]: {delta_ci(m)}", f"margin: {amount_text(m, m.margin)}", f"p regression: {p_text(m.p_regression)}",
             f"p pass: {p_text(m.p_pass)}", f"n: {m.n:,}",
             f"flags a drop ≥ {amount_text(m, m.mde)} with {POWER} power (MDE, margin included)",
             f"dialogues to flag a drop of {target(m)} with {POWER} power: {count_text(m.n_needed)}", holm_line(v)]
    return _xml_text("\n".join(lines))


def _metric_case(suite: ET.Element, v: GateVerdict, m: MetricVerdict) -> None:
    case = _sub(suite, "testcase", classname="empathy.check", name=m.name)
    if m.outcome == "regression":
        el = _sub(case, "failure", message=f"regression: Δ {delta_ci(m)} beyond the margin of {drop_text(m, m.margin)}",
                  type="regression")
        el.text = _metric_details(v, m)
    elif m.outcome == "inconclusive":
        _sub(case, "skipped", message=f"inconclusive: {needed_sentence(m)}")


def _invalid_cases(suite: ET.Element, v: GateVerdict) -> None:
    case = _sub(suite, "testcase", classname="empathy.check", name="comparison")
    el = _sub(case, "error", message=f"invalid comparison: {plural(len(v.problems), 'problem')}", type="invalid")
    el.text = _xml_text("\n".join(f"- {p}" for p in v.problems))
    for h in v.health:
        hcase = _sub(suite, "testcase", classname="empathy.check.health", name=f"{h.run}:{h.name}")
        if not h.ok:
            _sub(hcase, "failure", message=f"{h.run} {h.name} = {health_value(h)}, limit {limit_text(h)}",
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
        for c in v.style_control:  # reported; a failure only with --fail-on-style-only-win
            case = _sub(suite, "testcase", classname="empathy-check.style-control", name=c.comparison)
            text = (f"raw Δ {c.raw_delta:+.4f} [{c.raw_ci_low:+.4f}, {c.raw_ci_high:+.4f}]; style-controlled Δ "
                    f"{c.delta:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}] ({', '.join(c.features)} held equal)")
            if c.win_disappears and v.outcome == "style_only_win":
                _sub(case, "failure", message="the win disappears under style control").text = text
            else:
                _sub(case, "system-out").text = text + ("; the win disappears under style control (reported)"
                                                        if c.win_disappears else "")
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
