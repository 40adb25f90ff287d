"""The training config: typed, unknown keys and wrong types rejected with the key path, the paper's defaults."""

from __future__ import annotations

import re

import pytest

from harness.core.errors import HarnessError
from harness.train.config import load_train_config


def _yaml(tmp_path, text):
    f = tmp_path / "train.yaml"
    f.write_text(text)
    return f


def test_defaults_are_the_papers():
    cfg = load_train_config(None)
    assert (cfg.lora.r, cfg.sft.learning_rate, cfg.sft.num_train_epochs, cfg.sft.effective_batch_size,
            cfg.dpo.beta, cfg.dpo.loss_type, cfg.recipe) == (8, 5e-5, 3.0, 2, 0.1, "sigmoid", "configured")


@pytest.mark.parametrize(("text", "message"), [
    ("sft:\n  learnin_rate: 0.1\n", "unknown setting 'learnin_rate' in sft: did you mean 'learning_rate'"),
    ("lora:\n  alpah: 8\n", "unknown setting 'alpah' in lora: did you mean 'alpha'"),
    ("recipy: fast-gpu\n", "unknown setting 'recipy': did you mean 'recipe'"),
])
def test_unknown_keys_get_a_did_you_mean(tmp_path, text, message):
    with pytest.raises(HarnessError, match=re.escape(message)):
        load_train_config(_yaml(tmp_path, text))


def test_a_numeric_string_is_read_as_its_number(tmp_path):
    # YAML 1.1 reads 5e-5 (no dot) as a string; it means the number
    cfg = load_train_config(_yaml(tmp_path, "sft:\n  learning_rate: 5e-5\ndpo:\n  learning_rate: '1e-4'\n"))
    assert cfg.sft.learning_rate == 5e-5 and isinstance(cfg.sft.learning_rate, float)
    assert cfg.dpo.learning_rate == 1e-4


@pytest.mark.parametrize(("text", "message"), [
    ("sft:\n  learning_rate: fast\n", "sft.learning_rate must be a number (peak learning rate (paper: 5e-5)), "
                                      "got 'fast' (a string)"),
    ("dpo:\n  beta: yes\n", "dpo.beta must be a number (DPO beta (paper: 0.1)), got True (true or false)"),
    ("lora:\n  r: 8.5\n", "lora.r must be an integer (LoRA rank (paper: 8)), got 8.5 (a number)"),
    ("sft:\n  per_device_train_batch_size: two\n", "sft.per_device_train_batch_size must be an integer or null"),
    ("sft:\n  lr_scaling: cubic\n", "sft.lr_scaling must be one of 'linear', 'sqrt', 'none'"),
    ("recipe: turbo\n", "recipe must be one of 'configured', 'fast-gpu'"),
    ("sft: 5\n", "sft must be a mapping of settings (step 1: LoRA SFT), got 5 (an integer)"),
    ("lora:\n  target_modules: 7\n", "lora.target_modules must be a string or a list (modules to adapt), got 7"),
    ("sft:\n  effective_batch_size: 0\n", "sft.effective_batch_size: input should be greater than or equal to 1"),
])
def test_wrong_types_name_the_key_the_type_and_the_value(tmp_path, text, message):
    path = _yaml(tmp_path, text)
    with pytest.raises(HarnessError, match=re.escape(message)) as err:
        load_train_config(path)
    assert str(err.value).startswith(f"{path}: ")


def test_overrides_merge_into_the_file(tmp_path):
    cfg = load_train_config(_yaml(tmp_path, "sft:\n  learning_rate: 1e-3\n  seed: 3\n"),
                            {"device": "cpu", "sft": {"seed": 4}})
    assert (cfg.device, cfg.sft.learning_rate, cfg.sft.seed) == ("cpu", 1e-3, 4)
    with pytest.raises(HarnessError, match=re.escape("sft.seed must be an integer")):
        load_train_config(None, {"sft": {"seed": "x"}})


def test_a_file_that_is_not_a_mapping(tmp_path):
    with pytest.raises(HarnessError, match="expected a mapping of settings"):
        load_train_config(_yaml(tmp_path, "- 1\n- 2\n"))
