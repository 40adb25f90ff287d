"""``empathy pipeline`` end to end on tiny models, and ``python -m harness``."""

from __future__ import annotations

import json

from harness.cli.main import main


def test_pipeline_end_to_end(tmp_path, tiny_models, capsys, monkeypatch):
    """Direct, targeted and targeted + an on-policy round (ranked by a tiny reward model), all evaluated."""
    from harness.llm.tiny import build_tiny_reward_model
    from harness.train.resume import read_record, step_identity

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "pipe"
    ranker = build_tiny_reward_model(tmp_path / "rm", seed=3)
    config = tmp_path / "train.yaml"
    config.write_text("onpolicy:\n  samples: 3\n  max_new_tokens: 24\n  drop_unfinished: false\n")
    code = main(["pipeline", "--base", str(tiny_models["base"]), "--teacher", str(tiny_models["direct"]),
                 "--judge", str(tiny_models["judge"]), "--strategy", "all_three", "--limit", "24",
                 "--device", "cpu", "--teacher-device", "cpu", "--judge-device", "cpu", "--output", str(out),
                 "--onpolicy", "--onpolicy-judge", str(ranker), "--onpolicy-judge-device", "cpu",
                 "--config", str(config)])
    # the random judge's label mass is below the 0.5 floor: every verdict unscored, so the pipeline says so and
    # exits 1 (as `empathy eval` does), with every file written
    captured = capsys.readouterr()
    err = captured.err
    assert code == 1 and "error: no dialogue was scored in vs_base, vs_direct: all 24 dialogues unscored" in err, err
    assert "error: no dialogue was scored in vs_base, vs_direct, vs_targeted" in err, err
    assert "all_three + on-policy round" in captured.out  # the candidates side by side
    # the third candidate: the targeted strategy's own SFT policy, DPO on its replies ranked by the reward model
    pipeline = json.loads((out / "pipeline.json").read_text())
    onpolicy = pipeline["onpolicy"]
    assert onpolicy["pairs"] > 0 and onpolicy["pairs"] + sum(onpolicy["dropped"].values()) == onpolicy["dialogues"] == 24
    assert onpolicy["same_judge_as_evaluation"] is False and onpolicy["judge"] == str(ranker)
    trained = out / "train" / "all_three"
    samples_record = read_record(trained / "onpolicy" / "samples")
    assert samples_record["inputs"]["base"] == step_identity(read_record(trained / "sft"))  # one SFT step for both
    assert read_record(trained / "onpolicy" / "pairs")["inputs"]["base"] == onpolicy["judge_fingerprint"]
    card = (trained / "onpolicy" / "candidate" / "README.md").read_text()
    assert "## On-policy round" in card and f"kept: {onpolicy['pairs']} best-vs-worst pairs of 24 dialogues" in card
    assert pipeline["candidates"]["onpolicy"] == str(trained / "onpolicy" / "candidate")
    third = json.loads((out / "onpolicy" / "results.json").read_text())
    assert set(third["comparisons"]) == {"vs_base", "vs_direct", "vs_targeted"}
    assert third["comparisons"]["vs_targeted"]["reference_model"]["name"] == str(trained / "candidate")
    first = json.loads((out / "results.json").read_text())
    assert third["vs_base"]["reference_model"] == first["vs_base"]["reference_model"]  # one base reference set
    result = json.loads((out / "results.json").read_text())
    for name in ("vs_base", "vs_direct"):
        for key in ("win_rate", "ci_low", "ci_high", "tie_rate", "position_flip_rate", "n_scored", "n_unscored"):
            assert key in result[name]
        assert result[name]["n_scored"] + result[name]["n_unscored"] == 24
    assert set(result["rubric"]) == {"cognitive", "affective", "compassionate"}
    for strategy in ("direct", "all_three"):
        card = (out / "train" / strategy / "candidate" / "README.md").read_text()
        assert f"strategy: `{strategy}`" in card and "LoRA SFT" in card
    pipeline = json.loads((out / "pipeline.json").read_text())
    guard = pipeline["distill"]["all_three"]["overlap_guard"]
    assert guard["refused"] == 24 and guard["eval_dialogues"] == 24  # the evaluated dialogues were never trained on
    assert result["vs_direct"]["reference_model"]["name"] == str(out / "train" / "direct" / "candidate")
    assert sorted(p.name for p in cwd.iterdir()) == []  # nothing left in the current directory


def test_python_m_harness_is_the_cli():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "harness", "--help"], capture_output=True, text=True, check=True)
    for command in ("distill", "train", "pipeline", "validate-judge"):
        assert command in out.stdout


def test_a_failed_pipeline_rerun_leaves_no_stale_results(tmp_path, tiny_models):
    """The old results.json goes before distillation starts: a crash there must not leave it beside new files."""
    import pytest

    from harness.core.errors import HarnessError
    from harness.core.settings import JudgeSettings
    from harness.train.config import load_train_config
    from harness.train.pipeline import PipelineConfig, run_pipeline

    out = tmp_path / "p"
    out.mkdir()
    (out / "results.json").write_text("{}")
    teacher = JudgeSettings(model=str(tmp_path / "no-teacher"), cache_dir=str(tmp_path / "c"))
    cfg = PipelineConfig(base=str(tiny_models["base"]), teacher=teacher, judge=teacher, strategy="all_three",
                         output=out, train=load_train_config(None), limit=2, eval_dataset="bundled")
    with pytest.raises(HarnessError):
        run_pipeline(cfg)
    assert not (out / "results.json").exists()
