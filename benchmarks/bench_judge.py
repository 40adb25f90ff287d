"""Benchmark of the local judge (prints figures; not a test): verdicts/s in logits mode, in generate mode, and a
raw batched forward pass over the same prompts (the floor the logits mode is measured against).

Random-weight judges of real shapes, built on the device in bf16 (GPU) or fp32 (CPU); the harness's small BPE
tokenizer (ids < 1,200). A random judge never stops early, so generate mode always writes its full budget (96 new
tokens): an upper bound on what a real judge's rationale costs.

Usage:  python benchmarks/bench_judge.py --shapes 0.5b,1.5b --pairs 64            (GPU)
        OMP_NUM_THREADS=1 python benchmarks/bench_judge.py --shapes tiny --pairs 16
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = {
    "tiny": {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 4,
             "num_key_value_heads": 2, "vocab_size": None},
    "0.5b": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
             "num_key_value_heads": 2, "vocab_size": 151936},
    "1.5b": {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
             "num_key_value_heads": 2, "vocab_size": 151936},
    "7b": {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
           "num_key_value_heads": 4, "vocab_size": 152064},
}


def build(root: Path, shape: str, device: str) -> Path:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from harness.llm.tiny import build_tokenizer

    out = root / shape
    out.mkdir(parents=True, exist_ok=True)
    build_tokenizer(out)
    tok = AutoTokenizer.from_pretrained(out)
    dims = dict(SHAPES[shape])
    dims["vocab_size"] = dims["vocab_size"] or len(tok)
    cfg = Qwen2Config(**dims, tie_word_embeddings=shape in ("tiny", "0.5b", "1.5b"),
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(cfg).to(dtype)
    model.save_pretrained(out)
    del model
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="tiny")
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    from harness.data.selection import run_dialogues
    from harness.judge.judge import GENERATE_MAX_NEW_TOKENS, Judge, PairItem
    from harness.llm.cache import JudgeCache
    from harness.llm.hf import HFBackend

    device = "cuda" if torch.cuda.is_available() else "cpu"
    root = Path(tempfile.mkdtemp(prefix="empathy-bench-judge-"))
    dialogues, _ = run_dialogues("bundled", args.pairs)
    items = [PairItem(d, "vs_base", "c", "b", "I'm so sorry, that sounds really hard. I'm here if you need me.",
                      "Oh no. That is bad.") for d in dialogues]
    rows = []
    for shape in args.shapes.split(","):
        path = build(root, shape, device)
        backend = HFBackend(str(path), device=device, batch_size=args.batch_size)
        n = 2 * len(items)
        for mode in ("logits", "generate"):
            # warm-up over every batch shape (lazy kernel loading, allocator) with a throwaway cache
            Judge(backend=backend, mode=mode, cache=JudgeCache(root / f"{shape}-{mode}-warm.sqlite")).judge_pairs(
                items if mode == "logits" else items[:2])
            judge = Judge(backend=backend, mode=mode, cache=JudgeCache(root / f"{shape}-{mode}.sqlite"))
            judge.judge_pairs(items[:2])  # these 4 verdicts are cached, so not re-timed
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            judge.judge_pairs(items)
            if device == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            rows.append({"shape": shape, "run": f"judge, {mode} mode", "seconds": round(dt, 3),
                         "verdicts_per_s": round((n - 4) / dt, 1)})
        # raw floor: the same prompts, rendered and batched by the backend, one forward pass per batch, no parsing
        judge = Judge(backend=backend, mode="logits", cache=JudgeCache(root / "unused.sqlite"))
        requests = []
        for it in items:
            requests += [judge._pair_request(it.dialogue, it.candidate_response, it.reference_response),
                         judge._pair_request(it.dialogue, it.reference_response, it.candidate_response)]
        batches = list(backend._batches(backend._encode(requests)))
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.inference_mode():
            for _, enc in batches:
                backend.model(**enc).logits[:, -1, :].float().softmax(-1)
        if device == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        rows.append({"shape": shape, "run": "raw forward pass (floor)", "seconds": round(dt, 3),
                     "verdicts_per_s": round(n / dt, 1)})
        backend.close()
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    table = Table(title=f"local judge, {2 * args.pairs} verdicts, batch {args.batch_size}, {name}; generate = "
                        f"{GENERATE_MAX_NEW_TOKENS} new tokens")
    for col in ("shape", "run", "seconds", "verdicts/s"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["shape"], r["run"], str(r["seconds"]), str(r["verdicts_per_s"]))
    Console(width=140).print(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
