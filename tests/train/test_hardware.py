"""Batch plans: the configured recipe trains on any hardware; recipe fast-gpu is a named, recorded opt-in."""

from __future__ import annotations

import pytest

from harness.core.errors import HarnessError
from harness.train.card import recipe_line
from harness.train.config import load_train_config
from harness.train.hardware import Hardware, memory_micro_batch, plan_batch, scaled_learning_rate

CPU = Hardware("cpu", False, False, 0.0)
H200 = Hardware("cuda", True, False, 140.0)
H100 = Hardware("cuda", True, False, 79.0)


@pytest.fixture(scope="module")
def qwen05():
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                       num_attention_heads=14, num_key_value_heads=2)


def _plans(cfg, hw, config):
    return {"name": cfg.recipe, "sft": plan_batch(cfg.sft, cfg.recipe, hw, config).as_json(),
            "dpo": plan_batch(cfg.dpo, cfg.recipe, hw, config, pairs=True).as_json()}


def test_memory_sizes_the_largest_micro_batch(qwen05):
    cfg = load_train_config(None)
    assert memory_micro_batch(cfg.sft, CPU, qwen05) == 2
    assert (memory_micro_batch(cfg.sft, H200, qwen05), memory_micro_batch(cfg.sft, H200, qwen05, pairs=True)) == (32, 16)
    long = load_train_config(None, {"sft": {"max_length": 2048}})
    assert memory_micro_batch(cfg.sft, H100, qwen05) == 32 and memory_micro_batch(long.sft, H100, qwen05) == 8


def test_the_configured_recipe_trains_on_a_big_gpu(qwen05):
    """0.5B on one H200: the paper's batch 2 and lr 5e-5 — not batch 32 at lr 8e-4."""
    cfg = load_train_config(None)
    for step, pairs in ((cfg.sft, False), (cfg.dpo, True)):
        plan = plan_batch(step, cfg.recipe, H200, qwen05, pairs=pairs)
        assert (plan.effective_batch, plan.learning_rate, plan.micro_batch, plan.gradient_accumulation_steps) == (
            2, 5e-5, 2, 1)
        assert not plan.differs
    plans = _plans(cfg, H200, qwen05)
    assert recipe_line(plans) == "- recipe: `configured` — the configured effective batch and learning rate"


@pytest.mark.parametrize(("eff", "micro", "hw", "expected"), [
    (64, None, H200, (32, 2)),  # memory allows 32: 32 × 2 accumulation = 64
    (6, None, H200, (6, 1)),
    (6, None, CPU, (2, 3)),
    (8, 4, H200, (4, 2)),  # as given, when it divides the effective batch
    (8, None, Hardware("cuda", True, False, 140.0, world_size=2), (4, 1)),  # 4 × 1 × 2 processes
])
def test_hardware_only_splits_the_effective_batch(qwen05, eff, micro, hw, expected):
    step = load_train_config(None, {"sft": {"effective_batch_size": eff, "per_device_train_batch_size": micro}}).sft
    plan = plan_batch(step, "configured", hw, qwen05)
    assert (plan.micro_batch, plan.gradient_accumulation_steps) == expected
    assert plan.micro_batch * plan.gradient_accumulation_steps * plan.world_size == plan.effective_batch == eff
    assert plan.learning_rate == step.learning_rate


def test_a_micro_batch_that_does_not_divide_the_effective_batch_is_an_error(qwen05):
    step = load_train_config(None, {"sft": {"per_device_train_batch_size": 3}}).sft
    with pytest.raises(HarnessError, match="per_device_train_batch_size 3 does not divide effective_batch_size 2"):
        plan_batch(step, "configured", H200, qwen05)
    with pytest.raises(HarnessError, match="not divisible by the 4 training processes"):
        plan_batch(load_train_config(None).sft, "configured", Hardware("cuda", True, False, 140.0, 4), qwen05)


def test_fast_gpu_is_a_named_opt_in_with_the_numbers_on_the_card(qwen05):
    cfg = load_train_config(None, {"recipe": "fast-gpu"})
    sft = plan_batch(cfg.sft, cfg.recipe, H200, qwen05)
    dpo = plan_batch(cfg.dpo, cfg.recipe, H200, qwen05, pairs=True)
    assert (sft.micro_batch, sft.effective_batch, sft.gradient_accumulation_steps) == (32, 32, 1)
    assert sft.learning_rate == pytest.approx(8e-4) and sft.differs  # 5e-5 × 16 (linear)
    assert (dpo.effective_batch, dpo.learning_rate) == (16, pytest.approx(4e-4))
    line = recipe_line(_plans(cfg, H200, qwen05))
    assert line == ("- recipe: `fast-gpu` — **differs from the configured recipe**: SFT effective batch 32 "
                    "(configured 2), learning rate 0.0008 (configured 5e-05); DPO effective batch 16 (configured 2), "
                    "learning rate 0.0004 (configured 5e-05)")
    on_cpu = plan_batch(cfg.sft, cfg.recipe, CPU, qwen05)  # nothing to speed up: the configured recipe
    assert (on_cpu.effective_batch, on_cpu.learning_rate, on_cpu.differs) == (2, 5e-5, False)


def test_learning_rate_scaling():
    step = load_train_config(None).sft
    assert scaled_learning_rate(step, 2) == 5e-5  # batch = the configured effective batch: unchanged
    assert scaled_learning_rate(step, 64) == pytest.approx(5e-5 * 16)  # linear, capped at 16×
    sqrt = load_train_config(None, {"sft": {"lr_scaling": "sqrt"}}).sft
    assert scaled_learning_rate(sqrt, 8) == pytest.approx(1e-4)
    assert scaled_learning_rate(load_train_config(None, {"sft": {"lr_scaling": "none"}}).sft, 64) == 5e-5
