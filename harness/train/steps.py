"""``empathy train``: the paper's two steps with trl + peft — LoRA SFT, then DPO from the SFT policy — and a merge.

Step 1 trains a LoRA adapter on the SFT set (loss on the reply only: ``messages`` are split into prompt and
completion), then merges it into the base: that merged model is the *SFT policy*. Step 2 trains a new LoRA adapter
with DPO on top of the SFT policy; with the adapter disabled the model *is* the SFT policy, so it is the DPO
reference without a second copy in memory. The DPO adapter is merged into the SFT policy and saved as the candidate,
with a model card (base, data, strategy, recipe, hyper-parameters, hashes) and the training logs.

Defaults are the paper's (LoRA r 8, lr 5e-5, 3 epochs, batch 2, bf16 where supported, DPO β 0.1 sigmoid), and the
configured recipe is what trains (:mod:`harness.train.hardware`; ``recipe: fast-gpu`` is the named opt-in to a
larger batch). On CPU bf16 and gradient checkpointing are off (trl 1.x turns both on by default); padding-free
batches are used when flash attention is available. A step is skipped only when its inputs match its record, and
an interrupted step resumes from its last checkpoint (:mod:`harness.train.resume`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from harness.core.io import file_hash, write_jsonl
from harness.train.card import merge_adapter, model_card, preference_margins
from harness.train.config import TrainConfig
from harness.train.datasets import dpo_dataset, sft_dataset, train_file
from harness.train.hardware import BatchPlan, Hardware, barrier, detect_hardware, is_main, plan_batch
from harness.train.models import base_to_load, load_model, load_tokenizer, lora_config
from harness.train.resume import Start, begin_step, finish_step, step_identity


def run_sft(base: str, data: Path, out: Path, cfg: TrainConfig, hw: Hardware, revision: str | None = None) -> dict[str, Any]:
    """Step 1: LoRA SFT on ``data`` (sft/train.jsonl); saves ``out/adapter`` and the merged SFT policy ``out/merged``.

    A Hub base is loaded at the commit ``revision`` resolves to now (the one fingerprinted), recorded as the step's
    ``base_revision``.
    """
    identity, pinned = base_to_load(base, revision)
    plan = plan_batch(cfg.sft, cfg.recipe, hw, _model_config(base, revision=pinned))
    padding_free = cfg.sft.padding_free if cfg.sft.padding_free is not None else hw.flash_attention
    inputs = _inputs(data, identity.fingerprint, cfg.sft, plan, cfg, hw, padding_free=padding_free)
    start = begin_step(out, "sft", inputs, outputs=("adapter", "merged/config.json", "log.jsonl"))
    if start.done is not None:
        # same inputs: the same fingerprint, so the same commit (a record from before base_revision was kept)
        return start.done | {"base_revision": pinned}
    from trl import SFTConfig, SFTTrainer  # type: ignore[attr-defined]

    model = load_model(base, hw, revision=pinned)
    tok = load_tokenizer(base, revision=pinned)
    args = SFTConfig(**_common_args(cfg.sft, plan, hw, cfg, out), packing=padding_free, padding_free=padding_free)
    dataset = sft_dataset(data)
    trainer = _quiet(SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok,
                                peft_config=lora_config(cfg), callbacks=[_progress_callback("step 1/2: LoRA SFT")]))
    info = _fit(trainer, start, out, data, len(dataset), plan)
    if is_main():
        _remove(out / "merged")  # a half-saved policy from an interrupted run
        merged = trainer.model.merge_and_unload()  # type: ignore[operator,union-attr]
        merged.save_pretrained(str(out / "merged"))
        tok.save_pretrained(str(out / "merged"))
    barrier()
    info.update(padding_free=padding_free, tokens=_last(trainer.state.log_history, "num_tokens"),
                base_revision=pinned)
    return finish_step(out, "sft", start, info)


def run_dpo(policy: Path, data: Path, out: Path, cfg: TrainConfig, hw: Hardware, *,
            policy_identity: str | None = None, title: str = "step 2/2: DPO") -> dict[str, Any]:
    """Step 2: DPO with a new LoRA adapter on the SFT policy (the reference: the same model, adapter disabled).

    ``policy_identity`` names the policy for the skip check (run_train: the SFT step's record); None: its content.
    """
    from harness.core.fingerprint import model_identity

    plan = plan_batch(cfg.dpo, cfg.recipe, hw, _model_config(policy), pairs=True)
    identity = policy_identity or model_identity(str(policy)).fingerprint
    inputs = _inputs(data, identity, cfg.dpo, plan, cfg, hw)
    start = begin_step(out, "dpo", inputs, outputs=("adapter", "log.jsonl"))
    if start.done is not None:
        return start.done
    from trl import DPOConfig, DPOTrainer  # type: ignore[attr-defined]

    model = load_model(policy, hw)
    tok = load_tokenizer(policy)
    args = DPOConfig(**_common_args(cfg.dpo, plan, hw, cfg, out), beta=cfg.dpo.beta, loss_type=[cfg.dpo.loss_type])
    dataset = dpo_dataset(data)
    trainer = _quiet(DPOTrainer(model=model, ref_model=None, args=args, train_dataset=dataset, processing_class=tok,
                                peft_config=lora_config(cfg), callbacks=[_progress_callback(title)]))
    info = _fit(trainer, start, out, data, len(dataset), plan)
    info["reward_margin_last"] = _last(trainer.state.log_history, "rewards/margins")
    return finish_step(out, "dpo", start, info)


def _model_config(path: str | Path, *, revision: str | None = None) -> Any:
    """The model's config alone (sizes the micro-batch before any weights are loaded)."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(path), revision=revision)


def _inputs(data: Path, base: str, step: Any, plan: BatchPlan, cfg: TrainConfig, hw: Hardware,
            **extra: Any) -> dict[str, Any]:
    """What a step's result depends on: its data, the model it starts from, and its config (see resume)."""
    return {"data_sha256": file_hash(data), "base": base,
            "config": {"lora": cfg.lora.model_dump(mode="json"), "step": step.model_dump(mode="json"),
                       "plan": plan.as_json(), "precision": "bf16" if hw.bf16 else "fp32", **extra}}


def _common_args(step: Any, plan: BatchPlan, hw: Hardware, cfg: TrainConfig, out: Path) -> dict[str, Any]:
    return {
        "output_dir": str(out / "checkpoints"),
        "learning_rate": plan.learning_rate,
        "num_train_epochs": step.num_train_epochs,
        "max_steps": step.max_steps,
        "per_device_train_batch_size": plan.micro_batch,
        "gradient_accumulation_steps": plan.gradient_accumulation_steps,
        "max_length": step.max_length,
        "warmup_steps": step.warmup_steps,
        "lr_scheduler_type": step.lr_scheduler_type,
        "logging_steps": step.logging_steps,
        "save_strategy": "steps",
        "save_steps": step.save_steps,
        "save_total_limit": 2,
        "seed": step.seed,
        "bf16": hw.bf16,
        "fp16": False,
        "gradient_checkpointing": cfg.gradient_checkpointing,
        "use_cpu": not hw.cuda,
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def _fit(trainer: Any, start: Start, out: Path, data: Path, n: int, plan: BatchPlan) -> dict[str, Any]:
    """Train (from the resume point), save the adapter and the log; the step's results for its record."""
    t0 = time.perf_counter()
    if start.resume_from is not None and _finished(start.resume_from):
        _restore(trainer, start.resume_from)
    else:
        trainer.train(resume_from_checkpoint=start.resume_from)
    seconds = time.perf_counter() - t0
    trainer.save_model(str(out / "adapter"))
    if is_main():
        write_jsonl(out / "log.jsonl", trainer.state.log_history)
    return {"data": str(data), "data_sha256": start.inputs["data_sha256"], "n": n, "plan": plan.as_json(),
            "micro_batch": plan.micro_batch, "gradient_accumulation_steps": plan.gradient_accumulation_steps,
            "learning_rate": plan.learning_rate, "steps": trainer.state.global_step, "seconds": round(seconds, 2),
            "resumed_from": start.resume_from, "final_loss": _final_loss(trainer.state.log_history)}


def _finished(checkpoint: str) -> bool:
    """The checkpoint is the run's last step (a crash came after training; resuming would train one step more)."""
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    return int(state.get("global_step", 0)) >= int(state.get("max_steps") or 1 << 62)


def _restore(trainer: Any, checkpoint: str) -> None:
    """The trained adapter and the trainer state of a finished run, from its last checkpoint."""
    from peft import set_peft_model_state_dict
    from peft.utils import load_peft_weights
    from transformers import TrainerState

    set_peft_model_state_dict(trainer.model, load_peft_weights(checkpoint, device="cpu"))
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))


def _final_loss(history: list[dict[str, Any]]) -> float | None:
    """The run's mean train loss; for a run restored from its last checkpoint (no such entry), the last logged."""
    train_loss = _last(history, "train_loss")
    return train_loss if train_loss is not None else _last(history, "loss")


def _last(history: list[dict[str, Any]], key: str) -> float | None:
    values = [h[key] for h in history if key in h]
    return float(values[-1]) if values else None


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)


def run_train(base: str, sft: Path, dpo: Path, output: Path, cfg: TrainConfig, *, revision: str | None = None,
              provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """LoRA SFT → DPO → merge; writes ``output/candidate`` (model, tokenizer, README.md model card) and logs."""
    from harness.core.ui import console

    hw = detect_hardware(cfg)
    sft_file, dpo_file = train_file(sft), train_file(dpo)
    sft_dataset(sft_file)  # both data files are read and checked before any training starts
    dpo_dataset(dpo_file)
    console.print(f"[bold]train[/]: {base} on {hw.device} ({'bf16' if hw.bf16 else 'fp32'}, recipe {cfg.recipe})")
    step1 = run_sft(base, sft_file, output / "sft", cfg, hw, revision)
    step2 = run_dpo(output / "sft" / "merged", dpo_file, output / "dpo", cfg, hw,
                    policy_identity=step_identity(step1))
    return write_candidate(output / "candidate", base, output / "sft" / "merged", output / "dpo", dpo_file, cfg, hw,
                           {"sft": step1, "dpo": step2}, provenance or {})


def write_candidate(candidate: Path, base: str, policy: Path, dpo_out: Path, dpo_file: Path, cfg: TrainConfig,
                    hw: Hardware, steps: dict[str, dict[str, Any]], provenance: dict[str, Any]) -> dict[str, Any]:
    """Merge the DPO adapter into the SFT policy → ``candidate`` with its manifest and model card; the manifest."""
    import importlib.metadata as md

    from harness.core.io import write_json

    if not is_main():
        barrier()
        return {}
    step1, step2 = steps["sft"], steps["dpo"]
    merge_adapter(policy, dpo_out / "adapter", candidate)
    before = preference_margins(policy, dpo_file)
    after = preference_margins(candidate, dpo_file)
    step2["margin_before"] = sum(before) / len(before)  # mean log-prob margin chosen − rejected, SFT policy
    step2["margin_after"] = sum(after) / len(after)  # … and after DPO: DPO should raise it
    manifest = {
        "schema_version": 2,
        "base": base,
        "base_revision": step1["base_revision"],  # for a Hub base, the commit trained (not the branch asked for)
        "hardware": dataclasses.asdict(hw),
        "recipe": {"name": cfg.recipe, "sft": step1["plan"], "dpo": step2["plan"]},
        # the settings that made this candidate: the on-policy round's only where it ran
        "config": cfg.model_dump(mode="json", exclude=None if "onpolicy" in steps else {"onpolicy"}),
        "steps": steps,
        "provenance": provenance,
        "software": {p: _version(md, p) for p in ("transformers", "trl", "peft", "torch", "datasets")},
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(candidate / "training_manifest.json", manifest)
    (candidate / "README.md").write_text(model_card(manifest), encoding="utf-8")
    barrier()
    return manifest


def _version(md: Any, package: str) -> str:
    try:
        return str(md.version(package))
    except md.PackageNotFoundError:
        return "not installed"


def _progress_callback(title: str) -> Any:
    from transformers import TrainerCallback

    from harness.core.ui import console

    class RichProgress(TrainerCallback):  # type: ignore[misc]
        """A rich progress bar with the latest loss, in place of tqdm."""

        def __init__(self) -> None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[loss]}"), TimeRemainingColumn(), console=console)
            self.task: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.progress.start()
            self.task = self.progress.add_task(title, total=state.max_steps, completed=state.global_step, loss="")

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.progress.update(self.task, completed=state.global_step)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs and self.task is not None:
                self.progress.update(self.task, loss=f"loss {logs['loss']:.4f}")

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.progress.stop()

    return RichProgress()


def _quiet(trainer: Any) -> Any:
    """Drop the callback that prints every log dict (our rich bar shows the loss; logs go to log.jsonl)."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer
