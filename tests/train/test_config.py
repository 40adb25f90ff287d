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
    ("lora:\n  target_modules: 7\n", "lora.target_modules must be a string or a list of strings (modules to adapt), "
                                     "got 7 (an integer)"),
    ("lora:\n  target_modules: [1, 2]\n", "lora.target_modules must be a string or a list of strings (modules to "
                                          "adapt), got [1, 2] (a list)"),
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


@pytest.mark.parametrize(("text", "message"), [
    ("sft:\n  learning_rate: 0\n", "sft.learning_rate: input should be greater than 0, got 0"),
    # YAML 1.1 reads -1e-5 as a string: the message shows the value as written
    ("dpo:\n  learning_rate: -1e-5\n", "dpo.learning_rate: input should be greater than 0, got '-1e-5'"),
    ("sft:\n  learning_rate: .nan\n", "sft.learning_rate: input should be a finite number, got nan"),
    ("sft:\n  learning_rate: .inf\n", "sft.learning_rate: input should be a finite number, got inf"),
    ("sft:\n  learning_rate: 'nan'\n", "sft.learning_rate: input should be a finite number, got 'nan'"),
    ("sft:\n  num_train_epochs: 0\n", "sft.num_train_epochs: input should be greater than 0, got 0"),
    ("dpo:\n  num_train_epochs: .inf\n", "dpo.num_train_epochs: input should be a finite number, got inf"),
    ("dpo:\n  effective_batch_size: 0\n", "dpo.effective_batch_size: input should be greater than or equal to 1, "
                                          "got 0"),
    ("sft:\n  per_device_train_batch_size: 0\n", "sft.per_device_train_batch_size: input should be greater than or "
                                                 "equal to 1, got 0"),
    ("sft:\n  max_length: 8\n", "sft.max_length: input should be greater than or equal to 16, got 8"),
    ("lora:\n  r: 0\n", "lora.r: input should be greater than or equal to 1, got 0"),
    ("lora:\n  alpha: 0\n", "lora.alpha: input should be greater than 0, got 0"),
    ("lora:\n  dropout: -0.1\n", "lora.dropout: input should be greater than or equal to 0, got -0.1"),
    ("lora:\n  dropout: 1.0\n", "lora.dropout: input should be less than 1, got 1.0"),
    ("lora:\n  dropout: .nan\n", "lora.dropout: input should be a finite number, got nan"),
    ("dpo:\n  beta: 0\n", "dpo.beta: input should be greater than 0, got 0"),
    ("dpo:\n  beta: -.inf\n", "dpo.beta: input should be a finite number, got -inf"),
])
def test_out_of_range_values_name_the_key_the_range_and_the_value(tmp_path, text, message):
    path = _yaml(tmp_path, text)
    with pytest.raises(HarnessError, match=re.escape(message)) as err:
        load_train_config(path)
    assert str(err.value) == f"{path}: {message}"  # one message: the range, not also the type


def test_values_at_the_edge_of_their_range_are_accepted(tmp_path):
    cfg = load_train_config(_yaml(tmp_path, "lora:\n  r: 1\n  alpha: 1\n  dropout: 0\n"
                                            "sft:\n  max_length: 16\n  num_train_epochs: 0.5\n  learning_rate: 1e-9\n"
                                            "  per_device_train_batch_size: 1\n"
                                            "dpo:\n  beta: 0.001\n  effective_batch_size: 1\n"))
    assert (cfg.lora.r, cfg.lora.dropout, cfg.sft.max_length, cfg.sft.num_train_epochs, cfg.dpo.beta) == \
        (1, 0.0, 16, 0.5, 0.001)
