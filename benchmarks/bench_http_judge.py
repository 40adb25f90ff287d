"""Benchmark of the HTTP judge (prints figures; not a test).

Starts ``transformers serve`` on 127.0.0.1 (CPU) with a tiny judge, then judges the same pairwise prompts
through the ``openai`` backend at concurrency 1, 4 and 16 (fresh cache each time), and once more from a warm
cache — against the plain server (one request at a time) and with ``--continuous-batching``. Two judges: the scripted one (answers 'Verdict: A Score 3', ~7 tokens: what a verdict costs) and a random
one writing the full generate-mode budget (96 tokens: what a written rationale costs).

Usage:  OMP_NUM_THREADS=1 python benchmarks/bench_http_judge.py [--n 48] [--hidden 256] [--layers 4]
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
    ap.add_argument("--n", type=int, default=32, help="pairs (each judged in both orders)")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from harness.data.selection import run_dialogues
    from harness.judge.judge import PairItem
    from harness.llm.tiny import build_scripted_judge, build_tiny_model
    from tests.servers import Serve

    tmp = Path(tempfile.mkdtemp(prefix="empathy-bench-http-"))
    judges = {
        "scripted (7-token verdict)": build_scripted_judge(tmp / "scripted"),
        "random (96-token rationale)": build_tiny_model(tmp / "random", seed=3, hidden_size=args.hidden,
                                                        num_layers=args.layers),
    }
    dialogues, _ = run_dialogues("bundled", args.n)
    items = [PairItem(d, "vs_base", "c", "b", "I'm so sorry, that sounds really hard.", "ok.") for d in dialogues]
    table = Table(title=f"HTTP judge throughput: transformers serve on CPU, {2 * args.n} verdicts")
    for col in ("server", "judge", "concurrency", "seconds", "verdicts/s", "speed-up"):
        table.add_column(col, justify="right")
    for server_label, extra in (("plain", ()), ("continuous batching", ("--continuous-batching",))):
        server = Serve(log=tmp / "serve.log", extra=extra).start()
        try:
            run_server(server, server_label, judges, items, table, tmp)
        finally:
            server.stop()
    Console(width=160).print(table)


def run_server(server, server_label, judges, items, table, tmp) -> None:  # type: ignore[no-untyped-def]
    from harness.core.settings import JudgeSettings
    from harness.judge.judge import open_judge

    n = len(items)
    for label, model in judges.items():
        warm = JudgeSettings(model=str(model), backend="openai", base_url=server.url, mode="generate",
                             cache_dir=str(tmp / "warmup"), concurrency=1)
        j = open_judge(warm)
        j.judge_pairs(items[:2])  # loads the model in the server
        j.backend.close()
        base = None
        for conc in (1, 4, 16):
            s = warm.model_copy(update={"cache_dir": str(tmp / f"{server_label[:5]}-{label[:6]}-{conc}"),
                                        "concurrency": conc, "timeout_s": 600.0})
            j = open_judge(s)
            t0 = time.perf_counter()
            js = j.judge_pairs(items)
            dt = time.perf_counter() - t0
            j.backend.close()
            assert len(js) == n and all(x.outcome is not None or "verdict" in str(x.unscored_reason) for x in js)
            base = base or dt
            table.add_row(server_label, label, str(conc), f"{dt:.2f}", f"{2 * n / dt:.1f}", f"{base / dt:.2f}×")
        j = open_judge(s)
        t0 = time.perf_counter()
        j.judge_pairs(items)
        dt_warm = time.perf_counter() - t0
        assert j.calls == 0
        table.add_row(server_label, label, "cache", f"{dt_warm:.3f}", f"{2 * n / dt_warm:.0f}", "—")


if __name__ == "__main__":
    main()
