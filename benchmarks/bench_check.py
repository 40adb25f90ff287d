"""Benchmark: ``empathy check`` warm on an unchanged checkpoint, and ``load_run`` of one 250-dialogue run.

The gate's common case in CI: a new checkpoint whose replies and verdicts are those of the baseline (every cache
warm, nothing to generate or judge). Two run folders with identical files (D dialogues, two comparisons, rubric;
:mod:`synthetic_runs`, a healthy judge) are compared by the real command in a fresh process — import, two full
``load_run`` recomputations, the paired bootstrap (2,000 resamples, LC refits included), the report — and its wall
time is printed (median of ``--repeat``), beside ``load_run`` alone, timed in this process.

``--code DIR`` runs another checkout of the harness (e.g. a ``git worktree`` of an older commit) on the same run
folders, for before/after figures.

Usage:  OMP_NUM_THREADS=1 python benchmarks/bench_check.py --dialogues 250 --work /tmp/empathy-board-bench
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dialogues", type=int, default=250)
    ap.add_argument("--work", default="/tmp/empathy-board-bench")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--code", default=str(HERE.parent), help="the harness checkout to time (default: this one)")
    args = ap.parse_args()
    code = str(Path(args.code).resolve())
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    from synthetic_runs import clone_runs, template_run

    work = Path(args.work)
    if not (work / "template" / "results.json").is_file():
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        template_run(work, args.dialogues)
    pair = work / "check-pair"
    if not (pair / "baseline" / "results.json").is_file():
        shutil.rmtree(pair, ignore_errors=True)
        (run,) = clone_runs(work / "template", pair / "clones", 1, seed=7)
        shutil.copytree(run, pair / "baseline")
        shutil.copytree(run, pair / "candidate")  # an unchanged checkpoint: the same replies and verdicts

    env = {**os.environ, "PYTHONPATH": code}
    cmd = [sys.executable, "-m", "harness", "check", "--baseline", str(pair / "baseline"), "--candidate",
           str(pair / "candidate"), "--json", str(pair / "gate.json")]
    walls = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=work)  # cwd: not a checkout
        walls.append(time.perf_counter() - t0)
    first = proc.stdout.strip().splitlines()[:3]
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import harness.cli.main"], env=env, check=True, cwd=work)
    imports = time.perf_counter() - t0
    load = subprocess.run([sys.executable, "-c", (
        "import sys, time; from harness.evaluate.runs import load_run; load_run(sys.argv[1]); t = time.perf_counter(); "
        "[load_run(sys.argv[1]) for _ in range(5)]; print((time.perf_counter() - t) / 5)"), str(pair / "baseline")],
        env=env, capture_output=True, text=True, check=True, cwd=work)
    lc = subprocess.run([sys.executable, "-c", (
        "import json, sys, time; from harness.score.lc import lc_bootstrap_ci; "
        "rows = [json.loads(x) for x in open(sys.argv[1])]; s = {'candidate': 1.0, 'tie': 0.5, 'reference': 0.0}; "
        "js = [r for r in rows if r['comparison'] == 'vs_base' and r['outcome']]; "
        "y = [s[r['outcome']] for r in js]; d = [r['candidate_words'] - r['reference_words'] for r in js]; "
        "lc_bootstrap_ci(y, d, seed=1); t = time.perf_counter(); lc_bootstrap_ci(y, d, seed=1234); "
        "print(time.perf_counter() - t)"), str(pair / "baseline" / "judgments.jsonl")],
        env=env, capture_output=True, text=True, check=True, cwd=work)
    print(f"harness at {code}, {args.dialogues} dialogues, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    print(f"empathy check (unchanged checkpoint, warm): median {statistics.median(walls):.2f} s wall of {args.repeat} "
          f"(min {min(walls):.2f}, max {max(walls):.2f}); exit {proc.returncode}; python + import of the CLI "
          f"{imports:.2f} s")
    print(f"load_run of one run: {float(load.stdout.strip()):.3f} s; the LC CI of one comparison (1,000 refits): "
          f"{float(lc.stdout.strip()):.3f} s")
    print("report: " + " / ".join(first))


if __name__ == "__main__":
    main()
