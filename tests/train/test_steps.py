"""LoRA SFT → DPO → merge on a tiny model: the result, the model card, and when a step reruns."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.core.io import file_hash, write_json
from harness.train.card import model_card, preference_margins
from harness.train.config import load_train_config
from harness.train.distill import DistillConfig, run_distill
from harness.train.hardware import Hardware, plan_batch
from harness.train.resume import begin_step
from harness.train.steps import run_train
from tests.train.conftest import scripted_teacher, train_jsonl


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """all_three distilled by the scripted teacher: 8 SFT rows and DPO pairs."""
    root = tmp_path_factory.mktemp("distil")
    data = train_jsonl(root / "train.jsonl", 8, with_reply=True)
    run_distill(DistillConfig(strategy="all_three", dataset=str(data), output=root / "d",
                              teacher=scripted_teacher(root)))
    return root / "d"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_models, distilled):
    """The tiny base trained on it (DPO with a large lr to move it)."""
    root = tmp_path_factory.mktemp("train")
    cfg = load_train_config(None, {"device": "cpu", "sft": {"num_train_epochs": 2, "learning_rate": 1e-3},
                                   "dpo": {"num_train_epochs": 4, "learning_rate": 5e-3, "save_steps": 4}})
    manifest = run_train(str(tiny_models["base"]), distilled / "sft", distilled / "dpo", root / "t", cfg)
    return root, manifest, cfg


def test_dpo_moves_the_policy_and_cpu_settings(trained, distilled):
    root, manifest, _ = trained
    dpo = manifest["steps"]["dpo"]
    assert dpo["margin_after"] > dpo["margin_before"] + 1.0  # chosen − rejected log-prob margin grew
    before = preference_margins(root / "t" / "sft" / "merged", distilled / "dpo" / "train.jsonl")
    after = preference_margins(root / "t" / "candidate", distilled / "dpo" / "train.jsonl")
    assert sum(a > b for a, b in zip(after, before, strict=True)) >= 6  # on most pairs, not just on average
    assert manifest["hardware"]["bf16"] is False and manifest["config"]["gradient_checkpointing"] is False
    assert manifest["recipe"]["name"] == "configured" and manifest["recipe"]["sft"]["effective_batch"] == 2
    card = (root / "t" / "candidate" / "README.md").read_text()
    assert f"base_model: {manifest['base']}" in card
    assert manifest["steps"]["sft"]["data_sha256"] in card and "LoRA: r 8" in card
    assert "- recipe: `configured` — the configured effective batch and learning rate" in card
    assert "effective batch 2 (micro-batch 2 × accumulation 1)" in card


def test_the_card_says_when_the_recipe_differs(trained):
    from transformers import Qwen2Config

    _, manifest, _ = trained
    qwen05 = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2)
    cfg = load_train_config(None, {"recipe": "fast-gpu"})
    h200 = Hardware("cuda", True, False, 140.0)
    recipe = {"name": "fast-gpu", "sft": plan_batch(cfg.sft, cfg.recipe, h200, qwen05).as_json(),
              "dpo": plan_batch(cfg.dpo, cfg.recipe, h200, qwen05, pairs=True).as_json()}
    card = model_card({**manifest, "recipe": recipe})
    assert ("- recipe: `fast-gpu` — **differs from the configured recipe**: SFT effective batch 32 (configured 2), "
            "learning rate 0.0008 (configured 5e-05)") in card


def test_merged_logits_equal_adapter_logits(trained):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    root, _, _ = trained
    ids = torch.tensor([[5, 17, 42, 99, 7, 300, 12]])
    base = AutoModelForCausalLM.from_pretrained(root / "t" / "sft" / "merged", dtype=torch.float32)
    with_adapter = PeftModel.from_pretrained(base, root / "t" / "dpo" / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(root / "t" / "candidate", dtype=torch.float32).eval()
    with torch.inference_mode():
        a, b = with_adapter(ids).logits, merged(ids).logits
    assert torch.allclose(a, b, atol=1e-4), float((a - b).abs().max())
    with torch.inference_mode(), with_adapter.disable_adapter():
        sft_policy = with_adapter(ids).logits
    assert (a - sft_policy).abs().max() > 1e-3  # the DPO adapter is not a no-op


def test_rerun_skips_done_steps_and_resumes_from_checkpoint(trained, tiny_models, distilled):
    root, manifest, cfg = trained
    again = run_train(str(tiny_models["base"]), distilled / "sft", distilled / "dpo", root / "t", cfg)
    assert again["steps"]["sft"]["seconds"] == manifest["steps"]["sft"]["seconds"]  # not retrained
    shutil.rmtree(root / "t" / "dpo" / "adapter")  # as if DPO crashed after its last checkpoint
    resumed = run_train(str(tiny_models["base"]), distilled / "sft", distilled / "dpo", root / "t", cfg)
    assert resumed["steps"]["dpo"]["resumed_from"].endswith("checkpoint-16")
    assert resumed["steps"]["dpo"]["steps"] == manifest["steps"]["dpo"]["steps"]


# -- when a step reruns: short runs (2 optimiser steps each) ----------------------------------------------------

@pytest.fixture
def quick(tiny_models, distilled, tmp_path):
    cfg = load_train_config(None, {"device": "cpu", "sft": {"max_steps": 2, "save_steps": 1},
                                   "dpo": {"max_steps": 2, "save_steps": 1}})

    def train(sft=distilled / "sft", dpo=distilled / "dpo", config=cfg):
        return run_train(str(tiny_models["base"]), sft, dpo, tmp_path / "t", config)

    return train, tmp_path / "t"


def _record(out, step):
    return json.loads((out / step / "step.json").read_text())


def _stamps(out):
    files = [out / s / "step.json" for s in ("sft", "dpo")] + [out / s / "adapter" / "adapter_model.safetensors"
                                                              for s in ("sft", "dpo")]
    return [f.stat().st_mtime_ns for f in files] + [_record(out, s)["run_id"] for s in ("sft", "dpo")]


def test_changed_sft_data_retrains_sft_and_dpo_and_same_inputs_retrain_nothing(quick, distilled, tmp_path, capsys):
    train, out = quick
    train()
    stamps = _stamps(out)
    train()
    assert _stamps(out) == stamps  # same inputs: no step retrained, no record rewritten
    rows = (distilled / "sft" / "train.jsonl").read_text().splitlines()
    changed = json.loads(rows[-1])
    changed["messages"][-1]["content"] += " Take care."
    sft2 = tmp_path / "sft2.jsonl"
    sft2.write_text("\n".join([*rows[:-1], json.dumps(changed)]) + "\n")
    capsys.readouterr()
    manifest = train(sft=sft2)
    assert manifest["steps"]["sft"]["data_sha256"] == file_hash(sft2) != file_hash(distilled / "sft" / "train.jsonl")
    sft, dpo = _record(out, "sft"), _record(out, "dpo")
    assert sft["run_id"] != stamps[4] and dpo["run_id"] != stamps[5]  # both retrained: DPO starts from the new SFT
    assert sft["status"] == dpo["status"] == "done" and sft["resumed_from"] is None and dpo["resumed_from"] is None
    assert sft["steps"] == dpo["steps"] == 2
    assert "sft: inputs changed (data_sha256" in capsys.readouterr().err


def test_a_changed_setting_retrains_from_the_step_it_touches(quick):
    train, out = quick
    train()
    sft_id = _record(out, "sft")["run_id"]
    dpo_id = _record(out, "dpo")["run_id"]
    train(config=load_train_config(None, {"device": "cpu", "sft": {"max_steps": 2, "save_steps": 1},
                                          "dpo": {"max_steps": 2, "save_steps": 1, "beta": 0.2}}))
    assert _record(out, "sft")["run_id"] == sft_id and _record(out, "dpo")["run_id"] != dpo_id


def test_a_step_without_its_record_or_still_running_completes(quick):
    train, out = quick
    first = train()
    (out / "sft" / "step.json").unlink()  # a crash after saving, before the record: outputs without a record
    train()
    sft, dpo = _record(out, "sft"), _record(out, "dpo")
    assert sft["status"] == "done" and sft["resumed_from"] is None and sft["steps"] == 2  # trained from scratch
    assert dpo["run_id"] != first["steps"]["dpo"]["run_id"] and dpo["status"] == "done"  # on the new SFT policy
    running = {k: dpo[k] for k in ("schema_version", "step", "run_id", "inputs")} | {"status": "running"}
    write_json(out / "dpo" / "step.json", running)  # a crash between saving the adapter and marking it done
    manifest = train()
    dpo = _record(out, "dpo")
    assert dpo["status"] == "done" and dpo["run_id"] == running["run_id"] and dpo["steps"] == 2
    assert dpo["resumed_from"].endswith("checkpoint-2") and manifest["steps"]["dpo"]["steps"] == 2
    assert (out / "candidate" / "README.md").is_file()
    from safetensors.torch import load_file

    saved = load_file(out / "dpo" / "adapter" / "adapter_model.safetensors")
    checkpoint = load_file(out / "dpo" / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors")
    assert saved.keys() == checkpoint.keys() and all((saved[k] == checkpoint[k]).all() for k in saved)


def test_begin_step_resumes_only_matching_inputs_from_a_complete_checkpoint(tmp_path):
    out = tmp_path / "sft"
    for n, complete in ((1, True), (2, True), (3, False)):  # checkpoint-3 was being written when it crashed
        (out / "checkpoints" / f"checkpoint-{n}").mkdir(parents=True)
        if complete:
            (out / "checkpoints" / f"checkpoint-{n}" / "trainer_state.json").write_text("{}")
    (out / "merged").mkdir()
    inputs = {"data_sha256": "a", "base": "b", "config": {"step": {"learning_rate": 1e-3}}}
    write_json(out / "step.json", {"status": "running", "run_id": "r1", "inputs": inputs})
    start = begin_step(out, "sft", inputs, outputs=("adapter",))
    assert start.done is None and start.run_id == "r1" and start.resume_from.endswith("checkpoint-2")
    other = {**inputs, "config": {"step": {"learning_rate": 2e-3}}}
    start = begin_step(out, "sft", other, outputs=("adapter",))
    assert start.resume_from is None and start.run_id != "r1"
    assert not (out / "checkpoints").exists() and not (out / "merged").exists()  # stale outputs removed
    record = json.loads((out / "step.json").read_text())
    assert record["status"] == "running" and record["inputs"] == other and record["run_id"] == start.run_id


# -- a Hub base: the commit that is fingerprinted is the commit that is loaded ------------------------------------

HUB_SHA = "0123456789abcdef0123456789abcdef01234567"


def _hub_identity(monkeypatch, hub_id):
    """``model_identity`` answering for ``hub_id`` as the Hub would, with a resolved commit.

    A stand-in: no Hub is reachable in the tests, so the commit a branch resolves to is scripted here.
    """
    from harness.core import fingerprint

    real = fingerprint.model_identity
    identity = fingerprint.ModelIdentity(kind="hub", name=hub_id, revision=HUB_SHA,
                                         fingerprint=fingerprint.short_hash("hub", hub_id, HUB_SHA))

    def fake(model, **kw):
        return identity if model == hub_id else real(model, **kw)

    monkeypatch.setattr(fingerprint, "model_identity", fake)
    return identity


def test_base_revision_is_the_resolved_commit_of_a_hub_base(monkeypatch, tiny_models):
    """The revision to load a Hub base at is the commit its identity resolved ``main`` to (scripted: no Hub here)."""
    from harness.train.models import base_to_load

    identity = _hub_identity(monkeypatch, "org/tiny")
    assert base_to_load("org/tiny", "main") == (identity, HUB_SHA)
    local, revision = base_to_load(str(tiny_models["base"]), None)
    assert local.kind == "local" and revision is None  # a folder has no revision to load


def test_a_hub_base_is_loaded_and_recorded_at_its_resolved_commit(monkeypatch, tiny_models, distilled, tmp_path):
    """Every loader of the base receives the resolved sha, and the step record, manifest and card name it.

    The Hub is not reachable in the tests: ``model_identity`` is scripted to resolve the Hub id ``org/tiny`` to
    a commit, and the loaders load the local tiny model in its place after recording the revision they were given.
    """
    from harness.train import steps

    identity = _hub_identity(monkeypatch, "org/tiny")
    asked: list[tuple[str, str | None]] = []

    def stand_in(loader, name):
        def load(path, *args, revision=None):
            if str(path) != "org/tiny":
                return loader(path, *args, revision=revision)
            asked.append((name, revision))
            return loader(tiny_models["base"], *args)
        return load

    for name in ("_model_config", "load_model", "load_tokenizer"):
        monkeypatch.setattr(steps, name, stand_in(getattr(steps, name), name))
    cfg = load_train_config(None, {"device": "cpu", "sft": {"max_steps": 1}, "dpo": {"max_steps": 1}})
    manifest = run_train("org/tiny", distilled / "sft", distilled / "dpo", tmp_path / "t", cfg, revision="main")
    assert sorted(asked) == [("_model_config", HUB_SHA), ("load_model", HUB_SHA), ("load_tokenizer", HUB_SHA)]
    sft = _record(tmp_path / "t", "sft")
    assert sft["base_revision"] == HUB_SHA and sft["inputs"]["base"] == identity.fingerprint
    assert manifest["base_revision"] == HUB_SHA
    assert f"`org/tiny` at Hub commit `{HUB_SHA}`" in (tmp_path / "t" / "candidate" / "README.md").read_text()
