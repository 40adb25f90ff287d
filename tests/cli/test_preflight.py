"""First-run mistakes: one clear line, exit 2, no traceback, within 3 s, before any model is loaded or run."""

from __future__ import annotations

import time

import pytest

from harness.cli.main import main


@pytest.fixture
def base_args(tiny_models, small_refs, tmp_path):
    return ["eval", "--model", str(tiny_models["candidate"]), "--reference", f"base={small_refs['base']}",
            "--judge", str(tiny_models["judge"]), "--limit", "2", "--output", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache")]


@pytest.mark.parametrize(("extra", "message"), [
    (["--model", "EMPTY"], "exists but holds no model"),
    (["--judge", "EMPTY"], "exists but holds no model"),
    (["--model", "PARENT"], "exists but holds no model"),
    (["--model", "/nonexistent/model"], "does not exist"),
    (["--judge", "Qwen/Qwen2.5-7B-Instruct"], "cannot resolve the commit of Hub model"),
    (["--device", "cuda"], "sees no CUDA GPU"),
    (["--device", "gpu"], "unknown device 'gpu'"),
    (["--judge-device", "cuda"], "sees no CUDA GPU"),
    (["--output", "FILE"], "is a file"),
])
def test_first_run_mistakes_fail_fast_and_clearly(base_args, tiny_models, tmp_path, capsys, extra, message):
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "FILE").write_text("x")
    subs = {"EMPTY": str(tmp_path / "EMPTY"), "FILE": str(tmp_path / "FILE"),
            "PARENT": str(tiny_models["candidate"].parent)}
    args = [*base_args, *(subs.get(e, e) for e in extra)]
    start = time.perf_counter()
    code = main(args)
    took = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err  # one line, not a log
    assert took < 3.0, took
    assert not (tmp_path / "out" / "generations.jsonl").exists()


def test_an_unreachable_hub_fails_within_3_s(base_args, tmp_path, capsys, monkeypatch):
    """HF_HUB_OFFLINE unset and a Hub that never answers: one lookup with a deadline, then the one-line error."""
    import socket

    import huggingface_hub.constants

    import harness.core.hub as hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("EMPATHY_HUB_TIMEOUT_S", raising=False)
    monkeypatch.setattr(hub, "_UNREACHABLE", {})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-empty"))
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        start = time.perf_counter()
        code = main([*base_args, "--judge", "Qwen/Qwen2.5-7B-Instruct"])
        took = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2 and "did not answer within 2 s" in err and "--revision" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert took < 3.0, took


def test_excel_csv_with_a_byte_order_mark_is_read(tmp_path):
    from harness.data.sources import WELIVITA_SOURCES, read_welivita_rows

    cols = ["dialog_id", "emotion", "situation", "speaker_uttr",
            *(f"response_{s}" for s in WELIVITA_SOURCES), *(f"rating_{s}" for s in WELIVITA_SOURCES)]
    (tmp_path / "r.csv").write_bytes("\ufeff".encode() + (",".join(cols) + "\n" + ",".join(["x"] * len(cols)) +
                                                           "\n").encode())
    assert read_welivita_rows(tmp_path / "r.csv")[0]["dialog_id"] == "x"


def test_empty_distill_dataset_says_so(tmp_path, capsys):
    (tmp_path / "empty.jsonl").write_text("")
    code = main(["distill", "--strategy", "direct", "--dataset", str(tmp_path / "empty.jsonl"), "--teacher",
                 str(tmp_path), "--output", str(tmp_path / "out")])
    assert code == 2 and "holds no dialogues" in capsys.readouterr().err


def test_train_checks_the_dpo_file_before_sft(tiny_models, tmp_path, capsys):
    import json

    (tmp_path / "sft.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                                 {"role": "assistant", "content": "hello"}]}) + "\n")
    (tmp_path / "dpo.jsonl").write_text(json.dumps({"prompt": "p"}) + "\n")
    start = time.perf_counter()
    code = main(["train", "--base", str(tiny_models["base"]), "--sft", str(tmp_path / "sft.jsonl"), "--dpo",
                 str(tmp_path / "dpo.jsonl"), "--device", "cpu", "--output", str(tmp_path / "out")])
    assert code == 2 and "expected keys prompt, chosen, rejected" in capsys.readouterr().err
    assert time.perf_counter() - start < 3.0 and not (tmp_path / "out" / "sft").exists()
