"""``empathy pipeline`` end to end on tiny models, and ``python -m harness``."""

from __future__ import annotations

import json

from harness.cli.main import main


def test_pipeline_end_to_end(tmp_path, tiny_models, capsys, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "pipe"
    code = main(["pipeline", "--base", str(tiny_models["base"]), "--teacher", str(tiny_models["direct"]),
                 "--judge", str(tiny_models["judge"]), "--strategy", "all_three", "--limit", "24",
                 "--device", "cpu", "--teacher-device", "cpu", "--judge-device", "cpu", "--output", str(out)])
    # the random judge's label mass is below the 0.5 floor: every verdict unscored, so the pipeline says so and
    # exits 1 (as `empathy eval` does), with every file written
    err = capsys.readouterr().err
    assert code == 1 and "error: no dialogue was scored in vs_base, vs_direct: all 24 dialogues unscored" in err, err
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
