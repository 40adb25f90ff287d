"""Offline with a Hub model in the local cache: the advice the error gives works, at once and without the Hub."""

from __future__ import annotations

import json
import re
import shutil
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import huggingface_hub.constants
import pytest

import harness.core.hub as hub
from harness.cli.main import main
from tests.servers import serve_http

SHA = "0123456789abcdef0123456789abcdef01234567"


class _Recorder(BaseHTTPRequestHandler):
    """A 'Hub' that knows nothing (404 at once) and records every request: each would be minutes of retries on a
    Hub that does not answer."""

    requests: list[str] = []

    def _answer(self) -> None:
        type(self).requests.append(f"{self.command} {self.path}")
        self.send_response(404)
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recording_hub() -> Iterator[tuple[str, list[str]]]:
    _Recorder.requests = []
    with serve_http(_Recorder) as url:
        yield url, _Recorder.requests


@pytest.fixture
def cached_hub_model(tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """org/tiny at commit SHA in a fresh Hugging Face cache (downloaded at that commit: no refs/main), offline mode
    off — the state of a laptop that fetched the model once and is now without a network."""
    snapshot = tmp_path / "hf" / "models--org--tiny" / "snapshots" / SHA
    shutil.copytree(tiny_models["candidate"], snapshot)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "_UNREACHABLE", {})
    return snapshot


def test_the_pin_revision_advice_works_offline_without_asking_the_hub(cached_hub_model, recording_hub,
                                                                      small_refs, tmp_path, monkeypatch, capsys):
    with socket.socket() as s:  # a Hub that cannot be reached: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", dead)
    build = ["refs", "build", "--model", "org/tiny", "--name", "base", "--limit", "2", "--device", "cpu"]
    assert main([*build, "--output", str(tmp_path / "a.json")]) == 2
    err = capsys.readouterr().err
    advice = re.search(r"pin one with --revision ([0-9a-f]{40}) \(it loads from the cache, offline\)", err)
    assert advice and advice.group(1) == SHA, err

    # follow the advice; every request the loaders would make goes to a Hub that records it
    endpoint, requests = recording_hub
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", endpoint)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    assert main([*build, "--revision", advice.group(1), "--output", str(tmp_path / "b.json")]) == 0
    assert requests == []  # loaded from the cached snapshot: nothing to retry when the Hub is away
    manifest = json.loads((tmp_path / "b.json").read_text())["manifest"]
    assert manifest["model"] == "org/tiny" and manifest["model_identity"]["revision"] == SHA

    # the judge (a different loader) and the candidate, both pinned Hub ids: an evaluation without the Hub
    assert main(["eval", "--model", "org/tiny", "--revision", SHA, "--reference", f"base={small_refs['base']}",
                 "--judge", "org/tiny", "--judge-revision", SHA, "--judge-device", "cpu", "--device", "cpu",
                 "--judge-min-label-mass", "0", "--limit", "2", "--cache-dir", str(tmp_path / "cache"), "--output",
                 str(tmp_path / "run")]) == 0
    assert requests == []
    systems = json.loads((tmp_path / "run" / "results.json").read_text())["provenance"]["systems"]
    assert systems["candidate"]["model"]["kind"] == "hub" and systems["candidate"]["model"]["revision"] == SHA
