"""``empathy train``: the paper's two steps with trl + peft — LoRA SFT, then DPO from the SFT policy — and a merge.

Step 1 trains a LoRA adapter on the SFT set (loss on the reply only: ``messages`` are split into prompt and
completion), then merges it into the base: that merged model is the *SFT policy*. Step 2 trains a new LoRA adapter
with DPO on top of the SFT policy; with the adapter disabled the model *is* the SFT policy, so it is the DPO
reference without a second copy in memory. The DPO adapter is merged into the SFT policy and saved as the candidate,
with a model card (base, data, strategy, hyper-parameters, hashes) and the training logs.

Defaults are the paper's (LoRA r 8, lr 5e-5, 3 epochs, batch 2, bf16 where supported, DPO β 0.1 sigmoid). Settings
that depend on the hardware are chosen here: on CPU bf16 and gradient checkpointing are off (trl 1.x turns both on
by default); on a GPU the micro-batch is sized to memory and padding-free batches are used when flash attention
is available. A step whose adapter exists is skipped; an interrupted step resumes from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.core.errors import HarnessError, did_you_mean
from harness.core.io import file_hash, write_json, write_jsonl


@dataclass
class LoraSettings:
    """LoRA adapter settings (both steps)."""

    r: int = field(default=8, metadata={"help": "LoRA rank (paper: 8)"})
    alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    target_modules: str | list[str] = field(default="all-linear", metadata={"help": "modules to adapt"})


@dataclass
class StepSettings:
    """Optimisation settings of one step."""

    learning_rate: float = field(default=5e-5, metadata={"help": "peak learning rate (paper: 5e-5)"})
    num_train_epochs: float = field(default=3.0, metadata={"help": "epochs (paper: 3)"})
    per_device_train_batch_size: int | None = field(
        default=None, metadata={"help": "micro-batch; None: 2 on CPU (the paper's), sized to memory on a GPU"})
    effective_batch_size: int = field(default=2, metadata={"help": "samples per optimiser step (paper: 2)"})
    max_length: int = field(default=512, metadata={"help": "tokens per sample (prompt + reply)"})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many steps (-1: run the epochs)"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps"})
    lr_scheduler_type: str = field(default="linear", metadata={"help": "learning-rate schedule"})
    logging_steps: int = field(default=5, metadata={"help": "log every N steps"})
    save_steps: int = field(default=100, metadata={"help": "checkpoint every N steps (resume point)"})
    seed: int = field(default=0, metadata={"help": "seed"})
    lr_scaling: str = field(
        default="linear", metadata={"help": "when the GPU micro-batch exceeds effective_batch_size, scale the "
                                            "learning rate by the batch ratio: linear, sqrt or none"})


@dataclass
class SFTSettings(StepSettings):
    """Step 1: LoRA SFT."""

    padding_free: bool | None = field(
        default=None, metadata={"help": "padding-free packed batches; None: on when flash attention is available"})


@dataclass
class DPOSettings(StepSettings):
    """Step 2: DPO from the SFT policy."""

    beta: float = field(default=0.1, metadata={"help": "DPO beta (paper: 0.1)"})
    loss_type: str = field(default="sigmoid", metadata={"help": "DPO loss (paper: sigmoid)"})


@dataclass
class TrainConfig:
    """Everything ``empathy train`` can be told in ``--config YAML`` (keys: lora, sft, dpo, and the fields below)."""

    lora: LoraSettings = field(default_factory=LoraSettings)
    sft: SFTSettings = field(default_factory=SFTSettings)
    dpo: DPOSettings = field(default_factory=DPOSettings)
    bf16: bool | None = field(default=None, metadata={"help": "None: bf16 on GPUs that support it, fp32 on CPU"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade speed for memory"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})


def load_train_config(path: Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The training config: defaults, then the YAML file, then ``overrides`` (same nesting); unknown keys error."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise HarnessError(f"cannot read training config {path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise HarnessError(f"training config {path}: expected a mapping of settings")
    for key, value in (overrides or {}).items():
        if isinstance(value, dict):
            raw.setdefault(key, {}).update(value)
        else:
            raw[key] = value
    config: TrainConfig = _build(TrainConfig, raw, str(path or "config"))
    return config


def _build(cls: Any, raw: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        if key not in fields:
            raise HarnessError(f"{where}: unknown setting {key!r}: {did_you_mean(key, fields)}")
        sub = fields[key].default_factory if fields[key].default_factory is not dataclasses.MISSING else None
        if sub is not None and dataclasses.is_dataclass(sub):
            if not isinstance(value, dict):
                raise HarnessError(f"{where}: {key!r} must be a mapping")
            kwargs[key] = _build(sub, value, f"{where}: {key}")
        else:
            kwargs[key] = value
    return cls(**kwargs)


# -- hardware-dependent choices ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Hardware:
    """What the machine allows, and the settings chosen for it."""

    device: str
    bf16: bool
    flash_attention: bool
    gpu_memory_gb: float


def detect_hardware(cfg: TrainConfig) -> Hardware:
    """CPU or GPU, bf16 support, flash attention, memory."""
    import importlib.util

    import torch

    from harness.llm.base import resolve_device

    device = resolve_device(cfg.device)
    cuda = device.startswith("cuda")
    bf16 = cfg.bf16 if cfg.bf16 is not None else bool(cuda and torch.cuda.is_bf16_supported())
    if bf16 and not cuda:
        raise HarnessError("bf16: true needs a CUDA GPU; leave bf16 unset to choose automatically")
    flash = cuda and importlib.util.find_spec("flash_attn") is not None
    memory = torch.cuda.get_device_properties(0).total_memory / 2**30 if cuda else 0.0
    return Hardware(device=device, bf16=bf16, flash_attention=flash, gpu_memory_gb=round(memory, 1))


def micro_batch(step: StepSettings, hw: Hardware, config: Any, *, pairs: bool = False) -> int:
    """The micro-batch: as given, else the paper's 2 on CPU, else sized to half the GPU's memory.

    LoRA keeps no optimiser state for the base weights, so activations dominate: per token about 10 bytes per
    vocabulary entry (bf16 logits, their fp32 upcast and gradient) plus ~34 bytes per hidden unit per layer.
    """
    if step.per_device_train_batch_size:
        return step.per_device_train_batch_size
    if not hw.device.startswith("cuda"):
        return min(2, step.effective_batch_size)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    per_token = 10 * text.vocab_size + 34 * text.hidden_size * text.num_hidden_layers
    per_seq_gb = step.max_length * per_token / 2**30 * (2 if pairs else 1)
    weights_gb = 2 * (text.vocab_size * text.hidden_size + 12 * text.num_hidden_layers * text.hidden_size**2) / 2**30
    budget = 0.5 * hw.gpu_memory_gb - 2 * weights_gb
    size = int(max(1.0, budget / per_seq_gb))
    return int(max(1, min(2 ** int(math.log2(size)), 64)))


# -- datasets -----------------------------------------------------------------------------------------------


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise HarnessError(f"{path}: no such file (make it with 'empathy distill … --output DIR')")
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise HarnessError(f"{path}:{lineno}: not valid JSON ({exc})") from exc
    if not rows:
        raise HarnessError(f"{path}: no training rows")
    return rows


def sft_dataset(path: Path) -> Any:
    """SFT rows (``messages``) as trl prompt/completion rows, so the loss is on the reply only."""
    from datasets import Dataset

    rows = []
    for n, row in enumerate(_read_jsonl(path), start=1):
        msgs = row.get("messages")
        if not (isinstance(msgs, list) and len(msgs) >= 2 and msgs[-1].get("role") == "assistant"):
            raise HarnessError(f"{path}:{n}: expected 'messages' ending with an assistant turn")
        rows.append({"prompt": msgs[:-1], "completion": msgs[-1:]})
    return Dataset.from_list(rows)


def dpo_dataset(path: Path) -> Any:
    """DPO rows (conversational prompt / chosen / rejected)."""
    from datasets import Dataset

    rows = []
    for n, row in enumerate(_read_jsonl(path), start=1):
        if not all(k in row for k in ("prompt", "chosen", "rejected")):
            raise HarnessError(f"{path}:{n}: expected keys prompt, chosen, rejected")
        rows.append({k: row[k] for k in ("prompt", "chosen", "rejected")})
    return Dataset.from_list(rows)


# -- the steps --------------------------------------------------------------------------------------------


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


def _is_main() -> bool:
    """Rank 0 (or no distributed run): the process that merges and writes shared files."""
    import os

    return int(os.environ.get("RANK", "0")) == 0


def _barrier() -> None:
    """Wait for every rank (``accelerate launch`` runs), so rank 0's files exist before others read them."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _quiet(trainer: Any) -> Any:
    """Drop the callback that prints every log dict (our rich bar shows the loss; logs go to log.jsonl)."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


def scaled_learning_rate(step: StepSettings, batch: int) -> float:
    """The learning rate for the effective batch actually used (micro-batch × accumulation).

    A micro-batch sized to GPU memory can exceed the configured effective batch (the paper's 2); with fewer,
    larger steps the same learning rate would under-train, so it is scaled by the ratio (``lr_scaling``).
    """
    effective = max(batch, step.effective_batch_size)
    ratio = min(16.0, effective / step.effective_batch_size)
    if step.lr_scaling not in ("linear", "sqrt", "none"):
        raise HarnessError(f"lr_scaling {step.lr_scaling!r}: use linear, sqrt or none")
    factor = {"linear": ratio, "sqrt": ratio**0.5, "none": 1.0}[step.lr_scaling]
    return float(step.learning_rate * factor)


def _common_args(step: StepSettings, hw: Hardware, cfg: TrainConfig, out: Path, batch: int) -> dict[str, Any]:
    accumulation = max(1, step.effective_batch_size // batch)
    return {
        "output_dir": str(out / "checkpoints"),
        "learning_rate": scaled_learning_rate(step, batch),
        "num_train_epochs": step.num_train_epochs,
        "max_steps": step.max_steps,
        "per_device_train_batch_size": batch,
        "gradient_accumulation_steps": accumulation,
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
        "use_cpu": not hw.device.startswith("cuda"),
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def _last_checkpoint(out: Path) -> str | None:
    checkpoints = sorted((out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return str(checkpoints[-1]) if checkpoints else None


def _load_model(path: str | Path, hw: Hardware, revision: str | None = None) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if hw.bf16 else torch.float32}
    if hw.flash_attention:
        kwargs["attn_implementation"] = "flash_attention_2"
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), revision=revision, **kwargs)
    except OSError as exc:
        raise HarnessError(f"cannot load model {str(path)!r}: {str(exc).splitlines()[0]}. Give a local folder, or a "
                           "Hub id with internet access") from exc
    return model.to(hw.device)  # type: ignore[arg-type]


def _load_tokenizer(path: str | Path, revision: str | None = None) -> Any:
    from transformers import AutoTokenizer

    from harness.llm.tiny import CHATML_TEMPLATE

    tok = AutoTokenizer.from_pretrained(str(path), revision=revision)
    if not getattr(tok, "chat_template", None):
        tok.chat_template = CHATML_TEMPLATE  # a base model without one: train and evaluate with ChatML
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _lora(cfg: TrainConfig, task: str = "CAUSAL_LM") -> Any:
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=cfg.lora.target_modules, task_type=task)


def run_sft(base: str, data: Path, out: Path, cfg: TrainConfig, hw: Hardware, revision: str | None = None) -> dict[str, Any]:
    """Step 1: LoRA SFT on ``data`` (sft/train.jsonl); saves ``out/adapter`` and the merged SFT policy ``out/merged``."""
    from trl import SFTConfig, SFTTrainer  # type: ignore[attr-defined]

    if (out / "merged" / "config.json").is_file():
        return dict(json.loads((out / "step.json").read_text()))
    model = _load_model(base, hw, revision)
    tok = _load_tokenizer(base, revision)
    batch = micro_batch(cfg.sft, hw, model.config)
    padding_free = cfg.sft.padding_free if cfg.sft.padding_free is not None else hw.flash_attention
    args = SFTConfig(**_common_args(cfg.sft, hw, cfg, out, batch), packing=padding_free,
                     padding_free=padding_free)
    dataset = sft_dataset(data)
    trainer = _quiet(SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok,
                                peft_config=_lora(cfg), callbacks=[_progress_callback("step 1/2: LoRA SFT")]))
    info = _fit("sft", trainer, args, out, data, len(dataset), batch)
    if _is_main():
        merged = trainer.model.merge_and_unload()  # type: ignore[operator,union-attr]
        merged.save_pretrained(str(out / "merged"))
        tok.save_pretrained(str(out / "merged"))
    _barrier()
    info.update(padding_free=padding_free, tokens=_last(trainer.state.log_history, "num_tokens"))
    write_json(out / "step.json", info)
    return info


def run_dpo(policy: Path, data: Path, out: Path, cfg: TrainConfig, hw: Hardware) -> dict[str, Any]:
    """Step 2: DPO with a new LoRA adapter on the SFT policy (the reference: the same model, adapter disabled)."""
    from trl import DPOConfig, DPOTrainer  # type: ignore[attr-defined]

    if (out / "adapter" / "adapter_config.json").is_file():
        return dict(json.loads((out / "step.json").read_text()))
    model = _load_model(policy, hw)
    tok = _load_tokenizer(policy)
    batch = micro_batch(cfg.dpo, hw, model.config, pairs=True)
    args = DPOConfig(**_common_args(cfg.dpo, hw, cfg, out, batch), beta=cfg.dpo.beta, loss_type=[cfg.dpo.loss_type])
    dataset = dpo_dataset(data)
    trainer = _quiet(DPOTrainer(model=model, ref_model=None, args=args, train_dataset=dataset, processing_class=tok,
                                peft_config=_lora(cfg), callbacks=[_progress_callback("step 2/2: DPO")]))
    info = _fit("dpo", trainer, args, out, data, len(dataset), batch)
    info["reward_margin_last"] = _last(trainer.state.log_history, "rewards/margins")
    write_json(out / "step.json", info)
    return info


def _fit(step: str, trainer: Any, args: Any, out: Path, data: Path, n: int, batch: int) -> dict[str, Any]:
    """Train (resuming from the last checkpoint), save the adapter and the log; the step's record."""
    resumed = _last_checkpoint(out)
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=resumed)
    seconds = time.perf_counter() - t0
    trainer.save_model(str(out / "adapter"))
    write_jsonl(out / "log.jsonl", trainer.state.log_history)
    return {"step": step, "data": str(data), "data_sha256": file_hash(data), "n": n, "micro_batch": batch,
            "gradient_accumulation_steps": args.gradient_accumulation_steps, "learning_rate": args.learning_rate,
            "steps": trainer.state.global_step, "seconds": round(seconds, 2), "resumed_from": resumed,
            "final_loss": _last(trainer.state.log_history, "train_loss")}


def _last(history: list[dict[str, Any]], key: str) -> float | None:
    values = [h[key] for h in history if key in h]
    return float(values[-1]) if values else None


def preference_margins(model_dir: Path, data: Path, *, limit: int = 64) -> list[float]:
    """Log P(chosen) − log P(rejected) of the reply tokens, per DPO pair (first ``limit``), under a saved model."""
    import torch
    from transformers import AutoModelForCausalLM

    tok = _load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()  # type: ignore[no-untyped-call]

    def logp(prompt: list[dict[str, str]], reply: list[dict[str, str]]) -> float:
        head = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(prompt + reply, tokenize=False)
        ids = tok(full, return_tensors="pt", add_special_tokens=False)["input_ids"]
        n_head = len(tok(head, add_special_tokens=False)["input_ids"])
        with torch.inference_mode():
            logits = model(ids).logits[0, :-1].float()
        token_logp = torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0]
        return float(token_logp[n_head - 1 :].sum())

    return [logp(r["prompt"], r["chosen"]) - logp(r["prompt"], r["rejected"]) for r in _read_jsonl(data)[:limit]]


def merge_adapter(policy: Path, adapter: Path, out: Path) -> None:
    """Merge a LoRA adapter into its base model and save model + tokenizer (fp32 on CPU)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(policy), dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(out))
    _load_tokenizer(policy).save_pretrained(str(out))


def run_train(base: str, sft: Path, dpo: Path, output: Path, cfg: TrainConfig, *, revision: str | None = None,
              provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """LoRA SFT → DPO → merge; writes ``output/candidate`` (model, tokenizer, README.md model card) and logs."""
    import importlib.metadata as md

    from harness.core.ui import console

    hw = detect_hardware(cfg)
    sft_file = sft / "train.jsonl" if sft.is_dir() else sft
    dpo_file = dpo / "train.jsonl" if dpo.is_dir() else dpo
    console.print(f"[bold]train[/]: {base} on {hw.device} ({'bf16' if hw.bf16 else 'fp32'})")
    step1 = run_sft(base, sft_file, output / "sft", cfg, hw, revision)
    step2 = run_dpo(output / "sft" / "merged", dpo_file, output / "dpo", cfg, hw)
    candidate = output / "candidate"
    if not _is_main():
        _barrier()
        return {}
    merge_adapter(output / "sft" / "merged", output / "dpo" / "adapter", candidate)
    before = preference_margins(output / "sft" / "merged", dpo_file)
    after = preference_margins(candidate, dpo_file)
    step2["margin_before"] = sum(before) / len(before)  # mean log-prob margin chosen − rejected, SFT policy
    step2["margin_after"] = sum(after) / len(after)  # … and after DPO: DPO should raise it
    manifest = {
        "schema_version": 1,
        "base": base,
        "base_revision": revision,
        "hardware": dataclasses.asdict(hw),
        "config": dataclasses.asdict(cfg),
        "steps": {"sft": step1, "dpo": step2},
        "provenance": provenance or {},
        "software": {p: _version(md, p) for p in ("transformers", "trl", "peft", "torch", "datasets")},
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(candidate / "training_manifest.json", manifest)
    (candidate / "README.md").write_text(model_card(manifest), encoding="utf-8")
    _barrier()
    return manifest


def _version(md: Any, package: str) -> str:
    try:
        return str(md.version(package))
    except md.PackageNotFoundError:
        return "not installed"


def model_card(m: dict[str, Any]) -> str:
    """A Hugging Face model card for the candidate: what it is, how it was made, with hashes."""
    prov = m.get("provenance") or {}
    sft, dpo = m["steps"]["sft"], m["steps"]["dpo"]
    cfg = m["config"]
    lines = [
        "---",
        f"base_model: {m['base']}",
        "library_name: transformers",
        "tags: [empathy, lora, sft, dpo, trl, empathy-harness]",
        "---",
        "",
        f"# Empathy-distilled candidate of `{m['base']}`",
        "",
        "Trained with empathy-harness in the two steps of Xie et al. 2025 (*Distilling Empathy "
        "from Large Language Models*, arXiv 2507.08151): LoRA SFT on teacher replies, then DPO from the SFT policy "
        "(reference = the SFT policy), both LoRA adapters merged.",
        "",
        "## Data",
        f"- strategy: `{prov.get('strategy', 'unknown')}`; teacher: `{(prov.get('teacher') or {}).get('model', '—')}`;"
        f" dataset: `{prov.get('dataset', '—')}`",
        f"- SFT: {sft['n']} rows, `{sft['data']}` (sha256 {sft['data_sha256']})",
        f"- DPO: {dpo['n']} pairs, `{dpo['data']}` (sha256 {dpo['data_sha256']}); rejected = "
        f"{prov.get('rejected_from', '—')}",
        "",
        "## Hyper-parameters",
        f"- LoRA: r {cfg['lora']['r']}, alpha {cfg['lora']['alpha']}, dropout {cfg['lora']['dropout']}, "
        f"targets {cfg['lora']['target_modules']}",
        f"- SFT: lr {sft.get('learning_rate', cfg['sft']['learning_rate'])}, epochs {cfg['sft']['num_train_epochs']}, batch "
        f"{cfg['sft']['effective_batch_size']} (micro-batch {sft['micro_batch']}), max length {cfg['sft']['max_length']}",
        f"- DPO: beta {cfg['dpo']['beta']}, loss {cfg['dpo']['loss_type']}, lr {dpo.get('learning_rate', cfg['dpo']['learning_rate'])}, epochs "
        f"{cfg['dpo']['num_train_epochs']}, batch {cfg['dpo']['effective_batch_size']} (micro-batch {dpo['micro_batch']})",
        f"- precision: {'bf16' if m['hardware']['bf16'] else 'fp32'}; device: {m['hardware']['device']}",
        "",
        "## Training",
        f"- SFT: {sft['steps']} steps in {sft['seconds']} s, final train loss {sft['final_loss']}",
        f"- DPO: {dpo['steps']} steps in {dpo['seconds']} s, final train loss {dpo['final_loss']}; mean log-prob "
        f"margin chosen − rejected on the training pairs {dpo['margin_before']:.3f} (SFT policy) → "
        f"{dpo['margin_after']:.3f} (candidate)",
        f"- software: {', '.join(f'{k} {v}' for k, v in m['software'].items())}; trained {m['time']}",
        "",
        "Evaluate it with `empathy eval --model <this folder> --reference base=… --reference direct=…`.",
        "",
    ]
    return "\n".join(lines)
