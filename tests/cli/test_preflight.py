"""First-run mistakes: one clear line, exit 2, no traceback, within 3 s, before any model is loaded or run."""

from __future__ import annotations

import re
import time

import pytest

from harness.cli.main import main
from tests.servers import silent_endpoint


@pytest.fixture
def base_args(tiny_models, small_refs, tmp_path):
    return ["eval", "--model", str(tiny_models["candidate"]), "--reference", f"base={small_refs['base']}",
            "--judge", str(tiny_models["judge"]), "--limit", "2", "--output", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache")]


@pytest.mark.parametrize(("extra", "message"), [
    (["--model", "EMPTY"], "--model EMPTY exists but holds no model"),
    (["--judge", "EMPTY"], "--judge EMPTY exists but holds no model"),  # names the option, not --model
    (["--model", "PARENT"], "--model PARENT exists but holds no model (no config.json or .gguf) (models inside: "),
    (["--model", "/nonexistent/model"], "--model /nonexistent/model does not exist"),
    (["--judge", "Qwen/Qwen2.5-7B-Instruct"], "cannot resolve the commit of Hub model"),
    (["--device", "cuda"], "sees no CUDA GPU"),
    (["--device", "gpu"], "unknown device 'gpu'"),
    (["--judge-device", "cuda"], "sees no CUDA GPU"),
    (["--output", "FILE"], "--output FILE is a file"),
    (["--output", "FILE/run"], "--output FILE/run: FILE is a file, not a folder, so nothing can be made under it"),
    (["--output", "/proc/empathy-run"], "--output /proc/empathy-run: cannot write in /proc"),
    (["--dataset", "EMPTY.jsonl"], "--dataset EMPTY.jsonl holds no dialogues"),
    (["--revision", "v2"], "--revision v2: --model CANDIDATE is a local folder, which has no revisions"),
    (["--judge-revision", "v2"], "--judge-revision v2: --judge JUDGE is a local folder, which has no revisions"),
    (["--model", "m", "--model-backend", "openai-chat", "--base-url", "DEAD"],
     "--base-url DEAD: no server answers at DEAD/models (Connection refused)"),
    (["--model", "m", "--model-backend", "openai-chat", "--base-url", "DEAD", "--revision", "v2"],
     "--revision v2: --model m is served, and its server decides which weights answer — drop --revision"),
    (["--judge", "j", "--judge-backend", "openai", "--judge-base-url", "DEAD", "--judge-mode", "generate"],
     "--judge-base-url DEAD: no server answers at DEAD/models (Connection refused)"),
    (["--base-model", "m", "--base-model-url", "DEAD"],
     "--base-model-url DEAD: no server answers at DEAD/models (Connection refused)"),
])
def test_first_run_mistakes_fail_fast_and_clearly(base_args, tiny_models, tmp_path, capsys, extra, message):
    """Each is refused before any work: one line naming the option and the value, and no output folder made."""
    from tests.servers import free_port

    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "EMPTY.jsonl").write_text("\n")
    subs = {"EMPTY": str(tmp_path / "EMPTY"), "FILE": str(tmp_path / "FILE"),
            "PARENT": str(tiny_models["candidate"].parent), "CANDIDATE": str(tiny_models["candidate"]),
            "JUDGE": str(tiny_models["judge"]), "EMPTY.jsonl": str(tmp_path / "EMPTY.jsonl"),
            "DEAD": f"http://127.0.0.1:{free_port()}/v1"}  # nothing listens there: refused at once
    def sub(text: str) -> str:
        return re.sub(r"EMPTY\.jsonl|EMPTY|FILE|PARENT|CANDIDATE|JUDGE|DEAD", lambda m: subs[m.group()], text)

    args, message = [*base_args, *map(sub, extra)], sub(message)
    start = time.perf_counter()
    code = main(args)
    took = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err  # one line, not a log
    assert took < 3.0, took
    assert not (tmp_path / "out").exists()  # not even an empty folder is left behind


def test_an_unreachable_hub_fails_within_3_s(base_args, tmp_path, capsys, monkeypatch):
    """HF_HUB_OFFLINE unset and a Hub that never answers: one lookup with a deadline, then the one-line error."""

    import huggingface_hub.constants

    import harness.core.hub as hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("EMPATHY_HUB_TIMEOUT_S", raising=False)
    monkeypatch.setattr(hub, "_UNREACHABLE", {})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-empty"))
    with silent_endpoint() as url:  # accepts connections, never answers
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", url)
        start = time.perf_counter()
        code = main([*base_args, "--judge", "Qwen/Qwen2.5-7B-Instruct"])
        took = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2 and "did not answer within 2 s" in err, err
    # no copy in the cache: the fix offered is one that works from here, not a --revision that would still download
    assert "connect to the Hub to download it" in err and "--revision" not in err, err
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
