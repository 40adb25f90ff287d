"""Benchmark of ``empathy judge train`` on real ratings (prints figures; not a test).

Trains a reward model with the default ``fast`` recipe (all-MiniLM-L6-v2, fetched from its wheel) on a Welivita &
Pu ratings CSV given on the command line — the data is read from where it lies, never copied — and prints the
held-out figures (agreement with the better-rated reply beside "the longer reply wins" and "the source rated higher
on average in the training ratings wins", Spearman of r per source), the wall time and the peak resident memory of
the process. Extra options go to ``empathy judge train`` unchanged (e.g. ``--train-layers 0 --epochs 6``).

Usage:  OMP_NUM_THREADS=2 python benchmarks/bench_judge_train.py /path/to/welivita_pu_ratings_dev.csv
        OMP_NUM_THREADS=2 python benchmarks/bench_judge_train.py RATINGS.csv --train-layers 0 --epochs 6
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str]) -> int:
    from harness.cli.main import main as empathy

    if not argv or argv[0].startswith("-"):
        print(__doc__.split("Usage:")[1].strip(), file=sys.stderr)
        return 2
    ratings, extra = argv[0], argv[1:]
    with tempfile.TemporaryDirectory(prefix="bench-judge-train-") as tmp:
        out = Path(tmp) / "reward-model"
        t0 = time.perf_counter()
        code = empathy(["judge", "train", "--ratings", ratings, "--output", str(out), "--val-fraction", "0.25",
                        "--seed", "0", *extra])
        wall = time.perf_counter() - t0
        if code:
            return code
        record = json.loads((out / "training.json").read_text(encoding="utf-8"))
    v = record["validity"]

    def pct(entry: dict[str, float] | None) -> str:
        if not entry:
            return "—"
        return f"{entry['value']:.1%} [{entry['ci_low']:.1%}–{entry['ci_high']:.1%}]"

    split = record["split"]
    print(f"recipe {record['recipe']}: {json.dumps(record['settings'])}")
    print(f"backbone {record['backbone']['name']} ({record['backbone']['fingerprint']})")
    print(f"split by dialogue (seed {split['seed']}): train {split['train']['dialogues']} dialogues / "
          f"{split['train']['pairs']} pairs, validation {split['validation']['dialogues']} / "
          f"{split['validation']['pairs']}")
    print(f"held-out agreement        {pct(v['agreement'])}  (n={v['agreement']['n']} non-tied pairs)")
    print(f"  longer reply wins       {pct(v['length_baseline'])}")
    print(f"  better source wins      {pct(v['source_prior_baseline'])}")
    for source, entry in v["score_spearman"].items():
        print(f"Spearman r vs rating  {source:<16} {entry['rho']:+.3f} [{entry['ci_low']:+.3f}, {entry['ci_high']:+.3f}]")
    for h in (h for h in record["history"] if "val_pair_accuracy" in h):  # the fast recipe's epochs
        print(f"epoch {h['epoch']}: train loss {h['train_loss']:.4f}, validation pair accuracy {h['val_pair_accuracy']:.4f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"time {wall:.0f} s (encoding {record['seconds']['encoding']} s, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}); peak RSS {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
