"""What the commands write, and where: no run written over another model's, nothing lost, results on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli.main import main
from tests.score.test_validity import write_ratings


def eval_args(models: dict[str, Path], refs: dict[str, Path], out: Path, cache: Path, *extra: str) -> list[str]:
    return ["eval", "--model", str(models["candidate"]), "--reference", f"base={refs['base']}", "--judge",
            str(models["judge"]), "--device", "cpu", "--judge-device", "cpu", "--limit", "2", "--cache-dir",
            str(cache), "--output", str(out), *extra]


def test_a_run_over_another_models_run_needs_overwrite(tiny_models, small_refs, tmp_path, capsys):
    out, cache = tmp_path / "run", tmp_path / "cache"
    mass = ("--judge-min-label-mass", "0")
    assert main(eval_args(tiny_models, small_refs, out, cache, *mass)) == 0
    before = (out / "results.json").read_bytes()
    capsys.readouterr()

    other = eval_args(tiny_models, small_refs, out, cache, *mass, "--model", str(tiny_models["base"]))
    assert main(other) == 2
    err = capsys.readouterr().err
    assert f"--output {out} holds the run of another model {tiny_models['candidate']}" in err
    assert "pass --overwrite to replace it" in err and len(err.strip().splitlines()) == 1, err
    assert (out / "results.json").read_bytes() == before  # refused before any work: nothing lost

    # the same model is resumed as before (its verdicts come from the cache), no --overwrite needed
    assert main(eval_args(tiny_models, small_refs, out, cache, *mass)) == 0
    assert json.loads((out / "manifest.json").read_text())["judge"]["model_calls"] == 0

    assert main([*other, "--overwrite"]) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["model"] == str(tiny_models["base"])


def test_a_run_that_scores_nothing_exits_non_zero_with_the_reason(tiny_models, small_refs, tmp_path, capsys):
    """A random judge's labels hold ~1 % of the probability: every verdict is unscored, and the exit code says so."""
    out = tmp_path / "run"
    assert main(eval_args(tiny_models, small_refs, out, tmp_path / "cache")) == 1
    captured = capsys.readouterr()
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("error: no dialogue was scored in vs_base: all 2 dialogues unscored (e.g. cand_first: "
                           "label mass"), last
    assert "--judge-min-label-mass" in last and f"results are written to {out}" in last
    result = json.loads((out / "results.json").read_text())  # written all the same: nothing is lost
    assert result["vs_base"]["n_scored"] == 0 and result["vs_base"]["n_unscored"] == 2
    assert "vs" in captured.out  # the tables were printed before the error


def test_demo_refuses_a_folder_holding_another_models_run(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.json").write_text("{}")
    (out / "manifest.json").write_text(json.dumps({"systems": {"candidate": {"name": "org/model",
                                                                             "fingerprint": "0123456789abcdef"}}}))
    assert main(["demo", "--output", str(out), "--limit", "2"]) == 2
    err = capsys.readouterr().err
    assert "holds the run of another model org/model (fingerprint 0123456789abcdef)" in err and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "results.json"]  # no models built in it


def test_refs_build_checks_its_output_before_generating(tiny_models, tmp_path, capsys):
    existing = tmp_path / "base.json"
    existing.write_text("keep me")
    args = ["refs", "build", "--model", str(tiny_models["base"]), "--name", "base", "--limit", "2", "--device", "cpu"]
    cases = [
        ([*args, "--output", str(existing)], f"--output {existing} already exists; pass --overwrite to replace it"),
        ([*args, "--output", str(tmp_path)], f"--output {tmp_path} is a folder: give the file to write, e.g. "
                                             f"{tmp_path / 'base.json'}"),
        ([*args, "--output", str(existing / "x.json")], f"{existing} is a file, not a folder, so nothing can be made under it"),
        ([*args, "--output", str(tmp_path / "new.json"), "--revision", "v2"],
         f"--revision v2: --model {tiny_models['base']} is a local folder, which has no revisions"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert existing.read_text() == "keep me" and not (tmp_path / "new.json").exists()


def test_refs_build_prints_its_result_on_stdout(tiny_models, tmp_path, capsys):
    out = tmp_path / "base.json"
    out.write_text("old")
    assert main(["refs", "build", "--model", str(tiny_models["base"]), "--name", "base", "--limit", "2", "--device",
                 "cpu", "--output", str(out), "--overwrite"]) == 0
    captured = capsys.readouterr()
    assert f"reference set 'base': 2 replies from {tiny_models['base']} → {out}" in captured.out
    assert "reference set 'base'" not in captured.err and "generating" in captured.err  # progress stays on stderr
    assert json.loads(out.read_text())["manifest"]["model_revision"] is None


def test_validate_judge_checks_its_options_before_any_work(tiny_models, tmp_path, capsys):
    ratings = write_ratings(tmp_path / "ratings.csv", n=2)
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    base = ["validate-judge", "--human-ratings", str(ratings), "--judge", str(tiny_models["judge"]), "--judge-device",
            "cpu", "--output", str(tmp_path / "out")]
    cases = [
        (["--stress-limit", "-1"], "--stress-limit -1: give the number of verdicts re-judged per stress test, 0 or "
                                   "more"),
        (["--limit", "0"], "--limit 0: give the number of dialogues to judge, 1 or more"),
        (["--judge", str(tmp_path / "empty")], f"--judge {tmp_path / 'empty'} exists but holds no model"),
        (["--judge-revision", "v2"], "--judge-revision v2: --judge"),
        (["--output", str(tmp_path / "file" / "out")], f"{tmp_path / 'file'} is a file, not a folder, so nothing can be made"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "out").exists()


def test_validate_judge_prints_its_result_on_stdout(tiny_models, tmp_path, capsys):
    ratings = write_ratings(tmp_path / "ratings.csv", n=2)
    out = tmp_path / "out"
    assert main(["validate-judge", "--human-ratings", str(ratings), "--judge", str(tiny_models["judge"]),
                 "--judge-device", "cpu", "--judge-min-label-mass", "0", "--stress-limit", "2", "--output",
                 str(out)]) == 0
    captured = capsys.readouterr()
    assert "judge validity" in captured.out and "pairwise agreement with humans" in captured.out
    assert "judge validity" not in captured.err
    assert f"validity report written to {out / 'validity.json'}" in captured.err


@pytest.mark.parametrize("command", ["distill", "train", "pipeline", "import-lmeval"])
def test_every_output_folder_is_checked_up_front(command, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    argv = {"distill": ["distill", "--strategy", "direct", "--teacher", "t"],
            "train": ["train", "--base", "b", "--sft", "s.jsonl", "--dpo", "d.jsonl"],
            "pipeline": ["pipeline", "--base", "b", "--strategy", "lacking", "--teacher", "t"],
            "import-lmeval": ["import-lmeval", str(tmp_path)]}[command]
    assert main([*argv, "--output", str(tmp_path / "file" / "out")]) == 2
    assert f"--output {tmp_path / 'file' / 'out'}: {tmp_path / 'file'} is a file" in capsys.readouterr().err
