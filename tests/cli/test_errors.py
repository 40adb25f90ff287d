"""Bad input found by review: each is one clear line and exit 2, before any generation."""

import pytest

from harness.cli.main import main


@pytest.mark.parametrize(("extra", "message"), [
    (["--cache-dir", "FILE"], "cannot open the cache"),
    (["--judge-device", "cuda"], "this torch sees no CUDA GPU"),
    (["--device", "gpu"], "unknown device 'gpu'"),
    (["--judge-timeout", "0"], "--judge-timeout: Input should be greater than 0"),
    (["--judge-min-label-mass", "2"], "--judge-min-label-mass: Input should be less than or equal to 1"),
    (["--model-backend", "vllm"], "--model-backend vllm needs vLLM installed"),
])
def test_bad_options_are_one_clear_line(tiny_models, small_refs, tmp_path, capsys, extra, message):
    (tmp_path / "FILE").write_text("x")
    extra = [str(tmp_path / "FILE") if e == "FILE" else e for e in extra]
    args = ["eval", "--model", str(tiny_models["candidate"]), "--reference", f"base={small_refs['base']}",
            "--judge", str(tiny_models["judge"]), "--limit", "2", "--output", str(tmp_path / "out"), *extra]
    if "--cache-dir" not in extra:
        args += ["--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out" / "generations.jsonl").exists()


def test_demo_output_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["demo", "--output", str(tmp_path / "f")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()
