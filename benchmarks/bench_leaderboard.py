"""Benchmark of the leaderboard's Bradley–Terry fit (prints figures; not a test).

Synthetic board: N models × D dialogues, every model judged against the anchor only (the normal board, judge cost
O(models × dialogues)); each battle is the mean of two Bernoulli verdicts (one per answer order), so ties occur.
Times the full ``fit_ratings`` (aggregation + point fit + dialogue bootstrap + rank ranges) per ``n_boot`` and
checks the point fit against the closed form of the anchor-only case (logit of the mean score).

Usage:  OMP_NUM_THREADS=1 python benchmarks/bench_leaderboard.py --models 1000 --dialogues 250 --boots 200,1000
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import numpy as np

    from leaderboard.ratings import Battle, fit_ratings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--dialogues", type=int, default=250)
    parser.add_argument("--boots", default="200,1000", help="comma-separated n_boot values")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    true = rng.normal(1000.0, 150.0, size=args.models)
    p = 1.0 / (1.0 + 10.0 ** ((1000.0 - true) / 400.0))
    scores = (rng.random((args.models, args.dialogues, 2)) < p[:, None, None]).mean(axis=2)
    names = [f"model-{i:05d}" for i in range(args.models)]
    battles = [Battle(f"d{d:04d}", names[m], "anchor", float(scores[m, d]))
               for m in range(args.models) for d in range(args.dialogues)]
    print(f"{args.models} models × {args.dialogues} dialogues = {len(battles):,} battles (model vs anchor only), "
          f"{sum(scores.ravel() == 0.5):,} ties; OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")

    mean = scores.mean(axis=1).clip(1e-9, 1 - 1e-9)
    closed = 1000.0 + 400.0 / math.log(10.0) * np.log(mean / (1.0 - mean))
    for n_boot in (int(b) for b in args.boots.split(",")):
        start = time.perf_counter()
        ratings = fit_ratings(battles, anchor="anchor", n_boot=n_boot, seed=args.seed)
        wall = time.perf_counter() - start
        fitted = np.array([ratings[n].score for n in names])
        width = np.array([ratings[n].ci_high - ratings[n].ci_low for n in names])
        cover = np.mean([ratings[n].ci_low <= t <= ratings[n].ci_high for n, t in zip(names, true, strict=True)])
        print(f"n_boot={n_boot:5d}: fit + bootstrap + ranks {wall:6.2f} s | max |fit − closed form| "
              f"{np.abs(fitted - closed).max():.4f} pts | median CI width {np.median(width):.1f} pts | "
              f"CI covers truth {cover:.1%}")


if __name__ == "__main__":
    main()
