"""End-to-end benchmark of one evaluation (prints figures; not a test): a candidate, its base and direct
references generated on the fly, the judge in both orders of both comparisons plus three rubric dimensions for
every system — what ``empathy eval --base-model B --direct-model D`` does — timed by phase.

Random-weight models of real shapes (see ``bench_judge.build``): by default a Qwen2.5-0.5B-shaped candidate,
base and direct model and a Qwen2.5-7B-shaped judge, on ``--dialogues`` dialogues (the bundled ones, cycled
under new ids when more are asked). Target (issue 12): 250 dialogues in under 2 minutes on one H100/H200.

Usage:  python benchmarks/bench_e2e.py --candidate 0.5b --judge 7b --dialogues 250            (GPU)
        OMP_NUM_THREADS=1 python benchmarks/bench_e2e.py --candidate tiny --judge tiny --dialogues 8
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
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def dataset(root: Path, n: int) -> Path:
    """The bundled dialogues, cycled under new ids up to ``n``."""
    from harness.data.selection import run_dialogues

    base, _ = run_dialogues("bundled", None)
    path = root / f"dialogues-{n}.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            d = base[i % len(base)]
            f.write(json.dumps({"id": f"{d.id}-{i // len(base)}", "emotion": d.emotion, "sentiment": d.sentiment,
                                "situation": d.situation, "utterance": d.utterance}) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidate", default="tiny")
    ap.add_argument("--judge", default="tiny")
    ap.add_argument("--dialogues", type=int, default=8)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch
    from bench_judge import build

    from harness.core.settings import JudgeSettings
    from harness.evaluate.run import EvalConfig, run_eval
    from harness.generate.replies import ModelSpec

    device = "cuda" if torch.cuda.is_available() else "cpu"
    root = Path(tempfile.mkdtemp(prefix="empathy-bench-e2e-"))
    t_build = time.perf_counter()
    models = {name: build(root / name, args.candidate, device) for name in ("candidate", "base", "direct")}
    judge = build(root / "judge", args.judge, device)
    t_build = time.perf_counter() - t_build
    data = dataset(root, args.dialogues)
    batch = 64 if device == "cuda" else 8
    cfg = EvalConfig(
        candidate=ModelSpec(str(models["candidate"]), device=device, batch_size=batch),
        build_references={n: ModelSpec(str(models[n]), device=device, batch_size=batch) for n in ("base", "direct")},
        judge=JudgeSettings(model=str(judge), device=device, cache_dir=str(root / "cache"), min_label_mass=0.0),
        output=root / "run", refs_dir=root / "refs", dataset=str(data), limit=args.dialogues)
    t0 = time.perf_counter()
    run_eval(cfg)
    total = time.perf_counter() - t0
    manifest = json.loads((root / "run" / "manifest.json").read_text())
    figures = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "CPU",
               "candidate_shape": args.candidate, "judge_shape": args.judge, "dialogues": args.dialogues,
               "build_models_s": round(t_build, 1), "total_s": round(total, 1), "timings_s": manifest["timings_s"],
               "judge": {k: manifest["judge"].get(k) for k in ("misses", "model_calls", "compute")}}
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
