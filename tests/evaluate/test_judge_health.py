"""Judge health in a run folder: the probe is asked, stored in probe.jsonl, checked on load, warned about, refused."""

from __future__ import annotations

import json

import pytest

from harness.core.settings import JudgeSettings
from harness.evaluate.run import EvalConfig, run_eval
from harness.evaluate.runs import PROBE, RunError, load_run
from harness.generate.replies import ModelSpec
from harness.judge.probe import load_probe
from harness.score.health import UNHEALTHY
from leaderboard.protocol import mismatches, protocol_from_run


@pytest.fixture(scope="module")
def random_judge_run(tiny_models, small_refs, tmp_path_factory):
    """A run judged by the random tiny judge (label-mass check off, as in the demo)."""
    root = tmp_path_factory.mktemp("health")
    cfg = EvalConfig(candidate=ModelSpec(str(tiny_models["candidate"]), device="cpu"),
                     judge=JudgeSettings(model=str(tiny_models["judge"]), device="cpu", cache_dir=str(root / "cache"),
                                         min_label_mass=0.0),
                     output=root / "run", references={"base": small_refs["base"]}, limit=6)
    return cfg, run_eval(cfg)


def test_random_judge_run_is_flagged_and_warns_in_one_line(random_judge_run):
    cfg, result = random_judge_run
    h = result.health
    assert h.probe_n == len(load_probe().pairs) and h.probe_accuracy is not None
    assert not h.judge_ok and h.judge_problem
    assert result.warnings[0] == f"{UNHEALTHY}: {h.judge_problem}" and "\n" not in result.warnings[0]
    stored = [json.loads(line) for line in (cfg.output / PROBE).read_text().splitlines()]
    assert [p["probe_id"] for p in stored] == [p.id for p in load_probe().pairs]
    assert all(p["judge_fingerprint"] == result.judge.fingerprint and len(p["verdicts"]) == 2 for p in stored)
    run = load_run(cfg.output)  # the loader recomputes health from probe.jsonl and accepts it
    assert run.result.health == h and len(run.probe) == h.probe_n


def test_rerun_asks_the_probe_from_the_cache(random_judge_run, tmp_path):
    cfg, result = random_judge_run
    again = run_eval(EvalConfig(candidate=cfg.candidate, judge=cfg.judge, output=tmp_path / "again",
                                references=cfg.references, limit=cfg.limit))
    assert again.health == result.health
    assert load_run(tmp_path / "again").manifest["judge"]["model_calls"] == 0


def test_load_run_refuses_an_edited_or_missing_probe(random_judge_run, tmp_path):
    import shutil

    cfg, _ = random_judge_run
    edited = tmp_path / "edited"
    shutil.copytree(cfg.output, edited)
    rows = [json.loads(line) for line in (edited / PROBE).read_text().splitlines()]
    for row in rows:  # a forged probe: the caring reply always wins
        for v in row["verdicts"]:
            v["winner"] = "candidate"
    (edited / PROBE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(RunError, match=r"health\.(judge_\w+|probe_accuracy) is .* in results.json, but the verdicts"):
        load_run(edited)
    (edited / PROBE).unlink()
    with pytest.raises(RunError, match=r"health\.\w+ is .* in results.json, but the verdicts"):
        load_run(edited)
    shutil.copy(cfg.output / PROBE, edited / PROBE)
    rows = [json.loads(line) for line in (edited / PROBE).read_text().splitlines()]
    rows[0]["judge_fingerprint"] = "0" * 16
    (edited / PROBE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(RunError, match="judge fingerprint"):
        load_run(edited)


def test_leaderboard_refuses_a_judge_that_cannot_tell_replies_apart(random_judge_run):
    _, result = random_judge_run
    protocol = protocol_from_run(result, name="b", min_scored=3, max_flip_rate=1.0, min_label_mass=0.0)
    assert f"judge health: {UNHEALTHY}: {result.health.judge_problem}" in mismatches(result, protocol)
    lenient = protocol_from_run(result, name="b", min_scored=3, max_flip_rate=1.0, min_label_mass=0.0,
                                require_judge_ok=False)
    assert not any(UNHEALTHY in m for m in mismatches(result, lenient))
