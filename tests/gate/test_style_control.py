"""empathy check's style-controlled paired difference: equal to the raw Δ without style differences, a padding
candidate's win flagged as disappearing, a real improvement kept; the flag in JSON and Markdown, exit 5 on request."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from harness.cli.main import main
from harness.evaluate.runs import load_run
from harness.gate.models import EXIT
from harness.gate.style_control import paired_difference, style_controlled, style_exit
from tests.judge.test_reward import reward_models, reward_runs  # noqa: F401 (fixtures)

FEATURES = ("words", "sympathy")


def _runs(rng: np.random.Generator, n: int, *, base_words: float, cand_words: float, base_skill: float,
          cand_skill: float, beta: float) -> tuple[list[str], tuple[dict, dict], tuple[dict, dict]]:
    """Two runs vs one reference (100 words): P(win) = σ(skill + beta · relative length difference / 0.2)."""
    ids = [f"d{i:03d}" for i in range(n)]
    ref = rng.normal(100, 20, n).clip(10)
    ys, zs = [], []
    for words, skill in ((base_words, base_skill), (cand_words, cand_skill)):
        mine = rng.normal(words, 0.25 * words, n).clip(5)
        rel = (mine - ref) / (mine + ref)
        p = 1 / (1 + np.exp(-(skill + beta * rel / 0.2)))
        y = (rng.random((n, 2)) < p[:, None]).mean(axis=1)
        symp = rng.integers(0, 2, (n, 2)).astype(float)
        ys.append(dict(zip(ids, y.tolist(), strict=True)))
        zs.append({i: np.array([[mine[k], symp[k, 0]], [ref[k], symp[k, 1]]]) for k, i in enumerate(ids)})
    return ids, (ys[0], ys[1]), (zs[0], zs[1])


def test_without_style_differences_the_controlled_delta_is_the_raw_one() -> None:
    rng = np.random.default_rng(0)
    ids, ys, _ = _runs(rng, 120, base_words=100, cand_words=100, base_skill=0.0, cand_skill=0.6, beta=0.0)
    same = {i: np.array([[80.0, 1.0], [80.0, 1.0]]) for i in ids}  # every reply exactly like the reference
    c = paired_difference("vs_base", ids, ys, (same, same), FEATURES, seed=1, n_boot=400)
    assert c.raw_delta == pytest.approx(np.mean(list(ys[1].values())) - np.mean(list(ys[0].values())))
    assert c.delta == pytest.approx(c.raw_delta, abs=1e-4)
    assert c.baseline == pytest.approx(c.raw_baseline, abs=1e-4) and c.candidate == pytest.approx(c.raw_candidate,
                                                                                                   abs=1e-4)
    assert c.ci_low == pytest.approx(c.raw_ci_low, abs=1e-3) and c.ci_high == pytest.approx(c.raw_ci_high, abs=1e-3)
    assert c.slopes == {"words": 0.0, "sympathy": 0.0} and not c.win_disappears


def test_a_candidate_that_only_pads_is_flagged_and_a_real_gain_is_not() -> None:
    rng = np.random.default_rng(3)
    # padding: the same skill as the baseline, twice the length; the judge pays for length
    ids, ys, zs = _runs(rng, 250, base_words=100, cand_words=220, base_skill=0.0, cand_skill=0.0, beta=1.0)
    pad = paired_difference("vs_base", ids, ys, zs, FEATURES, seed=0, n_boot=500)
    assert pad.raw_ci_low > 0.05  # the raw win rate rose clearly ...
    assert pad.ci_low <= 0 <= pad.ci_high and abs(pad.delta) < 0.06  # ... and not with length held equal
    assert pad.win_disappears and pad.slopes["words"] > 0.5 and abs(pad.slopes["sympathy"]) < 0.3
    # a real gain at the same length stays
    ids, ys, zs = _runs(rng, 250, base_words=100, cand_words=100, base_skill=0.0, cand_skill=0.9, beta=1.0)
    real = paired_difference("vs_base", ids, ys, zs, FEATURES, seed=0, n_boot=500)
    assert real.raw_ci_low > 0 and real.ci_low > 0 and not real.win_disappears
    assert real.delta == pytest.approx(1 / (1 + math.exp(-0.9)) - 0.5, abs=0.08)


def test_style_exit_flags_and_fails_only_on_request() -> None:
    rng = np.random.default_rng(3)
    ids, ys, zs = _runs(rng, 250, base_words=100, cand_words=220, base_skill=0.0, cand_skill=0.0, beta=1.0)
    pad = paired_difference("vs_base", ids, ys, zs, FEATURES, seed=0, n_boot=300)
    style = {"style_control": [pad]}
    outcome, code, warnings = style_exit(style, "pass", EXIT["pass"], [], fail=False)
    assert (outcome, code) == ("pass", 0) and len(warnings) == 1
    assert warnings[0].startswith("the win vs_base disappears under style control: raw Δ +")
    assert warnings[0].endswith("(--fail-on-style-only-win makes this exit 5)")
    assert style_exit(style, "pass", EXIT["pass"], [], fail=True)[:2] == ("style_only_win", 5)
    assert style_exit(style, "regression", EXIT["regression"], [], fail=True)[:2] == ("regression", 1)
    assert style_exit({"style_control": []}, "pass", EXIT["pass"], [], fail=True) == ("pass", 0, [])


def test_a_feature_only_the_candidate_shows_is_left_out_not_guessed() -> None:
    """Emoji in every candidate reply, in no baseline or reference reply: nothing separates its effect from the
    candidate's own, so it is left out (its slope 0) rather than given the candidate's whole gain."""
    rng = np.random.default_rng(5)
    ids, ys, zs = _runs(rng, 250, base_words=100, cand_words=100, base_skill=0.0, cand_skill=0.8, beta=0.5)
    with_emoji = tuple({i: np.hstack([z[i], [[float(r)], [0.0]]]) for i in ids} for r, z in enumerate(zs))
    c = paired_difference("vs_base", ids, ys, with_emoji, (*FEATURES, "emoji"), seed=0, n_boot=300)
    assert c.left_out == ["emoji"] and c.slopes["emoji"] == 0.0
    assert c.ci_low > 0 and not c.win_disappears  # the real gain stays


def test_the_head_to_head_is_style_controlled_against_parity() -> None:
    rng = np.random.default_rng(8)
    ids, ys, zs = _runs(rng, 250, base_words=100, cand_words=240, base_skill=0.0, cand_skill=0.0, beta=1.0)
    c = paired_difference("vs_baseline", ids, ys[1:], zs[1:], FEATURES, seed=0, n_boot=300)
    assert (c.raw_baseline, c.baseline) == (0.5, 0.5)
    assert c.raw_delta == pytest.approx(np.mean(list(ys[1].values())) - 0.5) and c.raw_ci_low > 0
    assert c.ci_low <= 0 <= c.ci_high and c.win_disappears


def test_check_reports_style_control_in_json_and_markdown(reward_runs, tmp_path, capsys):  # noqa: F811
    runs, _ = reward_runs
    poor, caring = load_run(runs["poor"]), load_run(runs["caring"])
    controlled, note = style_controlled(poor, caring, seed=0, n_boot=300)
    assert note is None and [c.comparison for c in controlled] == sorted(poor.result.comparisons)
    assert all(c.n == 6 and c.raw_ci_low <= c.raw_delta <= c.raw_ci_high for c in controlled)
    verdict = tmp_path / "verdict.json"
    code = main(["check", "--baseline", str(runs["poor"]), "--candidate", str(runs["caring"]), "--metrics",
                 "win_rate", "--n-boot", "500", "--json", str(verdict)])
    out = capsys.readouterr().out
    found = json.loads(verdict.read_text())
    assert (code, found["outcome"], found["exit_code"]) == (0, "pass", 0)  # reported, not gated, without the flag
    assert "### Style control" in out and "| `vs_base` |" in out
    assert [c["comparison"] for c in found["style_control"]] == [c.comparison for c in controlled]
    assert found["style_only_wins"] == [c.comparison for c in controlled if c.win_disappears]
    # the same replies: no win, nothing flagged, exit 0 even with the flag
    again = main(["check", "--baseline", str(runs["caring"]), "--candidate", str(runs["caring_again"]),
                  "--n-boot", "500", "--fail-on-style-only-win", "--json", str(verdict)])
    assert again == 0 and json.loads(verdict.read_text())["style_only_wins"] == []


def test_the_flag_reaches_the_exit_code_through_the_cli(reward_runs, tmp_path, capsys, monkeypatch):  # noqa: F811
    """The CLI plumbing of --fail-on-style-only-win. The style-controlled result itself is swapped for the padding
    case above (real runs whose win disappears would need a judge that pays for length; the computation is tested
    on its own above), so this checks only option → gate → exit code, JSON and Markdown."""
    import harness.gate.style_control as sc

    rng = np.random.default_rng(3)
    ids, ys, zs = _runs(rng, 250, base_words=100, cand_words=220, base_skill=0.0, cand_skill=0.0, beta=1.0)
    pad = paired_difference("vs_base", ids, ys, zs, FEATURES, seed=0, n_boot=300)
    monkeypatch.setattr(sc, "style_controlled", lambda *a, **k: ([pad], None))
    runs, _ = reward_runs
    verdict = tmp_path / "verdict.json"
    args = ["check", "--baseline", str(runs["poor"]), "--candidate", str(runs["caring"]), "--metrics", "win_rate",
            "--n-boot", "500", "--json", str(verdict)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "⚑ **win disappears under style control**" in out and "makes this exit 5" in out
    assert main([*args, "--fail-on-style-only-win"]) == 5
    found = json.loads(verdict.read_text())
    assert (found["outcome"], found["exit_code"], found["style_only_wins"]) == ("style_only_win", 5, ["vs_base"])
    out = capsys.readouterr().out
    assert "⚑ **STYLE_ONLY_WIN** — no metric regressed, but the win vs_base disappears under style control" in out
    junit = tmp_path / "junit.xml"
    assert main([*args, "--fail-on-style-only-win", "--junit", str(junit)]) == 5
    text = junit.read_text()
    assert 'classname="empathy-check.style-control" name="vs_base"' in text
    assert '<failure message="the win disappears under style control">' in text
