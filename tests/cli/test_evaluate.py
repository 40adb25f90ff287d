"""``empathy eval`` options → EvalConfig, without running an evaluation."""

import pytest

from harness.cli.evaluate import eval_config
from harness.cli.main import build_parser, main
from harness.generate.replies import ModelSpec

SERVED = ["eval", "--model", "m", "--model-backend", "openai-chat", "--base-url", "http://127.0.0.1:9/v1",
          "--revision", "v2", "--device", "cpu", "--batch-size", "4", "--judge", "j"]


def config(tmp_path, *extra):
    return eval_config(build_parser().parse_args([*SERVED, "--cache-dir", str(tmp_path), "--output",
                                                  str(tmp_path / "o"), *extra]))


def test_reference_models_do_not_inherit_the_served_candidate(tmp_path):
    cfg = config(tmp_path, "--base-model", "/some/base", "--direct-model", "d",
                 "--direct-model-url", "http://127.0.0.1:7/v1")
    assert cfg.candidate == ModelSpec(model="m", backend="openai-chat", revision="v2", device="cpu", batch_size=4,
                                      base_url="http://127.0.0.1:9/v1")
    # the base reference loads locally: not from the candidate's server, not at the candidate's revision
    assert cfg.build_references["base"] == ModelSpec(model="/some/base", backend="hf", revision=None, device="cpu",
                                                     batch_size=4, base_url=None)
    # the direct reference is served from its own server
    assert cfg.build_references["direct"] == ModelSpec(model="d", backend="openai-chat", revision=None, device="cpu",
                                                       batch_size=4, base_url="http://127.0.0.1:7/v1")
    assert cfg.build_references["direct"].backend == "local-chat-completions"
    assert cfg.refs_dir == tmp_path / "references"


def test_no_reference_model_builds_nothing(tmp_path):
    cfg = config(tmp_path, "--reference", "base=refs/base.json")
    assert cfg.build_references == {}
    assert {k: str(v) for k, v in cfg.references.items()} == {"base": "refs/base.json"}


@pytest.mark.parametrize("name", ["base", "direct"])
def test_reference_url_without_model_is_refused(tmp_path, capsys, name):
    code = main([*SERVED, f"--{name}-model-url", "http://127.0.0.1:7/v1", "--output", str(tmp_path / "o")])
    assert code == 2
    assert f"--{name}-model-url http://127.0.0.1:7/v1 needs --{name}-model" in capsys.readouterr().err


def test_malformed_reference_is_refused(tmp_path, capsys):
    assert main([*SERVED, "--reference", "refs/base.json", "--output", str(tmp_path / "o")]) == 2
    assert "--reference expects NAME=FILE" in capsys.readouterr().err
