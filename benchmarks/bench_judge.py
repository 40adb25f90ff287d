"""Benchmark of the local judge against the raw prefill rate of the same model (prints figures; not a test).

For each judge shape, side by side in one process, on pairwise prompts of about ``--tokens`` tokens (real
dialogues, replies lengthened to reach it):

- raw prefill: the same prompts, pre-tokenised, one forward pass per batch with ``logits_to_keep=1``, over batch
  sizes 8…128 — the best rate is the floor the judge is measured against;
- the judge in logits mode without prefix reuse and with it (batch size: ``--batch-size``, 0 = auto, i.e. chosen
  from free GPU memory), fresh verdict caches, after a warm-up over every batch shape;
- the judge in generate mode (96 new tokens; a random judge never stops early, so this is an upper bound).

Targets (issue 12): logits mode ≥ 80 % of the best prefill rate without reuse, above 100 % with it, and ≥ 10× generate
mode. Random-weight judges of real shapes, bf16 on a GPU, fp32 on a CPU; the harness's small BPE tokenizer.

Usage:  python benchmarks/bench_judge.py --shapes 0.5b,1.5b,7b --pairs 256            (GPU)
        OMP_NUM_THREADS=1 python benchmarks/bench_judge.py --shapes tiny --pairs 8 --tokens 256
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


def lengthen(items: list, tokenizer: object, judge: object, target: int) -> list:  # noqa: ANN001
    """Lengthen both replies of every pair until its pairwise prompt reaches ``target`` tokens."""
    from harness.judge.judge import PairItem

    filler = " I keep thinking about what you said, and I want you to know I am listening."
    out = []
    for it in items:
        cand, ref = it.candidate_response, it.reference_response
        while True:
            text = judge.backend.render(judge._pair_request(it.dialogue, cand, ref))
            if len(tokenizer(text, add_special_tokens=False)["input_ids"]) >= target:
                break
            cand, ref = cand + filler, ref + filler[: len(filler) // 2]
        out.append(PairItem(it.dialogue, it.comparison, it.candidate, it.reference, cand, ref))
    return out


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn) -> float:  # noqa: ANN001
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="tiny")
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=512, help="pairwise prompt length to reach")
    ap.add_argument("--batch-size", type=int, default=0, help="judge batch size; 0 = auto")
    ap.add_argument("--generate-pairs", type=int, default=16)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    from harness.data.selection import run_dialogues
    from harness.judge.judge import GENERATE_MAX_NEW_TOKENS, Judge, PairItem
    from harness.llm.cache import JudgeCache
    from harness.llm.client import LLMClient
    from harness.llm.hf import HFBackend

    device = "cuda" if torch.cuda.is_available() else "cpu"
    root = Path(tempfile.mkdtemp(prefix="empathy-bench-judge-"))
    dialogues, _ = run_dialogues("bundled", None)
    dialogues = [dialogues[i % len(dialogues)] for i in range(args.pairs)]
    base_items = [PairItem(d, "vs_base", "c", "b", "I'm so sorry, that sounds really hard. I'm here if you need me.",
                           "Oh no. That is bad.") for d in dialogues]
    rows: list[dict] = []
    summary: dict[str, dict] = {}

    def judge_with(backend: HFBackend, mode: str, tag: str) -> Judge:
        return Judge(client=LLMClient(backend=backend, mode=mode, cache=JudgeCache(root / f"{tag}.sqlite")),
                     min_label_mass=0.0)

    for shape in args.shapes.split(","):
        path = build(root, shape, device)
        backend = HFBackend(str(path), device=device, batch_size=args.batch_size, prefix_reuse=False)
        items = lengthen(base_items, backend.tokenizer, judge_with(backend, "logits", "render"), args.tokens)
        n = 2 * len(items)
        probe = judge_with(backend, "logits", "requests")
        requests = [r for it in items for r in (probe._pair_request(it.dialogue, it.candidate_response,
                                                                     it.reference_response),
                                                probe._pair_request(it.dialogue, it.reference_response,
                                                                    it.candidate_response))]
        encoded = backend._encode(requests)
        mean_tokens = sum(map(len, encoded)) / len(encoded)
        # raw prefill over batch sizes
        best = 0.0
        for bs in (8, 16, 32, 64, 128):
            backend.batch_size = bs
            batches = [enc for _, enc in backend._batches(encoded)]

            def prefill(batches: list = batches, model: object = backend.model) -> None:
                with torch.inference_mode():
                    for enc in batches:
                        model(**enc, logits_to_keep=1).logits[:, -1, :].float().softmax(-1)

            try:
                prefill()  # warm-up: this batch shape's kernels and allocations
                dt = timed(prefill)
            except torch.OutOfMemoryError:
                break
            rate = n / dt
            best = max(best, rate)
            rows.append({"shape": shape, "run": f"raw prefill, batch {bs}", "seconds": round(dt, 3),
                         "verdicts_per_s": round(rate, 1)})
        backend.batch_size = args.batch_size
        auto = backend.rows_per_batch(max(map(len, encoded)))
        for reuse in (False, True):
            backend.prefix_reuse = reuse
            judge_with(backend, "logits", f"{shape}-warm-{reuse}").judge_pairs(items)
            judge = judge_with(backend, "logits", f"{shape}-logits-{reuse}")
            dt = timed(lambda judge=judge, items=items: judge.judge_pairs(items))
            rows.append({"shape": shape, "run": f"judge, logits, {'reuse' if reuse else 'plain'}, batch {auto}",
                         "seconds": round(dt, 3), "verdicts_per_s": round(n / dt, 1)})
        backend.prefix_reuse = False
        g_items = items[: args.generate_pairs]
        judge_with(backend, "generate", f"{shape}-gen-warm").judge_pairs(g_items[:2])
        judge = judge_with(backend, "generate", f"{shape}-gen")
        dt = timed(lambda judge=judge, g_items=g_items: judge.judge_pairs(g_items))
        rows.append({"shape": shape, "run": f"judge, generate ({GENERATE_MAX_NEW_TOKENS} new tokens)",
                     "seconds": round(dt, 3), "verdicts_per_s": round(2 * len(g_items) / dt, 2)})
        by_run = {r["run"].split(", batch")[0]: r["verdicts_per_s"] for r in rows if r["shape"] == shape}
        summary[shape] = {
            "prompt_tokens_mean": round(mean_tokens),
            "auto_batch": auto,
            "best_prefill_verdicts_per_s": round(best, 1),
            "plain_over_best_prefill": round(by_run["judge, logits, plain"] / best, 3),
            "reuse_over_best_prefill": round(by_run["judge, logits, reuse"] / best, 3),
            "logits_plain_over_generate": round(by_run["judge, logits, plain"] / rows[-1]["verdicts_per_s"], 1),
        }
        backend.close()
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    table = Table(title=f"local judge vs raw prefill, {2 * args.pairs} verdicts of ~{args.tokens} tokens, {name}")
    for col in ("shape", "run", "seconds", "verdicts/s"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["shape"], r["run"], str(r["seconds"]), str(r["verdicts_per_s"]))
    console = Console(width=140)
    console.print(table)
    for shape, figures in summary.items():
        console.print(f"{shape}: {figures}")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "rows": rows, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
