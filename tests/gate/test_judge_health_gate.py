"""``empathy check`` and a judge that cannot tell replies apart: refused, or (opted in) never a silent pass.

The judge is a mock backend registered like any plugin backend, because the case is a judge that answers "tie" to
every pairwise question (what SmolLM2-135M does): it fails its sanity probe and its tie-share check. Everything
else is real — replies files as candidates, run folders written by ``empathy check``'s own checkpoint mode, the
CLI's exit codes and report files.
"""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET

import pytest

from harness.cli.main import main
from harness.data.selection import run_dialogues
from tests.judge_backends import register_judge, score

N = 6


# every pairwise verdict is the tie label; rubric scores are read (3 on every dimension)
register_judge("always-tie", lambda a, b: {"A": 0.05, "B": 0.05, "C": 0.9}, lambda reply, r: score("3", r.labels))


@pytest.fixture(scope="module")
def checkpoints(tiny_models, small_refs, tmp_path_factory):
    """A caring baseline checkpoint and a gibberish candidate, evaluated once by checkpoint mode (exit 3)."""
    root = tmp_path_factory.mktemp("tie")
    dialogues, _ = run_dialogues("bundled", N)
    rng = random.Random(0)
    caring = root / "caring.jsonl"
    caring.write_text("".join(json.dumps({"dialogue_id": d.id, "response": f"I'm so sorry you feel {d.emotion}; "
                                          "that sounds really hard. I'm here if you want to talk."}) + "\n"
                              for d in dialogues))
    gibberish = root / "gibberish.jsonl"
    gibberish.write_text("".join(json.dumps({"dialogue_id": d.id, "response": " ".join(
        "".join(rng.choice("qxzvkj") for _ in range(5)) for _ in range(8))}) + "\n" for d in dialogues))
    args = ["check", "--baseline-model", str(caring), "--model", str(gibberish), "--model-backend", "replies",
            "--reference", f"base={small_refs['base']}", "--judge", str(tiny_models["judge"]),
            "--judge-backend", "always-tie", "--limit", str(N), "--cache-dir", str(root / "cache"),
            "--n-boot", "500", "--output", str(root / "ck")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMPATHY_HARNESS_CACHE", str(root / "harness-cache"))
        first = main(args)
    return {"args": args, "first": first, "baseline": str(root / "ck" / "baseline"),
            "candidate": str(root / "ck" / "candidate"), "root": root}


def test_an_unhealthy_judge_is_refused_in_checkpoint_mode(checkpoints, capsys):
    # before: ✓ PASS, exit 0 (the head to head W/L/T 0/0/6 and every win rate at Δ +0.0, CI [+0.0, +0.0])
    assert checkpoints["first"] == 3
    from harness.evaluate.runs import load_run

    health = load_run(checkpoints["candidate"]).result.health
    assert not health.judge_ok and health.tie_rate == 1.0 and health.probe_accuracy == 0.0


def test_an_unhealthy_judge_is_refused_between_runs(checkpoints, capsys, tmp_path):
    verdict = tmp_path / "verdict.json"
    code = main(["check", "--baseline", checkpoints["baseline"], "--candidate", checkpoints["candidate"],
                 "--metrics", "win_rate", "--min-rubric-parse-rate", "0", "--json", str(verdict)])
    out = capsys.readouterr().out
    assert code == 3, out
    problems = json.loads(verdict.read_text())["problems"]
    assert any(p.startswith(f"candidate run {checkpoints['candidate']}: this judge cannot tell replies apart")
               and "--allow-unhealthy-judge" in p for p in problems), problems
    assert "INVALID" in out and "100% of its verdicts are the tie label" in out


def test_with_the_opt_out_every_report_says_so_first_and_all_ties_never_pass(checkpoints, capsys, tmp_path,
                                                                             monkeypatch):
    summary, junit, verdict = tmp_path / "summary.md", tmp_path / "junit.xml", tmp_path / "verdict.json"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code = main(["check", "--baseline", checkpoints["baseline"], "--candidate", checkpoints["candidate"],
                 "--metrics", "win_rate", "--min-rubric-parse-rate", "0", "--allow-unhealthy-judge",
                 "--junit", str(junit), "--json", str(verdict)])
    out = capsys.readouterr().out
    # every verdict tied: inconclusive, exit 4 without --fail-on-inconclusive (never a pass)
    assert code == 4, out
    assert out.splitlines()[0].startswith("> ⚠ **UNHEALTHY JUDGE (--allow-unhealthy-judge): this judge cannot tell")
    assert summary.read_text().splitlines()[0] == out.splitlines()[0]
    data = json.loads(verdict.read_text())
    assert next(iter(data)) == "banner" and data["banner"].startswith("UNHEALTHY JUDGE")
    assert data["outcome"] == "inconclusive" and data["exit_code"] == 4
    assert [m["outcome"] for m in data["metrics"]] == ["inconclusive"] and "are ties" in data["metrics"][0]["reason"]
    lines = junit.read_text().splitlines()
    assert lines[1].startswith("<!-- UNHEALTHY JUDGE") and "allow-unhealthy-judge" in lines[1]
    props = {p.get("name"): p.get("value") for p in ET.parse(junit).getroot().iter("property")}
    assert props["banner"] == data["banner"] and props["outcome"] == "inconclusive"
    assert "carry no information" in out and "it cannot pass" in out


def test_checkpoint_mode_with_the_opt_out_is_inconclusive(checkpoints, capsys):
    # the head to head W/L/T 0/0/6: no decisive dialogue, so no pass (runs reused from the first check)
    code = main([*checkpoints["args"], "--allow-unhealthy-judge", "--metrics", "head_to_head"])
    out = capsys.readouterr().out
    assert code == 4, out
    assert "W/L/T 0/0/6" in out and out.startswith("> ⚠ **UNHEALTHY JUDGE")
