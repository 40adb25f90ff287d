"""Board fixtures: three tiny candidates judged against one anchor by one judge, plus the control rows."""

from __future__ import annotations

from pathlib import Path

import pytest

N = 6


def eval_run(out: Path, candidate: Path, models: dict[str, Path], refs: dict[str, Path], cache: Path,
             **judge_kw) -> Path:
    from harness.core.settings import JudgeSettings
    from harness.evaluate.run import EvalConfig, run_eval
    from harness.generate.replies import ModelSpec

    judge = {"model": str(models["judge"]), "device": "cpu", "cache_dir": str(cache), "min_label_mass": 0.0,
             **judge_kw}
    run_eval(EvalConfig(candidate=ModelSpec(str(candidate), device="cpu"), judge=JudgeSettings(**judge),
                        output=out, references={"base": refs["base"]}, limit=N))
    return out


@pytest.fixture(scope="session")
def board_runs(tiny_models, small_refs, tmp_path_factory) -> dict[str, Path]:
    """Runs of three candidates (candidate, direct, an extra seed) and the protocol made from the first."""
    from harness.llm.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("board")
    cache = root / "cache"
    extra = build_tiny_model(root / "models" / "third", seed=11)
    runs = {
        "a": eval_run(root / "runs" / "a", tiny_models["candidate"], tiny_models, small_refs, cache),
        "b": eval_run(root / "runs" / "b", tiny_models["direct"], tiny_models, small_refs, cache),
        "c": eval_run(root / "runs" / "c", extra, tiny_models, small_refs, cache),
    }
    runs["cache"] = cache
    runs["root"] = root
    return runs
