"""Benchmark: ``empathy pairs export`` of 10,000 judgments (prints figures; not a test).

Takes the first K run folders written by ``bench_board_build.py`` (250 dialogues, two comparisons each: 500
judgments per run; their reference set files are where the manifests say) and exports them with the same judge,
``--min-p 0.5`` and an evaluation set that shares no dialogue with them (the benchmark's dialogues are the bundled
ones under other ids: with the default evaluation set every pair would be refused): total wall time, and the part
that is not ``load_run`` (every run is still checked in full) — in this process (``workers=1``) and then with the
default worker processes (one per core), side by side, with the same output checked.

Usage:  OMP_NUM_THREADS=1 python benchmarks/bench_pairs_export.py --work /tmp/empathy-board-bench --judgments 10000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/empathy-board-bench")
    ap.add_argument("--judgments", type=int, default=10_000)
    args = ap.parse_args()

    import harness.train.pairs as pairs
    from harness.core.allocator import keep_freed_memory

    keep_freed_memory()  # as the CLI does
    runs = sorted(p for p in (Path(args.work) / "runs-1000").iterdir() if (p / "results.json").is_file())
    k = -(-args.judgments // 500)
    if len(runs) < k:
        raise SystemExit(f"{args.work}/runs-1000 holds {len(runs)} runs: run benchmarks/bench_board_build.py first")
    loading = {"s": 0.0}
    real_load = pairs.load_run

    def timed_load(path):  # noqa: ANN001, ANN202
        t0 = time.perf_counter()
        try:
            return real_load(path)
        finally:
            loading["s"] += time.perf_counter() - t0

    pairs.load_run = timed_load
    with tempfile.TemporaryDirectory() as tmp:
        held = Path(tmp) / "eval.jsonl"
        held.write_text('{"id": "x", "emotion": "joyful", "sentiment": "positive", "situation": "A benchmark.", '
                        '"utterance": "Nothing in common."}\n')
        texts = {}
        for workers in (1, None):
            loading["s"] = 0.0
            out = Path(tmp) / f"pairs-{workers}.jsonl"
            t0 = time.perf_counter()
            manifest = pairs.export_pairs(pairs.ExportConfig(runs=runs[:k], output=out, min_p=0.5,
                                                             eval_dataset=str(held), workers=workers))
            wall = time.perf_counter() - t0
            texts[workers] = out.read_bytes()
            print(f"{manifest['judgments']:,} judgments of {k} runs → {manifest['pairs']:,} pairs; dropped "
                  f"{ {r: n for r, n in manifest['dropped'].items() if n} }")
            where = (f"checking the runs (load_run) {loading['s']:.2f} s, the export itself {wall - loading['s']:.2f} s"
                     if manifest["processes"] == 1 else "load_run in the workers")
            print(f"  {manifest['processes']} process(es): total {wall:.2f} s ({where})")
        print(f"same pairs file both ways: {texts[1] == texts[None]}")


if __name__ == "__main__":
    main()
