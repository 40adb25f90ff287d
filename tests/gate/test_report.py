"""The gate's outputs: Markdown summary, GitHub annotations, JUnit XML, JSON and the step summary."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.gate.models import EXIT, GateVerdict, HealthCheck, MetricVerdict
from harness.gate.report import github_annotations, junit_xml, markdown_summary, write_outputs


def metric(name: str, outcome: str = "pass", **kw: Any) -> MetricVerdict:
    fields: dict[str, Any] = dict(
        name=name, kind="paired", baseline=0.60, candidate=0.61, delta=0.01, ci_low=-0.012, ci_high=0.034,
        confidence=0.9857, margin=0.02, p_regression=0.97, p_pass=0.004, outcome=outcome, n=200, sd=0.3,
        mde=0.015, n_needed=350,
    )
    fields.update(kw)
    return MetricVerdict(**fields)


def rubric(outcome: str = "pass", **kw: Any) -> MetricVerdict:
    fields: dict[str, Any] = dict(baseline=3.512, candidate=3.498, delta=-0.014, ci_low=-0.081, ci_high=0.052,
                                  margin=0.2, mde=0.12, n_needed=180)
    fields.update(kw)
    return metric("rubric:cognitive", outcome, **fields)


def head_to_head(outcome: str = "pass") -> MetricVerdict:
    return metric("head_to_head", outcome, kind="head_to_head", baseline=None, candidate=0.55, delta=0.05,
                  ci_low=-0.01, ci_high=0.11, n=50, mde=None, n_needed=None, sign_test_p=0.2026,
                  wins=30, losses=20, ties=5)


HEALTH = [
    HealthCheck(run="baseline", name="parse_rate", value=0.99, floor=0.95, ok=True),
    HealthCheck(run="candidate", name="position_flip_rate", value=0.12, floor=0.30, ok=True),
]


def verdict(outcome: str, metrics: list[MetricVerdict], **kw: Any) -> GateVerdict:
    fields: dict[str, Any] = dict(
        outcome=outcome, exit_code=EXIT[outcome], alpha=0.05, metrics=metrics, health=HEALTH,
        baseline="runs/base", candidate="runs/cand", judge="judge@1a2b3c", n_dialogues=200, n_boot=2000, seed=0,
    )
    fields.update(kw)
    return GateVerdict(**fields)


@pytest.fixture
def passing() -> GateVerdict:
    return verdict("pass", [metric("win_rate:vs_base"), metric("lc_win_rate:vs_base"), rubric(), head_to_head()])


@pytest.fixture
def regression() -> GateVerdict:
    bad = metric("win_rate:vs_base", "regression", candidate=0.569, delta=-0.031, ci_low=-0.050, ci_high=-0.012,
                 p_regression=0.0004, p_pass=0.999)
    return verdict("regression", [bad, rubric(), head_to_head()])


@pytest.fixture
def inconclusive() -> GateVerdict:
    return verdict("inconclusive", [metric("win_rate:vs_base"),
                                    rubric("inconclusive", delta=-0.1, ci_low=-0.25, ci_high=0.05, n_needed=1234)],
                   warnings=["the judge's tie rate is 41 %"])


@pytest.fixture
def invalid() -> GateVerdict:
    health = [*HEALTH, HealthCheck(run="candidate", name="unscored_share", value=0.4, floor=0.1, ok=False)]
    return verdict("invalid", [metric("win_rate:vs_base")], health=health,
                   problems=["judge differs: judge@1a2b3c vs judge@ffff00", "candidate unscored_share 0.400 > 0.100"])


def cases(xml: str) -> tuple[ET.Element, list[ET.Element]]:
    root = ET.fromstring(xml)
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1 and suites[0].get("name") == "empathy-check"
    return suites[0], suites[0].findall("testcase")


def counts(el: ET.Element) -> dict[str, str | None]:
    return {k: el.get(k) for k in ("tests", "failures", "errors", "skipped")}


# --- Markdown ---


def test_markdown_pass_headline_rows_and_holm_line(passing: GateVerdict) -> None:
    md = markdown_summary(passing)
    assert "✓ **PASS** — 4 of 4 metrics non-inferior (exit 0)" in md
    for text in ("`runs/base`", "`runs/cand`", "`judge@1a2b3c`", "dialogues: 200"):
        assert text in md
    assert ("| `win_rate:vs_base` | 60.0 % | 61.0 % | +1.0 pp [-1.2, +3.4] (98.57 % CI) | 2.0 pp | ✓ pass "
            "| 200 | 1.5 pp | 350 |") in md
    assert ("| `rubric:cognitive` | 3.51 | 3.50 | -0.01 [-0.08, +0.05] (98.57 % CI) | 0.20 | ✓ pass "
            "| 200 | 0.12 | 180 |") in md
    assert "| `head_to_head` | — | 55.0 % win, W/L/T 30/20/5, sign-test p = 0.203 | +5.0 pp" in md
    assert "Family-wise error controlled with Holm across 4 metrics at α = 0.05." in md
    assert "### Problems" not in md and "### Warnings" not in md


def test_markdown_regression_headline(regression: GateVerdict) -> None:
    md = markdown_summary(regression)
    assert "✗ **REGRESSION** — 1 of 3 metrics regressed (exit 1)" in md
    assert "| `win_rate:vs_base` | 60.0 % | 56.9 % | -3.1 pp [-5.0, -1.2] (98.57 % CI) | 2.0 pp | ✗ regression" in md


def test_markdown_inconclusive_says_how_many_dialogues_are_needed(inconclusive: GateVerdict) -> None:
    md = markdown_summary(inconclusive)
    assert "? **INCONCLUSIVE** — 1 of 2 metrics undecided (exit 4)" in md
    assert ("- inconclusive: rubric:cognitive: to flag a drop of 2·margin (0.40 points) with 80 % power: ≈ 1,234 "
            "dialogues (this run has 200).") in md
    assert "- the judge's tie rate is 41 %" in md


def test_markdown_does_not_repeat_the_checkers_inconclusive_warning() -> None:
    checker = "inconclusive: rubric:cognitive (Δ CI -0.250…+0.050 spans −0.2); to decide a drop of 0.2 …"
    other = "inconclusive: rubric:cognitive_extra is not gated"
    v = verdict("inconclusive", [rubric("inconclusive", n_needed=1234)], warnings=[checker, other])
    md = markdown_summary(v)
    assert checker not in md and f"- {other}" in md
    assert md.count("≈ 1,234 dialogues") == 1


def test_markdown_n_needed_for_a_percent_metric_is_in_points() -> None:
    v = verdict("inconclusive", [metric("lc_win_rate:vs_base", "inconclusive", n_needed=5000)])
    assert "to flag a drop of 2·margin (4.0 pp) with 80 % power: ≈ 5,000 dialogues" in markdown_summary(v)
    v = verdict("inconclusive", [metric("lc_win_rate:vs_base", "inconclusive", n_needed=5000, margin=0.0)])
    assert "to flag a drop of margin + 2.0 pp with 80 % power: ≈ 5,000 dialogues" in markdown_summary(v)


def test_markdown_n_needed_unknown() -> None:
    v = verdict("inconclusive", [metric("win_rate:vs_base", "inconclusive", n_needed=None)])
    assert ("to flag a drop of 2·margin (4.0 pp) with 80 % power: the dialogues needed could not be estimated "
            "(this run has 200)" in markdown_summary(v))


def test_power_columns_say_what_they_mean(passing: GateVerdict) -> None:
    md = markdown_summary(passing)
    assert "| n | flags a drop ≥ (80 % power) | n to flag 2·margin (80 % power) |" in md
    assert "'flags a drop ≥': the smallest true drop flagged, margin included." in md
    assert "MDE and dialogues needed" not in md
    v = verdict("regression", [metric("win_rate:vs_base", "regression", mde=0.045, n_needed=900)])
    failure = cases(junit_xml(v))[1][0].find("failure")
    assert failure is not None and failure.text is not None
    assert "flags a drop ≥ 4.5 pp with 80 % power (MDE, margin included)" in failure.text
    assert "dialogues to flag a drop of 2·margin (4.0 pp) with 80 % power: 900" in failure.text


def test_markdown_invalid_lists_problems_and_broken_floors_first(invalid: GateVerdict) -> None:
    md = markdown_summary(invalid)
    assert "⊘ **INVALID** — the runs cannot be compared (2 problems) (exit 3)" in md
    assert "### Problems\n\n- judge differs: judge@1a2b3c vs judge@ffff00\n- candidate unscored_share" in md
    assert "not a basis for a verdict" in md
    health = md.split("### Health floors")[1]
    assert health.index("`unscored_share`") < health.index("`parse_rate`")
    assert "| candidate | `unscored_share` | 0.400 | ≤ 0.100 | ✗ broken |" in md
    assert "| baseline | `parse_rate` | 0.990 | ≥ 0.950 | ✓ ok |" in md


def test_markdown_escapes_pipes_in_cells() -> None:
    md = markdown_summary(verdict("pass", [metric("rubric:a|b")]))
    assert "`rubric:a\\|b`" in md


# --- annotations ---


def test_annotations_pass_is_silent(passing: GateVerdict) -> None:
    assert github_annotations(passing) == []


def test_annotations_regression_and_inconclusive() -> None:
    v = verdict("regression", [metric("win_rate:vs_base", "regression", delta=-0.031, ci_low=-0.05, ci_high=-0.012),
                               rubric("inconclusive"), metric("lc_win_rate:vs_base")])
    lines = github_annotations(v)
    assert len(lines) == 2
    assert lines[0].startswith("::error title=empathy check%3A regression in win_rate%3Avs_base::win_rate:vs_base: ")
    assert "-3.1 pp [-5.0, -1.2]" in lines[0] and "2.0 pp" in lines[0]
    assert lines[1].startswith("::warning title=empathy check%3A inconclusive rubric%3Acognitive::")
    assert "≈ 180 dialogues" in lines[1]


def test_annotations_escape_properties_and_data() -> None:
    v = verdict("invalid", [], problems=["share 40% > 10%\nsecond\rline"])
    [line] = github_annotations(v)
    assert line.startswith("::error title=empathy check%3A invalid comparison::")
    assert "share 40%25 > 10%25%0Asecond%0Dline" in line
    assert "\n" not in line and "\r" not in line
    v = verdict("regression", [metric("win_rate:a,b", "regression")])
    [line] = github_annotations(v)
    title, message = line.split("::")[1:3]
    assert title == "error title=empathy check%3A regression in win_rate%3Aa%2Cb"
    assert message.startswith("win_rate:a,b:")  # ':' and ',' stay as they are outside properties


# --- JUnit ---


def test_junit_pass_one_plain_testcase_per_metric(passing: GateVerdict) -> None:
    suite, tcs = cases(junit_xml(passing))
    assert [c.get("name") for c in tcs] == ["win_rate:vs_base", "lc_win_rate:vs_base", "rubric:cognitive", "head_to_head"]
    assert {c.get("classname") for c in tcs} == {"empathy.check"}
    assert all(len(c) == 0 for c in tcs)
    assert counts(suite) == {"tests": "4", "failures": "0", "errors": "0", "skipped": "0"}


def test_junit_regression_failure_carries_the_numbers(regression: GateVerdict) -> None:
    xml = junit_xml(regression)
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(xml)
    suite, tcs = cases(xml)
    assert counts(suite) == counts(root) == {"tests": "3", "failures": "1", "errors": "0", "skipped": "0"}
    failure = tcs[0].find("failure")
    assert failure is not None and failure.text is not None
    assert "-3.1 pp [-5.0, -1.2]" in (failure.get("message") or "")
    for text in ("delta [CI]: -3.1 pp [-5.0, -1.2] (98.57 % CI)", "margin: 2.0 pp", "p regression: 4.0e-04",
                 "p pass: 0.999", "n: 200", "Holm across 3 metrics at α = 0.05"):
        assert text in failure.text
    assert [c.find("failure") for c in tcs[1:]] == [None, None]


def test_junit_inconclusive_is_skipped(inconclusive: GateVerdict) -> None:
    suite, tcs = cases(junit_xml(inconclusive))
    assert counts(suite) == {"tests": "2", "failures": "0", "errors": "0", "skipped": "1"}
    skipped = tcs[1].find("skipped")
    assert skipped is not None and "≈ 1,234 dialogues" in (skipped.get("message") or "")


def test_junit_invalid_has_comparison_error_and_health_cases(invalid: GateVerdict) -> None:
    suite, tcs = cases(junit_xml(invalid))
    assert [c.get("name") for c in tcs] == ["comparison", "baseline:parse_rate", "candidate:position_flip_rate",
                                            "candidate:unscored_share"]
    error = tcs[0].find("error")
    assert error is not None and error.text is not None
    assert "judge differs" in error.text and "unscored_share 0.400" in error.text
    broken = tcs[3].find("failure")
    assert broken is not None and "0.400, limit ≤ 0.100" in (broken.get("message") or "")
    assert counts(suite) == {"tests": "4", "failures": "1", "errors": "1", "skipped": "0"}


def test_junit_survives_characters_xml_cannot_carry() -> None:
    v = verdict("invalid", [], health=[], problems=["reply held \x00\x1b control <&> characters"])
    _, [case] = cases(junit_xml(v))
    error = case.find("error")
    assert error is not None and "control <&> characters" in (error.text or "")


# --- files ---


def test_write_outputs_json_round_trips_and_junit_parses(tmp_path: Path, regression: GateVerdict) -> None:
    write_outputs(regression, junit=tmp_path / "out" / "junit.xml", json_path=tmp_path / "out" / "verdict.json", env={})
    assert GateVerdict.model_validate_json((tmp_path / "out" / "verdict.json").read_text()) == regression
    assert (tmp_path / "out" / "verdict.json").read_text().startswith('{\n  "schema_version": 1')
    cases((tmp_path / "out" / "junit.xml").read_text())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["junit.xml", "verdict.json"]  # no temp files


def test_write_outputs_appends_to_the_step_summary(tmp_path: Path, passing: GateVerdict,
                                                   regression: GateVerdict) -> None:
    summary = tmp_path / "step_summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    write_outputs(passing, junit=None, json_path=None, env=env)  # created when missing
    write_outputs(regression, junit=None, json_path=None, env=env)
    text = summary.read_text(encoding="utf-8")
    assert text.startswith(markdown_summary(passing))
    assert text.endswith(markdown_summary(regression))
    assert text.count("## empathy check") == 2
    assert list(tmp_path.iterdir()) == [summary]


def test_write_outputs_keeps_earlier_summary_content(tmp_path: Path, passing: GateVerdict) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("# earlier step", encoding="utf-8")
    write_outputs(passing, junit=None, json_path=None, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert summary.read_text(encoding="utf-8") == "# earlier step\n" + markdown_summary(passing)


def test_write_outputs_without_summary_env_writes_nothing(tmp_path: Path, passing: GateVerdict,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_outputs(passing, junit=None, json_path=None, env={"GITHUB_STEP_SUMMARY": ""})
    assert list(tmp_path.iterdir()) == []


def test_per_comparison_ceilings_read_as_maximums():
    from harness.gate.models import GateVerdict, HealthCheck
    from harness.gate.report import markdown_summary

    v = GateVerdict(outcome="pass", exit_code=0, alpha=0.05, baseline="b", candidate="c", judge="j", n_dialogues=6,
                    n_boot=100, seed=0, health=[HealthCheck(run="candidate", name="unscored_share:vs_base",
                                                            value=0.0, floor=0.1, ok=True)])
    assert "≤ 0.100" in markdown_summary(v)
