"""Benchmark of the training sidecar (prints figures; not a test).

LoRA SFT and DPO on the same data, in the same process: trl's plain defaults (``SFTConfig`` / ``DPOConfig`` with
only the output folder, the epochs and the learning rate set — batch 8, gradient checkpointing on, bf16 on a GPU)
beside ``empathy train``: no gradient checkpointing, bf16 on a GPU, padding-free batches when flash attention is
installed. With the default recipe (``configured``) the configured effective batch and learning rate train (on a GPU
the benchmark configures trl's batch of 8, so both runs follow the same recipe); on a GPU a third run per step uses
the opt-in recipe ``fast-gpu`` (micro-batch sized to memory, learning rate scaled from the batch of 8). Reports
seconds/step, tokens/s, peak GPU memory and the final training loss of each.

Models are random-weight, built in-process: ``--shape tiny`` (hidden 256, 4 layers) for CPU, ``--shape qwen0.5b``
(the Qwen2.5-0.5B configuration: hidden 896, 24 layers, 151,936-token vocabulary) for a GPU. The tokenizer is the
harness's small BPE tokenizer (token ids stay below 1,200; the embedding and output layers keep the real size).

Usage:  OMP_NUM_THREADS=1 python benchmarks/bench_train.py --shape tiny --rows 64
        python benchmarks/bench_train.py --shape qwen0.5b --rows 1024          (GPU)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = ("that sounds really hard and I am so sorry you went through it I can only imagine how you felt when it "
         "happened please know that I am here for you and that your feelings make complete sense to me").split()


def build(root: Path, shape: str) -> Path:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from harness.llm.tiny import build_tokenizer

    out = root / f"model-{shape}"
    out.mkdir(parents=True, exist_ok=True)
    build_tokenizer(out)
    tok = AutoTokenizer.from_pretrained(out)
    if shape == "tiny":
        cfg = Qwen2Config(vocab_size=len(tok), hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                          num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    else:  # Qwen2.5-0.5B's configuration
        cfg = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                          num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                          rope_theta=1e6, tie_word_embeddings=True, rms_norm_eps=1e-6)
    cfg.eos_token_id, cfg.pad_token_id = tok.eos_token_id, tok.pad_token_id
    torch.manual_seed(0)
    Qwen2ForCausalLM(cfg).save_pretrained(out)
    return out


def data(root: Path, rows: int) -> tuple[Path, Path]:
    from harness.core.prompts import load_generation_prompt
    from harness.core.resources import bundled_dialogues_path
    from harness.data.sources import load_jsonl

    rng = random.Random(0)
    dialogues = load_jsonl(bundled_dialogues_path())
    prompt = load_generation_prompt()

    def reply(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."

    sft, dpo = [], []
    for i in range(rows):
        d = dialogues[i % len(dialogues)]
        user = [{"role": "user", "content": prompt.render(d)}]
        chosen = reply(rng.randint(30, 70))
        sft.append({"messages": [*user, {"role": "assistant", "content": chosen}]})
        dpo.append({"prompt": user, "chosen": [{"role": "assistant", "content": chosen}],
                    "rejected": [{"role": "assistant", "content": reply(rng.randint(10, 40))}]})
    (root / "sft").mkdir(exist_ok=True)
    (root / "dpo").mkdir(exist_ok=True)
    (root / "sft" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))
    (root / "dpo" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dpo))
    return root / "sft" / "train.jsonl", root / "dpo" / "train.jsonl"


def _peak_reset() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")


def _figures(label: str, history: list[dict[str, Any]], steps: int, seconds: float, batch: Any) -> dict[str, Any]:
    tokens = max((h.get("num_tokens", 0) for h in history), default=0)
    loss = [h["train_loss"] for h in history if "train_loss" in h]
    return {"run": label, "micro_batch": batch, "steps": steps, "seconds": round(seconds, 2),
            "s_per_step": round(seconds / max(steps, 1), 4), "tokens": int(tokens),
            "tokens_per_s": round(tokens / seconds, 1) if seconds else None,
            "peak_gb": round(_peak(), 2), "final_loss": round(loss[-1], 4) if loss else None}


def trl_defaults(kind: str, model_dir: Path, path: Path, out: Path, lr: float) -> dict[str, Any]:
    """trl as it comes: only the output folder, one epoch and the learning rate are set."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from harness.train.datasets import dpo_dataset, sft_dataset

    cuda = torch.cuda.is_available()
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16 if cuda else torch.float32)
    common = {"output_dir": str(out), "num_train_epochs": 1, "learning_rate": lr, "save_strategy": "no",
              "report_to": "none", "logging_steps": 5, "disable_tqdm": True}
    if not cuda:
        common.update(use_cpu=True, bf16=False)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    _peak_reset()
    if kind == "sft":
        args = SFTConfig(**common)
        trainer = SFTTrainer(model=model, args=args, train_dataset=sft_dataset(path), processing_class=tok,
                             peft_config=lora)
    else:
        args = DPOConfig(**common)
        trainer = DPOTrainer(model=model, args=args, train_dataset=dpo_dataset(path), processing_class=tok,
                             peft_config=lora)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    t0 = time.perf_counter()
    trainer.train()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {**_figures(f"{kind}: trl defaults (GC {'on' if args.gradient_checkpointing else 'off'})",
                       trainer.state.log_history, trainer.state.global_step, seconds, args.per_device_train_batch_size),
            "learning_rate": args.learning_rate}


def ours(kind: str, model_dir: Path, path: Path, out: Path, lr: float, recipe: str = "configured") -> dict[str, Any]:
    """``empathy train``'s settings with ``recipe`` (run through its own functions)."""
    import torch

    from harness.train.config import load_train_config
    from harness.train.hardware import detect_hardware
    from harness.train.steps import run_dpo, run_sft

    # on a GPU the configured effective batch is trl's default of 8, so the configured recipe is trl's recipe and
    # fast-gpu scales its learning rate from it; on CPU: the paper's 2
    step = {"num_train_epochs": 1, "learning_rate": lr, "save_steps": 10**6}
    if torch.cuda.is_available():
        step["effective_batch_size"] = 8
    cfg = load_train_config(None, {"sft": dict(step), "dpo": dict(step), "recipe": recipe})
    hw = detect_hardware(cfg)
    _peak_reset()
    info = run_sft(str(model_dir), path, out, cfg, hw) if kind == "sft" else run_dpo(model_dir, path, out, cfg, hw)
    history = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    label = f"{kind}: empathy train, {recipe} ({'padding-free, ' if info.get('padding_free') else ''}GC off)"
    return {**_figures(label, history, info["steps"], info["seconds"], info["micro_batch"]),
            "learning_rate": info.get("learning_rate")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=("tiny", "qwen0.5b"), default="tiny")
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    root = Path(tempfile.mkdtemp(prefix="empathy-bench-train-"))
    model_dir = build(root, args.shape)
    sft_path, dpo_path = data(root, args.rows)
    results = []
    # warm-up: CUDA context, kernels, tokenisation caches (not reported)
    warm = root / "warm.jsonl"
    warm.write_text("".join(sft_path.read_text().splitlines(keepends=True)[:32]))
    ours("sft", model_dir, warm, root / "warm", args.lr)
    recipes = ("configured", "fast-gpu") if torch.cuda.is_available() else ("configured",)
    for kind, path in (("sft", sft_path), ("dpo", dpo_path)):
        results.append(trl_defaults(kind, model_dir, path, root / f"{kind}-defaults", args.lr))
        for recipe in recipes:
            results.append(ours(kind, model_dir, path, root / f"{kind}-{recipe}", args.lr, recipe))
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    table = Table(title=f"LoRA SFT / DPO, {args.shape}-shaped random model, {args.rows} rows, 1 epoch, {device}")
    for col in ("run", "micro-batch", "lr", "steps", "s/step", "tokens/s", "peak GiB", "final loss"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for r in results:
        table.add_row(r["run"], str(r["micro_batch"]), f"{r['learning_rate']:.2e}", str(r["steps"]), f"{r['s_per_step']:.3f}",
                      f"{r['tokens_per_s']:.0f}", f"{r['peak_gb']}", str(r["final_loss"]))
    Console(width=160).print(table)
    for kind in ("sft", "dpo"):
        a, *others = [r for r in results if r["run"].startswith(kind)]
        for b in others:
            print(f"{b['run']}: tokens/s speed-up {b['tokens_per_s'] / a['tokens_per_s']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "shape": args.shape, "rows": args.rows,
                                               "results": results}, indent=2))


if __name__ == "__main__":
    main()
