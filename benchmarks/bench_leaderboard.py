"""Benchmark of the leaderboard's Bradley–Terry fit (prints figures; not a test).

Synthetic board: N models × D dialogues, every model judged against the anchor only (the normal board, judge cost
O(models × dialogues)); each battle is the mean of two Bernoulli verdicts (one per answer order), so ties occur.
Times the full ``fit_ratings`` (aggregation + point fit + dialogue bootstrap + rank ranges) per ``n_boot`` and
checks the point fit against the closed form of the anchor-only case (logit of the mean score). Then the
style-controlled fit (``fit_style_ratings``, 7 style features, its own raw fit included) on a board whose judge pays
for length: every model's replies vary in length around its own mean, and the true ratings are recovered with the
length effect taken out (RMSE vs truth, raw and controlled; coverage of the controlled CIs).

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
    from leaderboard.style_ratings import fit_style_ratings

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

    # style control: the judge pays 0.5 log-odds per SD of relative length; 6 more features it ignores
    rel = rng.normal(0.15 * rng.normal(size=args.models)[:, None], 0.2, size=(args.models, args.dialogues))
    noise = rng.normal(size=(args.models, args.dialogues, 6))
    theta = (true - 1000.0) * math.log(10.0) / 400.0
    p_style = 1.0 / (1.0 + np.exp(-(theta[:, None] + 0.5 * rel / 0.2)))
    won = (rng.random((args.models, args.dialogues, 2)) < p_style[:, :, None]).mean(axis=2)
    styled = [Battle(f"d{d:04d}", names[m], "anchor", float(won[m, d]))
              for m in range(args.models) for d in range(args.dialogues)]
    x = np.concatenate([rel[:, :, None], noise], axis=2).reshape(-1, 7)
    features = ["words", "list_items", "bold", "headers", "exclamations", "emoji", "sympathy"]
    for n_boot in (int(b) for b in args.boots.split(",")):
        start = time.perf_counter()
        fit = fit_style_ratings(styled, x, features, anchor="anchor", n_boot=n_boot, seed=args.seed)
        wall = time.perf_counter() - start
        raw = fit_ratings(styled, anchor="anchor", n_boot=0)
        ctrl = np.array([fit.ratings[n].score for n in names])
        plain = np.array([raw[n].score for n in names])
        cover = np.mean([fit.ratings[n].ci_low <= t <= fit.ratings[n].ci_high
                         for n, t in zip(names, true, strict=True)])
        print(f"style-controlled, n_boot={n_boot:5d}: {wall:6.2f} s | RMSE vs truth raw "
              f"{np.sqrt(np.mean((plain - true) ** 2)):.1f} pts, controlled {np.sqrt(np.mean((ctrl - true) ** 2)):.1f} "
              f"pts | CI covers truth {cover:.1%} | words coefficient {fit.coefficients[0].points:+.1f} pts/SD")


if __name__ == "__main__":
    main()
