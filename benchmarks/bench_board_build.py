"""Benchmark: a leaderboard built end to end from N real run folders (prints figures; not a test).

N run folders (D dialogues each, vs the anchor and a second reference, both orders, ties, rubric) are written with
the project's own ``write_run`` (:mod:`synthetic_runs`: one real tiny-model run, cloned for N models with fresh
verdicts), kept in ``--work`` for the next invocation. Then, in this process:

1. a cold ``build_board`` + ``write_site`` (empty admission cache): load/admit (every run checked in full by
   ``load_run``, in worker processes), fit + bootstrap (raw and style-controlled columns), page + tables — wall time of each and peak memory (this
   process and its workers);
2. a rebuild with one new run (the other N from the cache);
3. a rebuild after one run's judgments.jsonl is edited: that run misses the cache, is re-checked and refused.

Usage:  OMP_NUM_THREADS=1 python benchmarks/bench_board_build.py --runs 1000 --dialogues 250 --work /tmp/board-bench
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("EMPATHY_BOARD_KEY", "benchmark-board-key-0123456789abcdef")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


class Timer:
    """Wall time spent inside a wrapped function (summed over calls)."""

    def __init__(self, fn):  # noqa: ANN001
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *a, **kw):  # noqa: ANN002, ANN003, ANN204
        t0 = time.perf_counter()
        try:
            return self.fn(*a, **kw)
        finally:
            self.seconds += time.perf_counter() - t0


def peak_mb() -> tuple[float, float]:
    """Peak resident memory of this process and of its largest finished child, in MB."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def build(runs: Path, protocol, out: Path, cache: Path, workers: int | None) -> dict:  # noqa: ANN001
    import leaderboard.build as lb

    admit, fit = Timer(lb.admit), Timer(lb.rate)
    lb.admit, lb.rate = admit, fit
    try:
        t0 = time.perf_counter()
        built = lb.build_board([runs], protocol, key=os.environ["EMPATHY_BOARD_KEY"].encode(), cache=cache,
                               workers=workers)
        t1 = time.perf_counter()
        lb.write_site(built, protocol, out, key=os.environ["EMPATHY_BOARD_KEY"].encode())
        t2 = time.perf_counter()
    finally:
        lb.admit, lb.rate = admit.fn, fit.fn
    sc = built.board.style_control
    return {"total": t2 - t0, "load/admit": admit.seconds, "fit + bootstrap": fit.seconds,
            "style": "none" if sc is None else (sc.refused or f"fitted ({', '.join(sc.features)})"),
            "page + tables": t2 - t1, "other": (t1 - t0) - admit.seconds - fit.seconds,
            "rows": len(built.board.rows), "rejected": len(built.board.rejected)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--dialogues", type=int, default=250)
    ap.add_argument("--work", default="/tmp/empathy-board-bench")
    ap.add_argument("--workers", type=int, default=None, help="processes for loading (default: CPU count, ≤ 8)")
    args = ap.parse_args()

    from synthetic_runs import clone_runs, template_run

    from harness.core.allocator import keep_freed_memory

    keep_freed_memory()  # as `empathy leaderboard build` does (the workers do it too)

    from harness.evaluate.runs import load_run
    from leaderboard.protocol import protocol_from_run

    work = Path(args.work)
    template = work / "template"
    if not (template / "results.json").is_file():
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        t0 = time.perf_counter()
        template_run(work, args.dialogues)
        print(f"template run ({args.dialogues} dialogues, real tiny models): {time.perf_counter() - t0:.0f} s")
    runs = work / f"runs-{args.runs}"
    if not runs.is_dir() or len(list(runs.iterdir())) != args.runs:
        shutil.rmtree(runs, ignore_errors=True)
        t0 = time.perf_counter()
        clone_runs(template, runs, args.runs)
        print(f"{args.runs} run folders written with write_run: {time.perf_counter() - t0:.0f} s")
    result = load_run(template).result
    protocol = protocol_from_run(result, name="bench", min_scored=1, max_flip_rate=1.0, min_label_mass=0.0,
                                 require_judge_ok=False)
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    print(f"\n{args.runs} runs × {args.dialogues} dialogues, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
          f"{os.cpu_count()} CPUs, workers {args.workers or 'auto'}")

    cold = build(runs, protocol, work / "site", cache, args.workers)
    mem = peak_mb()
    print(f"cold build: {cold['total']:.1f} s — load/admit {cold['load/admit']:.1f} s, fit + bootstrap "
          f"{cold['fit + bootstrap']:.1f} s, page + tables {cold['page + tables']:.1f} s, other {cold['other']:.1f} s; "
          f"{cold['rows']} rows, {cold['rejected']} refused, style column {cold['style']}; peak memory {mem[0]:.0f} MB (largest worker "
          f"{mem[1]:.0f} MB)")

    extra = work / "extra"
    shutil.rmtree(extra, ignore_errors=True)
    (new,) = clone_runs(template, extra, 1, seed=99)
    target = runs / "zz-new"
    shutil.rmtree(target, ignore_errors=True)
    shutil.move(str(new), target)
    warm = build(runs, protocol, work / "site", cache, args.workers)
    print(f"rebuild with 1 new run: {warm['total']:.1f} s — load/admit {warm['load/admit']:.1f} s, fit + bootstrap "
          f"{warm['fit + bootstrap']:.1f} s, page + tables {warm['page + tables']:.1f} s; {warm['rows']} rows")

    victim = sorted(runs.iterdir())[0] / "judgments.jsonl"
    text = victim.read_text()
    victim.write_text(text.replace('"outcome": "reference"', '"outcome": "candidate"', 1))
    try:
        tampered = build(runs, protocol, work / "site", cache, args.workers)
    finally:
        victim.write_text(text)
        shutil.rmtree(target, ignore_errors=True)
    print(f"rebuild with one run's judgments.jsonl edited: {tampered['total']:.1f} s; {tampered['rows']} rows, "
          f"{tampered['rejected']} refused (the edited run, re-checked in full)")


if __name__ == "__main__":
    main()
