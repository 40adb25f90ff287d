"""lm-eval's own CLI with a reward-model judge: win rates without a position-flip row, the rubric refused early."""

import json
import subprocess
import sys

import pytest

from harness.core.resources import tasks_dir
from harness.llm.tiny import build_tiny_reward_model


@pytest.fixture(scope="module")
def reward_judge(tmp_path_factory):
    return build_tiny_reward_model(tmp_path_factory.mktemp("reward") / "judge")


def lm_eval(tiny_models, refs, judge, tasks, out, cache):
    metadata = {"judge": str(judge), "judge_mode": "reward", "judge_device": "cpu", "cache_dir": str(cache),
                "limit": 4, "reference_base": str(refs["base"]), "reference_direct": str(refs["direct"])}
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf",
           "--model_args", f"pretrained={tiny_models['candidate']},dtype=float32", "--include_path", str(tasks_dir()),
           "--tasks", tasks, "--metadata", json.dumps(metadata), "--device", "cpu", "--limit", "4",
           "--output_path", str(out), "--log_samples", "--apply_chat_template"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_win_rate_tasks_with_a_reward_judge_report_no_position_flip(tiny_models, small_refs, reward_judge, tmp_path):
    proc = lm_eval(tiny_models, small_refs, reward_judge, "empathy_winrate_vs_base,empathy_winrate_vs_direct",
                   tmp_path / "out", tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results_file,) = list((tmp_path / "out").rglob("results_*.json"))
    res = json.loads(results_file.read_text())["results"]
    for task in ("empathy_winrate_vs_base", "empathy_winrate_vs_direct"):
        assert 0.0 <= res[task]["win_rate,judge"] <= 1.0 and res[task]["scored,judge"] == 1.0
        assert not any(k.startswith("position_flip") for k in res[task])  # n/a, not a measured 0
    # the imported run says the same: order-free, no flip rate
    from harness.evaluate.runs import load_run
    from harness.lmeval.importer import import_lmeval

    result = import_lmeval(tmp_path / "out", tmp_path / "run")
    assert load_run(tmp_path / "run").result == result
    assert result.health.order_free and result.health.position_flip_rate is None
    assert result.judge.mode == "reward"
    assert result.comparisons["vs_base"].win_rate == pytest.approx(res["empathy_winrate_vs_base"]["win_rate,judge"])


def test_rubric_task_with_a_one_output_reward_judge_stops_before_generating(tiny_models, small_refs, reward_judge,
                                                                            tmp_path):
    proc = lm_eval(tiny_models, small_refs, reward_judge, "empathy", tmp_path / "out", tmp_path / "cache")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "rubric scoring needs an LLM judge" in last and "--tasks empathy_winrate_vs_base,empathy_winrate_vs_direct" in last
    assert not list((tmp_path / "out").rglob("samples_*.jsonl"))  # nothing generated or judged
