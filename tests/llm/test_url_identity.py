"""A served model's base URL: its query string and user-info reach the server, and nothing else.

``--base-url http://host/v1?api_key=sk-…`` (a proxy that reads its key from the query) or Azure's
``?api-version=…`` must stay on every request (``/chat/completions`` and the ``/models`` probe), yet never be
written into an identity, a fingerprint, a run folder, the console or an error message. The servers here are
real loopback HTTP servers that record what they receive.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.core.errors import HarnessError
from harness.core.fingerprint import model_identity
from harness.core.settings import JudgeSettings
from harness.core.urls import api_url, chat_completions_url, public_url, redact
from harness.data.selection import run_dialogues
from harness.generate.replies import ModelSpec, default_decoding, generate, model_args
from harness.judge.judge import open_judge
from harness.llm.openai import OpenAIBackend
from harness.llm.reach import check_server, models_url
from harness.llm.tiny import SCRIPTED_ANSWER
from tests.llm.test_http_judge import pair_items
from tests.servers import free_port, serve_http

SECRET = "sk-secret123"
QUERY = f"api_key={SECRET}"


# -- helpers ---------------------------------------------------------------------------------------------------


class Recorder:
    """What a loopback OpenAI-compatible server received: (method, path with query, Authorization header)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.seen: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def paths(self, method: str) -> set[str]:
        return {path for m, path, _ in self.seen if m == method}


@contextmanager
def openai_server(recorder: Recorder) -> Iterator[str]:
    """A loopback server answering ``GET …/models`` and every chat completion with the scripted judge's answer."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _record(self) -> None:
            with recorder.lock:
                recorder.seen.append((self.command, self.path, self.headers.get("Authorization", "")))

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._record()
            self._send(200, {"object": "list", "data": [{"id": "served", "object": "model"}]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            self._record()
            if recorder.status != 200:
                self._send(recorder.status, {"error": {"message": "no such key"}})
                return
            self._send(200, {"id": "c", "object": "chat.completion", "model": body.get("model"),
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": SCRIPTED_ANSWER}}]})

    with serve_http(Handler) as url:
        yield url


def judge_settings(url: str, cache: Path, **kw: object) -> JudgeSettings:
    base = {"model": "judge-served", "backend": "openai", "base_url": url, "cache_dir": str(cache),
            "concurrency": 2, "timeout_s": 10.0, "max_retries": 1, "retry_backoff_s": 0.05}
    return JudgeSettings(**{**base, **kw})


# -- the helpers in harness.core.urls ----------------------------------------------------------------------------


def test_public_url_keeps_scheme_host_port_and_path_only():
    assert public_url("http://h:1/v1?api-version=2024-06-01") == "http://h:1/v1"
    assert public_url("https://user:pa%40ss@h.example:8443/v1#frag") == "https://h.example:8443/v1"
    assert public_url("http://u@[::1]:8000/v1/chat/completions?k=v") == "http://[::1]:8000/v1/chat/completions"
    assert public_url(" http://127.0.0.1:8000/v1/ ") == "http://127.0.0.1:8000/v1/"
    assert public_url("http://[::1") == "(malformed URL)"  # nothing of an unreadable URL is shown


def test_request_urls_keep_the_query_and_user_info():
    assert chat_completions_url("http://h:1/v1?api-version=X") == "http://h:1/v1/chat/completions?api-version=X"
    assert chat_completions_url("http://h:1/v1/?api-version=X") == "http://h:1/v1/chat/completions?api-version=X"
    assert chat_completions_url("http://h:1?api-version=X") == "http://h:1/v1/chat/completions?api-version=X"
    assert chat_completions_url("http://u:p@h:1/v1/chat/completions/?a=1#f") == "http://u:p@h:1/v1/chat/completions?a=1"
    assert models_url("http://h:1/v1/chat/completions?api-version=X") == "http://h:1/v1/models?api-version=X"
    assert models_url("http://[::1]:8000") == "http://[::1]:8000/v1/models"
    assert api_url("https://x/openai/deployments/d/chat/completions?v=2", "/models") == \
        "https://x/openai/deployments/d/models?v=2"
    # today's forms are unchanged
    assert chat_completions_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1/chat/completions"
    assert chat_completions_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    for bad in ("127.0.0.1:8000?api_key=" + SECRET, "http://[::1?api_key=" + SECRET):
        with pytest.raises(HarnessError, match="base URL") as err:
            chat_completions_url(bad)
        assert SECRET not in str(err.value)


def test_redact_cuts_the_query_and_user_info_out_of_a_message():
    url = f"http://bob:{SECRET}@h:1/v1?{QUERY}"
    text = f"404 for url: /v1/chat/completions?{QUERY}; URL('http://bob:{SECRET}@h:1/v1/models?{QUERY}')"
    assert SECRET not in redact(text, url)
    assert redact(text, url).endswith("URL('http://…@h:1/v1/models?…')")
    assert redact("nothing to hide", "http://h:1/v1") == "nothing to hide"


# -- identities -------------------------------------------------------------------------------------------------


def test_identity_and_fingerprint_ignore_query_and_user_info():
    plain = model_identity("m", backend="openai-chat", base_url="http://127.0.0.1:8000/v1")
    for url in (f"http://127.0.0.1:8000/v1?{QUERY}", "http://127.0.0.1:8000/v1/?api-version=2024-06-01#x",
                f"http://bob:{SECRET}@127.0.0.1:8000?{QUERY}", f"http://127.0.0.1:8000/v1/chat/completions?{QUERY}"):
        ident = model_identity("m", backend="openai-chat", base_url=url)
        assert ident == plain, url
        assert ident.base_url == "http://127.0.0.1:8000/v1"
        assert SECRET not in ident.model_dump_json()
    ipv6 = model_identity("m", backend="openai", base_url=f"http://[::1]:9000/v1?{QUERY}")
    assert ipv6.base_url == "http://[::1]:9000/v1"
    assert model_identity("m", backend="openai-chat", base_url="http://127.0.0.1:8001/v1").fingerprint != \
        plain.fingerprint  # the port still tells servers apart


def test_lm_eval_gets_the_full_url():
    spec = ModelSpec("m", backend="openai-chat", base_url="http://h:1/v1?api-version=X")
    assert model_args(spec, "cpu")["base_url"] == "http://h:1/v1/chat/completions?api-version=X"


# -- requests over real loopback servers -------------------------------------------------------------------------


def test_the_query_string_reaches_chat_completions_and_the_models_probe(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    recorder = Recorder()
    with openai_server(recorder) as root:
        base = f"{root}/v1?api-version=2024-06-01"
        check_server(base, option="--judge-base-url", model="judge-served")
        judge = open_judge(judge_settings(base, tmp_path))
        try:
            judgments = judge.judge_pairs(pair_items(2))
            fingerprint = judge.fingerprint
            stats = judge.backend.stats()
        finally:
            judge.client.close()
    assert recorder.paths("GET") == {"/v1/models?api-version=2024-06-01"}
    assert recorder.paths("POST") == {"/v1/chat/completions?api-version=2024-06-01"}
    assert all(j.outcome is not None for j in judgments)
    assert fingerprint.model.base_url == root + "/v1"
    assert stats["endpoint"] == root + "/v1/chat/completions"


def test_user_info_is_sent_as_basic_auth_and_not_with_a_key(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    recorder = Recorder()
    login = "Basic " + base64.b64encode(f"bob:{SECRET}".encode()).decode()
    with openai_server(recorder) as root:
        base = root.replace("http://", f"http://bob:{SECRET}@") + "/v1?api-version=X"
        check_server(base, option="--judge-base-url", model="judge-served")
        backend = OpenAIBackend("judge-served", base, max_retries=0)
        try:
            assert backend.supports_logprobs() is False
            assert SECRET not in json.dumps(backend.stats())
        finally:
            backend.close()
        monkeypatch.setenv("OPENAI_API_KEY", "sk-other")
        with pytest.raises(HarnessError, match="one or the other.*--judge-api-key-env") as err:
            OpenAIBackend("judge-served", base)
        assert SECRET not in str(err.value)
    assert recorder.seen == [("GET", "/v1/models?api-version=X", login),
                             ("POST", "/v1/chat/completions?api-version=X", login)]


def test_a_served_candidate_failing_names_no_secret(capfd, caplog):
    recorder = Recorder(status=401)
    dialogues, _ = run_dialogues("bundled", 1)
    with openai_server(recorder) as root:
        # concurrent requests: lm-eval's aiohttp client, whose errors (logged, then raised) print the request URL
        spec = ModelSpec("m", backend="openai-chat", batch_size=2, base_url=f"{root}/v1?{QUERY}")
        with pytest.raises(HarnessError, match="failed while generating") as err:
            generate(spec, dialogues, dataset="bundled", decoding=default_decoding(), system="candidate")
    printed = "".join(capfd.readouterr()) + caplog.text
    assert recorder.paths("POST") == {f"/v1/chat/completions?{QUERY}"}  # lm-eval asked with the query
    assert "ClientResponseError" in printed  # lm-eval's own error log line, with the URL…
    assert SECRET not in str(err.value) and SECRET not in printed  # …redacted
    assert f"the server at {root}/v1 failed" in str(err.value)


# -- a whole run ---------------------------------------------------------------------------------------------------


def test_no_secret_in_a_run_folder_or_on_the_console(tmp_path, capfd, caplog):
    """`empathy eval` with candidate, base reference and judge all behind `?api_key=sk-…`: requests carry it,
    no file written and no line printed does."""
    recorder = Recorder()
    out, cache, refs = tmp_path / "out", tmp_path / "cache", tmp_path / "refs"
    with openai_server(recorder) as root:
        url = f"{root}/v1?{QUERY}"
        code = main([
            "eval", "--model", "cand-served", "--model-backend", "openai-chat", "--base-url", url,
            "--base-model", "base-served", "--base-model-url", url, "--refs-dir", str(refs), "--limit", "3",
            "--judge", "judge-served", "--judge-backend", "openai", "--judge-base-url", url,
            "--judge-api-key-env", "EMPATHY_TEST_UNSET_KEY", "--output", str(out), "--cache-dir", str(cache),
        ])
    printed = "".join(capfd.readouterr()) + caplog.text
    assert code == 0, printed
    assert recorder.paths("GET") == {f"/v1/models?{QUERY}"}
    assert recorder.paths("POST") == {f"/v1/chat/completions?{QUERY}"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["systems"]["candidate"]["base_url"] == root + "/v1"
    assert manifest["judge"]["model"]["base_url"] == root + "/v1"
    assert manifest["judge"]["http"]["endpoint"] == root + "/v1/chat/completions"
    files = [p for folder in (out, cache, refs) for p in folder.rglob("*") if p.is_file()]
    assert any(p.name == "results.json" for p in files) and any(p.parent == refs for p in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in printed


def test_an_unreachable_server_error_names_no_secret(tmp_path, capfd):
    port = free_port()
    dead = f"http://127.0.0.1:{port}/v1?{QUERY}"
    with pytest.raises(HarnessError, match=f"no server answers at http://127.0.0.1:{port}/v1/models ") as err:
        check_server(dead, option="--judge-base-url", model="judge-served")
    assert SECRET not in str(err.value)
    judge = open_judge(judge_settings(dead, tmp_path))
    with pytest.raises(HarnessError, match="did not answer a probe request") as probe_err:
        judge.judge_pairs(pair_items(1))
    judge.backend.close()
    assert SECRET not in str(probe_err.value)
    code = main(["eval", "--model", "cand-served", "--model-backend", "openai-chat", "--base-url", dead,
                 "--base-model", "base-served", "--base-model-url", dead, "--judge", "judge-served", "--judge-backend",
                 "openai", "--judge-base-url", dead, "--output", str(tmp_path / "out")])
    printed = "".join(capfd.readouterr())
    assert code == 2 and "no server answers" in printed
    assert SECRET not in printed


def test_lm_eval_task_documents_carry_the_public_url_and_the_judge_still_gets_the_query(small_refs, tmp_path):
    """The lm-eval tasks write the judge's settings into every document (lm-eval logs them to disk per sample)."""
    from harness.lmeval import tasks

    recorder = Recorder()
    with openai_server(recorder) as url:
        md = {"judge": "served", "judge_backend": "openai", "judge_base_url": f"{url}/v1?{QUERY}",
              "cache_dir": str(tmp_path), "reference_base": str(small_refs["base"]), "limit": 2}
        tasks.close_judges()
        try:
            docs = list(tasks.vs_base_docs(**md)["test"])
            out = tasks.pairwise_filter([["I'm sorry."]] * len(docs), docs)
        finally:
            tasks.close_judges()
    assert len(out) == len(docs) == 2 and all(json.loads(o)["comparison"] == "vs_base" for o in out)
    assert not any(SECRET in json.dumps(d) for d in docs)  # what lm-eval would write
    assert json.loads(docs[0]["run"])["judge"]["base_url"] == f"{url}/v1"
    assert f"/v1/chat/completions?{QUERY}" in recorder.paths("POST")  # the judge's requests keep the query


def test_lm_eval_log_lines_lose_the_query_and_the_api_key():
    """lm-eval's client logs a failed request with its URL and headers (the Authorization header holds the key)."""
    from harness.generate.replies import _Redacted

    line = (f"Exception:ClientResponseError(url='http://h:1/v1/chat/completions?{QUERY}', "
            "request_info={'Authorization': 'Bearer sk-live-abc', 'Content-Type': 'application/json'})")
    clean = _Redacted(f"http://h:1/v1?{QUERY}").text(line)
    assert SECRET not in clean and "sk-live-abc" not in clean
    assert "http://h:1/v1/chat/completions?…" in clean and "'Bearer …'" in clean


def test_redact_also_catches_a_query_a_client_re_encoded():
    """aiohttp and requests re-encode a query (' ' → '+' or '%20', '/' → '%2F'): the exact text is not in the error."""
    url = "http://bob:pa%20ss@h:1/v1?api_key=s3cr3t/x y"
    for text in ("url='http://h:1/v1/chat/completions?api_key=s3cr3t/x+y' failed",
                 "http://h:1/v1/chat/completions?api_key=s3cr3t%2Fx%20y) failed",
                 "http://bob:pa%2520ss@h:1/v1/models failed"):
        clean = redact(text, url)
        assert "s3cr3t" not in clean and "pa%" not in clean and "failed" in clean, clean
    assert redact("see http://other.example/?q=1", url) == "see http://other.example/?q=1"  # other URLs untouched
