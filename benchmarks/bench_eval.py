"""Benchmark of the evaluation core (prints figures; not a test).

1. Harness overhead: phase-1 generation through lm-eval (``harness.generate.replies.generate``) vs a bare
   ``model.generate`` loop over the same batches (same prompts, chat template, greedy, max tokens).
2. Judge throughput: verdicts/s in logits mode vs generate mode, same judge, same pairwise prompts.
3. Cache: cold vs warm-cache judge time for the same run.

Usage:  OMP_NUM_THREADS=1 python benchmarks/bench_eval.py [--n 32] [--hidden 256] [--layers 4]
Models are random-weight, built in-process (no download).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def bare_generate(model_dir: Path, prompts: list[str], batch_size: int, max_new_tokens: int) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in prompts]
    for start in range(0, len(texts), batch_size):
        enc = tok(texts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=32, help="dialogues")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    from harness.core.prompts import load_generation_prompt
    from harness.core.settings import JudgeSettings
    from harness.data.selection import run_dialogues
    from harness.generate.replies import ModelSpec, default_decoding, generate
    from harness.judge.judge import PairItem, open_judge
    from harness.llm.tiny import build_tiny_model

    tmp = Path(tempfile.mkdtemp(prefix="empathy-bench-"))
    cand = build_tiny_model(tmp / "cand", seed=1, hidden_size=args.hidden, num_layers=args.layers)
    judge_dir = build_tiny_model(tmp / "judge", seed=2, hidden_size=args.hidden, num_layers=args.layers)
    dialogues, digest = run_dialogues("bundled", args.n)
    decoding = default_decoding()
    prompts = [load_generation_prompt().render(d) for d in dialogues]

    # 1. harness overhead (both include model loading; bare first to warm the file cache fairly)
    bare_generate(cand, prompts[: args.batch_size], args.batch_size, decoding.max_gen_toks)
    t_bare = bare_generate(cand, prompts, args.batch_size, decoding.max_gen_toks)
    t0 = time.perf_counter()
    gens = generate(ModelSpec(str(cand), device="cpu", batch_size=args.batch_size), dialogues, dataset="bundled",
                    decoding=decoding, system="cand")
    t_harness = time.perf_counter() - t0
    print(f"generation, {len(dialogues)} dialogues, batch {args.batch_size}, {decoding.max_gen_toks} max new tokens:")
    print(f"  bare model.generate loop : {t_bare:7.2f} s")
    print(f"  harness (lm-eval phase 1): {t_harness:7.2f} s   overhead {100 * (t_harness / t_bare - 1):+.1f} %")

    # 2 + 3. judge throughput and cache
    items = [PairItem(dialogue=d, comparison="vs_x", candidate="cand", reference="x",
                      candidate_response=g.response[:400], reference_response=dialogues[(i + 1) % len(dialogues)].utterance)
             for i, (d, g) in enumerate(zip(dialogues, gens, strict=True))]
    for mode in ("logits", "generate"):
        settings = JudgeSettings(model=str(judge_dir), mode=mode, device="cpu", batch_size=args.batch_size,  # type: ignore[arg-type]
                                 cache_dir=str(tmp / f"cache-{mode}"))
        judge = open_judge(settings)
        judge.judge_pairs(items[:2])  # load the model outside the timing
        t0 = time.perf_counter()
        judge.judge_pairs(items[2:])
        cold = time.perf_counter() - t0
        n_prompts = 2 * len(items[2:])
        judge.backend.close()
        judge2 = open_judge(settings)
        t0 = time.perf_counter()
        judge2.judge_pairs(items[2:])
        warm = time.perf_counter() - t0
        assert judge2.calls == 0
        print(f"judge {mode:8s}: {n_prompts / cold:7.2f} verdicts/s cold ({cold:.2f} s for {n_prompts}); "
              f"warm cache {warm:.3f} s = {100 * warm / cold:.2f} % of cold")


if __name__ == "__main__":
    main()
