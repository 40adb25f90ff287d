"""End-to-end through the ``empathy`` CLI on tiny in-process models (real lm-eval generation, real judge)."""

import json
from pathlib import Path

import pytest

from harness.cli.main import main

STAT_KEYS = ("win_rate", "ci_low", "ci_high", "tie_rate", "position_flip_rate", "n_scored", "n_unscored")


def read(path: Path):
    return json.loads(path.read_text())


def test_help_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(c in out for c in ("eval", "refs", "tasks", "demo"))


def test_unknown_command_did_you_mean(capsys):
    assert main(["evl"]) == 2
    assert "did you mean 'eval'" in capsys.readouterr().err


def test_demo_writes_results(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--output", str(out), "--limit", "8"]) == 0
    res = read(out / "results.json")
    for comp in ("vs_base", "vs_direct"):
        assert all(k in res[comp] for k in STAT_KEYS)
        assert res[comp]["n_scored"] + res[comp]["n_unscored"] == 8
        assert res[comp]["ci_low"] <= res[comp]["win_rate"] <= res[comp]["ci_high"]
    assert set(res["rubric"]) == {"cognitive", "affective", "compassionate"}
    assert all(1 <= res["rubric"][d]["mean"] <= 5 for d in res["rubric"])
    assert res["results"]["empathy_winrate_vs_base"]["win_rate,judge"] == pytest.approx(res["vs_base"]["win_rate"])
    judgments = (out / "judgments.jsonl").read_text().splitlines()
    assert len(judgments) == 16
    captured = capsys.readouterr()
    assert "vs" in captured.out  # the summary tables go to stdout
    assert "results written to" in captured.err  # progress and messages go to stderr


def eval_args(models, refs, out, cache, *extra):
    return ["eval", "--model", str(models["candidate"]), "--reference", f"base={refs['base']}",
            "--reference", f"direct={refs['direct']}", "--judge", str(models["judge"]), "--device", "cpu",
            "--judge-device", "cpu", "--judge-min-label-mass", "0", "--limit", "4", "--cache-dir", str(cache),
            "--output", str(out), *extra]


def test_second_eval_makes_no_judge_call(tiny_models, small_refs, tmp_path):
    cache = tmp_path / "cache"
    assert main(eval_args(tiny_models, small_refs, tmp_path / "run1", cache)) == 0
    m1 = read(tmp_path / "run1" / "manifest.json")["judge"]
    assert m1["misses"] > 0 and m1["model_calls"] == m1["misses"]
    # the local judge computed each shared prompt prefix once, and the manifest says how much that saved
    compute = m1["compute"]
    assert compute["prefix_reuse"] is True and compute["reuse_note"] is None
    assert 0 < compute["computed_tokens"] < 0.7 * compute["prompt_tokens"], compute
    assert main(eval_args(tiny_models, small_refs, tmp_path / "run2", cache)) == 0
    m2 = read(tmp_path / "run2" / "manifest.json")["judge"]
    assert m2["misses"] == 0 and m2["model_calls"] == 0 and not m2["model_loaded"]
    assert m2["hits"] == m1["hits"] + m1["misses"]
    r1, r2 = read(tmp_path / "run1" / "results.json"), read(tmp_path / "run2" / "results.json")
    assert r1["vs_base"] == r2["vs_base"] and r1["rubric"] == r2["rubric"]


def test_interrupted_judging_resumes_from_cache(tiny_models, small_refs, tmp_path, monkeypatch):
    from harness.llm.hf import HFBackend

    real = HFBackend.label_probs
    answered: list[int] = []

    def interrupted(self, requests):
        gen = real(self, requests)
        idx, answers = next(gen)  # one batch is answered, then the user presses Ctrl-C
        answered.append(len(idx))
        yield idx, answers
        raise KeyboardInterrupt

    cache = tmp_path / "cache"
    monkeypatch.setattr(HFBackend, "label_probs", interrupted)
    assert main(eval_args(tiny_models, small_refs, tmp_path / "run", cache, "--judge-batch-size", "3")) == 130
    assert not (tmp_path / "run" / "results.json").exists()
    monkeypatch.setattr(HFBackend, "label_probs", real)
    assert main(eval_args(tiny_models, small_refs, tmp_path / "run", cache, "--judge-batch-size", "3")) == 0
    m = read(tmp_path / "run" / "manifest.json")["judge"]
    # the batch answered before the interrupt (at most 3 prompts: whole shared-prefix groups) was not asked again
    assert answered and 0 < answered[0] <= 3 and m["hits"] == answered[0]


def test_missing_reference_error_names_build_command(tiny_models, tmp_path, capsys):
    code = main(["eval", "--model", str(tiny_models["candidate"]), "--reference", f"base={tmp_path}/nope.json",
                 "--judge", str(tiny_models["judge"]), "--device", "cpu", "--output", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "reference set 'base' not found" in err and "empathy refs build --model MODEL --name base" in err


def test_reference_from_other_dataset_is_refused(tiny_models, small_refs, tmp_path, capsys):
    data = json.loads(small_refs["base"].read_text())
    data["manifest"]["dataset_hash"] = "0" * 16
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    code = main(["eval", "--model", str(tiny_models["candidate"]), "--reference", f"base={bad}", "--judge",
                 str(tiny_models["judge"]), "--device", "cpu", "--limit", "2", "--output", str(tmp_path / "o")])
    assert code == 2
    assert "generated on another dataset" in capsys.readouterr().err


def test_reference_with_too_few_dialogues_is_refused(tiny_models, small_refs, tmp_path, capsys):
    code = main(eval_args(tiny_models, small_refs, tmp_path / "o", tmp_path / "c").copy()[:-2]
                + ["--output", str(tmp_path / "o"), "--limit", "10"])
    assert code == 2
    assert "has no reply for 4 of this run's dialogues" in capsys.readouterr().err


def test_unknown_mode_and_backend(tiny_models, small_refs, tmp_path, capsys):
    assert main(eval_args(tiny_models, small_refs, tmp_path / "o", tmp_path / "c", "--judge-mode", "logit")) == 2
    assert "did you mean 'logits'" in capsys.readouterr().err
    assert main(eval_args(tiny_models, small_refs, tmp_path / "o", tmp_path / "c", "--model-backend", "hff")) == 2
    assert "did you mean 'hf'" in capsys.readouterr().err


def test_base_model_on_the_fly_is_built_once_and_reused(tiny_models, tmp_path):
    args = ["eval", "--model", str(tiny_models["candidate"]), "--base-model", str(tiny_models["raw"]),
            "--judge", str(tiny_models["judge"]), "--device", "cpu", "--judge-device", "cpu", "--limit", "3",
            "--judge-min-label-mass", "0", "--cache-dir", str(tmp_path / "cache")]
    assert main([*args, "--output", str(tmp_path / "a")]) == 0
    assert main([*args, "--output", str(tmp_path / "b")]) == 0
    ma, mb = read(tmp_path / "a" / "manifest.json"), read(tmp_path / "b" / "manifest.json")
    assert ma["references"]["base"]["reused"] is False and mb["references"]["base"]["reused"] is True
    assert ma["references"]["base"]["path"] == mb["references"]["base"]["path"]
    # the base model has no chat template: it was prompted with the raw prompt
    assert ma["references"]["base"]["chat_template"] is False
    ref = read(Path(ma["references"]["base"]["path"]))
    assert all("<|im_start|>" not in g["prompt"] and g["prompt"].rstrip().endswith("Response:")
               for g in ref["generations"])
    gens = [json.loads(line) for line in (tmp_path / "a" / "generations.jsonl").read_text().splitlines()]
    assert all(g["prompt"].startswith("<|im_start|>user") for g in gens)  # the candidate is a chat model


def test_refs_build_and_tasks_commands(tiny_models, tmp_path, capsys):
    out = tmp_path / "ref.json"
    assert main(["refs", "build", "--model", str(tiny_models["base"]), "--name", "base", "--output", str(out),
                 "--limit", "2", "--device", "cpu"]) == 0
    ref = read(out)
    assert ref["manifest"]["n"] == 2 and ref["manifest"]["name"] == "base"
    assert len(ref["manifest"]["prompt_hash"]) == 16 and len(ref["manifest"]["dataset_hash"]) == 16
    assert main(["tasks", "list"]) == 0
    assert "empathy_winrate_vs_direct" in capsys.readouterr().out
    assert main(["tasks", "validate"]) == 0


def test_demo_through_the_real_process_is_quiet_and_labelled(tmp_path):
    """The `empathy` process outside a git checkout: tables on stdout; on stderr only our phases and labelled
    bars — no "fatal: not a git repository", no FutureWarning, no lm-eval bar named after its internals."""
    import os
    import shutil
    import subprocess

    exe = shutil.which("empathy")
    assert exe, "the empathy console script is installed with the package"
    (tmp_path / "cwd").mkdir()
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path), "PYTHONWARNINGS": "default"}
    proc = subprocess.run([exe, "demo", "--output", str(tmp_path / "demo"), "--limit", "4"], cwd=tmp_path / "cwd",
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "win rate" in proc.stdout and "phase" not in proc.stdout
    err = proc.stderr
    for phase in ("phase 1/3", "phase 2/3", "phase 3/3"):
        assert phase in err
    assert "generating (candidate): candidate replies" in err and "pairwise verdicts" in err
    for noise in ("fatal:", "Warning:", "Running generate_until", "Traceback"):
        assert noise not in err, (noise, err[-2000:])
    assert sorted(p.name for p in (tmp_path / "cwd").iterdir()) == []
