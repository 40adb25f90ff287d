import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import huggingface_hub.constants
import pytest

import harness.core.fingerprint as fp
import harness.core.hub as hub
from harness.core.errors import HarnessError
from harness.core.fingerprint import MEMO_FILE, ModelIdentity, model_identity, short_hash
from harness.llm.tiny import build_tiny_model
from tests.servers import serve_http, silent_endpoint

SHA_MAIN = "a" * 40
SHA_V1 = "b" * 40
OLD_NS = 1_600_000_000 * 10**9  # 2020: far older than the memo's "written just now" window


def _age(folder: Path) -> None:
    """Give every file an old mtime, as a model saved long ago has (the memo skips files written just now)."""
    for p in folder.iterdir():
        if p.is_file():
            os.utime(p, ns=(OLD_NS, OLD_NS))


@pytest.fixture(scope="module")
def built_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("fp") / "model", seed=0)


@pytest.fixture
def model_dir(built_model: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model, free to modify."""
    out = tmp_path / "model"
    shutil.copytree(built_model, out)
    _age(out)
    return out


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the files the module hashes (its own hashing function, wrapped)."""
    calls: list[str] = []
    real = fp._file_sha256

    def counting(path: Path) -> str:
        calls.append(path.name)
        return real(path)

    monkeypatch.setattr(fp, "_file_sha256", counting)
    return calls


def test_model_identity_is_the_record_type():
    from harness.core.records import ModelIdentity as RecordIdentity

    assert ModelIdentity is RecordIdentity


def test_short_hash_is_16_hex_and_keeps_parts_apart():
    h = short_hash("ab", "c")
    assert len(h) == 16 and int(h, 16) >= 0
    assert h == short_hash("ab", "c")
    assert h != short_hash("a", "bc")


# -- local folders ------------------------------------------------------------------------------------------


def test_local_identity_is_stable_and_content_based(model_dir: Path, cache: Path, tmp_path: Path):
    ident = model_identity(str(model_dir), cache_dir=cache)
    assert isinstance(ident, ModelIdentity)
    assert (ident.kind, ident.name, ident.revision, ident.base_url) == ("local", str(model_dir), None, None)
    assert len(ident.fingerprint) == 16
    assert model_identity(str(model_dir), cache_dir=cache) == ident
    # The same bytes in another folder are the same model.
    copy = shutil.copytree(model_dir, tmp_path / "elsewhere")
    assert model_identity(str(copy), cache_dir=cache).fingerprint == ident.fingerprint


def test_new_weights_saved_in_place_change_the_fingerprint(model_dir: Path, cache: Path):
    before = model_identity(str(model_dir), cache_dir=cache).fingerprint
    build_tiny_model(model_dir, seed=1)
    assert model_identity(str(model_dir), cache_dir=cache).fingerprint != before


def test_touch_keeps_the_fingerprint(model_dir: Path, cache: Path):
    before = model_identity(str(model_dir), cache_dir=cache).fingerprint
    for p in model_dir.iterdir():
        p.touch()
    assert model_identity(str(model_dir), cache_dir=cache).fingerprint == before


def test_non_model_files_keep_the_fingerprint(model_dir: Path, cache: Path):
    before = model_identity(str(model_dir), cache_dir=cache).fingerprint
    (model_dir / "README.md").write_text("# my model\n")
    (model_dir / "trainer_log.jsonl").write_text('{"loss": 1.0}\n')
    (model_dir / "training_args.bin").write_bytes(b"trainer state")
    shutil.copytree(model_dir, model_dir / "checkpoints" / "checkpoint-10", ignore=shutil.ignore_patterns("checkpoints"))
    (model_dir / "checkpoints" / "checkpoint-10" / "model.safetensors").write_bytes(b"other weights")
    assert model_identity(str(model_dir), cache_dir=cache).fingerprint == before


def test_tokenizer_config_change_changes_the_fingerprint(model_dir: Path, cache: Path):
    before = model_identity(str(model_dir), cache_dir=cache).fingerprint
    path = model_dir / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["model_max_length"] = 77
    path.write_text(json.dumps(config))
    assert model_identity(str(model_dir), cache_dir=cache).fingerprint != before


def test_gguf_folder_is_a_model(tmp_path: Path, cache: Path):
    folder = tmp_path / "gguf"
    folder.mkdir()
    (folder / "model-q4.gguf").write_bytes(b"GGUF" + bytes(100))
    first = model_identity(str(folder), cache_dir=cache)
    (folder / "model-q4.gguf").write_bytes(b"GGUF" + bytes(99) + b"\x01")
    assert first.kind == "local"
    assert model_identity(str(folder), cache_dir=cache).fingerprint != first.fingerprint


def test_tilde_path_is_expanded(model_dir: Path, cache: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", str(model_dir.parent))
    ident = model_identity("~/model", cache_dir=cache)
    assert ident.kind == "local" and ident.name == "~/model"
    assert ident.fingerprint == model_identity(str(model_dir), cache_dir=cache).fingerprint


# -- the memo -----------------------------------------------------------------------------------------------


def test_memo_skips_unchanged_files_and_rehashes_changed_ones(model_dir: Path, cache: Path, hash_calls: list[str]):
    first = model_identity(str(model_dir), cache_dir=cache)
    assert "model.safetensors" in hash_calls and "config.json" in hash_calls
    memo = json.loads((cache / MEMO_FILE).read_text())
    weights_key = str((model_dir / "model.safetensors").resolve())
    assert memo["files"][weights_key]["size"] == (model_dir / "model.safetensors").stat().st_size

    hash_calls.clear()
    assert model_identity(str(model_dir), cache_dir=cache) == first
    assert hash_calls == []  # no file read again

    # Same size, new bytes and a new (old-enough) mtime: only that file is hashed again.
    weights = model_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(OLD_NS + 10**9, OLD_NS + 10**9))
    second = model_identity(str(model_dir), cache_dir=cache)
    assert hash_calls == ["model.safetensors"]
    assert second.fingerprint != first.fingerprint


def test_memo_defaults_to_the_harness_cache(model_dir: Path, tmp_path: Path):
    # tests/conftest.py points EMPATHY_HARNESS_CACHE at tmp_path / "harness-cache".
    model_identity(str(model_dir))
    assert (tmp_path / "harness-cache" / MEMO_FILE).is_file()


def test_files_written_just_now_are_not_memoised(model_dir: Path, cache: Path, hash_calls: list[str]):
    # A file rewritten within the same timestamp tick with the same size would look unchanged; files
    # younger than a couple of seconds are therefore hashed every time.
    (model_dir / "config.json").touch()
    model_identity(str(model_dir), cache_dir=cache)
    hash_calls.clear()
    model_identity(str(model_dir), cache_dir=cache)
    assert hash_calls == ["config.json"]


def test_corrupt_memo_is_ignored_and_rewritten(model_dir: Path, cache: Path, hash_calls: list[str]):
    cache.mkdir()
    (cache / MEMO_FILE).write_text("{not json")
    ident = model_identity(str(model_dir), cache_dir=cache)
    assert ident.fingerprint == model_identity(str(model_dir), cache_dir=cache / "other").fingerprint
    assert json.loads((cache / MEMO_FILE).read_text())["version"] == 1

    (cache / MEMO_FILE).write_text(json.dumps({"version": 1, "files": {"x": {"size": "big"}}}))
    hash_calls.clear()
    assert model_identity(str(model_dir), cache_dir=cache) == ident
    assert "model.safetensors" in hash_calls


# -- local errors -------------------------------------------------------------------------------------------


def test_empty_folder_is_refused(tmp_path: Path, cache: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HarnessError, match=r"empty exists but holds no model \(no config.json or .gguf\)"):
        model_identity(str(empty), cache_dir=cache)


def test_parent_folder_is_refused_and_names_the_models_inside(model_dir: Path, cache: Path):
    with pytest.raises(HarnessError) as err:
        model_identity(str(model_dir.parent), cache_dir=cache)
    msg = str(err.value)
    assert str(model_dir.parent) in msg and "holds no model" in msg
    assert "models inside: model" in msg and "give the model folder itself" in msg


def test_file_is_not_a_model_folder(model_dir: Path, cache: Path):
    with pytest.raises(HarnessError, match="is a file, not a model folder"):
        model_identity(str(model_dir / "config.json"), cache_dir=cache)


@pytest.mark.parametrize("path", ["/no/such/model", "./no-such-model", "../no-such-model", "~/no-such-model", "a/b/c"])
def test_missing_path_is_refused_without_a_hub_lookup(path: str, cache: Path):
    with pytest.raises(HarnessError, match=rf"model folder {path} does not exist"):
        model_identity(path, cache_dir=cache)


def test_a_revision_for_a_local_folder_is_refused(model_dir: Path, cache: Path):
    """A folder has no revisions: recording one (as refs build did) would claim a provenance it does not have."""
    with pytest.raises(HarnessError, match=r"revision 'v2' given for the local model folder .*drop the revision"):
        model_identity(str(model_dir), revision="v2", cache_dir=cache)


def test_path_errors_name_the_option_that_gave_the_path(model_dir: Path, tmp_path: Path):
    (tmp_path / "empty").mkdir()
    assert fp.local_model_folder(str(model_dir), option="--judge") == model_dir
    assert fp.local_model_folder("org/name", option="--judge") is None  # a Hub id: not a path
    with pytest.raises(HarnessError, match=rf"^--judge {tmp_path / 'empty'} exists but holds no model"):
        fp.local_model_folder(str(tmp_path / "empty"), option="--judge")
    with pytest.raises(HarnessError, match=r"^--base-model ./nope does not exist"):
        fp.local_model_folder("./nope", option="--base-model")


@pytest.mark.parametrize("model", ["foo--bar", "has space/model", "org/name.git", "-org/name", "org/name.", "a..b"])
def test_malformed_hub_id_is_refused(model: str):
    with pytest.raises(HarnessError, match="neither an existing local folder nor a valid Hub id"):
        model_identity(model)


def test_empty_model_is_refused():
    with pytest.raises(HarnessError, match="no model given"):
        model_identity("  ")


# -- hub ----------------------------------------------------------------------------------------------------


class _HubHandler(BaseHTTPRequestHandler):
    """Answers model_info like the Hub: main → SHA_MAIN, revision v1 → SHA_V1, anything else 404."""

    paths: list[str] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        path = self.path.split("?")[0]
        answers = {"/api/models/org/tiny": SHA_MAIN, "/api/models/org/tiny/revision/v1": SHA_V1}
        if path in answers:
            body = json.dumps({"id": "org/tiny", "sha": answers[path]}).encode()
            self.send_response(200)
        else:
            body = json.dumps({"error": "Repository not found"}).encode()
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hub_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback 'Hub' on 127.0.0.1; yields (endpoint, paths requested)."""
    _HubHandler.paths = []
    with serve_http(_HubHandler) as url:
        yield url, _HubHandler.paths


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "hf-hub"
    root.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(root))
    return root


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline mode off, both as huggingface_hub read it at import and in the environment."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "_UNREACHABLE", {})  # what earlier tests learnt about their endpoints


def _cache_model(root: Path, model: str, refs: dict[str, str], snapshots: list[str], *, complete: bool = True
                 ) -> Path:
    """A model in a Hugging Face cache layout; ``complete`` snapshots hold a config, a tokenizer and weights."""
    folder = root / ("models--" + model.replace("/", "--"))
    for ref, sha in refs.items():
        (folder / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (folder / "refs" / ref).write_text(sha)
    for sha in snapshots:
        (folder / "snapshots" / sha).mkdir(parents=True)
        for name in ("config.json", "tokenizer.json", "model.safetensors") if complete else ():
            (folder / "snapshots" / sha / name).write_text("{}")
    return folder


def test_commit_revision_is_used_without_network(online: None, hub_server: tuple[str, list[str]], hf_cache: Path):
    endpoint, paths = hub_server
    sha = "0123456789abcdef0123456789abcdef01234567"
    ident = model_identity("org/tiny", revision=sha.upper(), endpoint=endpoint)
    assert (ident.kind, ident.name, ident.revision, ident.base_url) == ("hub", "org/tiny", sha, None)
    assert ident.fingerprint == short_hash("hub", "org/tiny", sha)
    assert paths == []


def test_hub_commit_resolved_through_the_hub_api(online: None, hub_server: tuple[str, list[str]], hf_cache: Path):
    endpoint, paths = hub_server
    main = model_identity("org/tiny", endpoint=endpoint)
    v1 = model_identity("org/tiny", revision="v1", endpoint=endpoint)
    assert (main.revision, v1.revision) == (SHA_MAIN, SHA_V1)
    assert main.fingerprint != v1.fingerprint
    assert [p.split("?")[0] for p in paths] == ["/api/models/org/tiny", "/api/models/org/tiny/revision/v1"]


def test_hub_error_falls_back_to_the_cache(online: None, hub_server: tuple[str, list[str]], hf_cache: Path):
    endpoint, paths = hub_server
    _cache_model(hf_cache, "org/private", {"main": SHA_V1}, [SHA_V1])
    assert model_identity("org/private", endpoint=endpoint).revision == SHA_V1
    with pytest.raises(HarnessError, match=r"the Hub lookup failed: RepositoryNotFoundError.*check the model id"):
        model_identity("org/unknown", endpoint=endpoint)
    assert len(paths) == 2


def test_unreachable_hub_falls_back_to_the_cache(online: None, hf_cache: Path, capsys: pytest.CaptureFixture):
    _cache_model(hf_cache, "org/tiny", {"main": SHA_MAIN}, [SHA_MAIN])
    with socket.socket() as s:  # a loopback port that nothing listens on: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert model_identity("org/tiny", endpoint=f"http://127.0.0.1:{port}").revision == SHA_MAIN
    err = capsys.readouterr().err  # the fallback is said, with the commit used
    assert "Connection refused" in err and f"org/tiny at {SHA_MAIN[:12]} from the local Hugging Face cache" in err


def test_unreachable_hub_and_a_cached_commit_without_its_files_fail_at_once(online: None, hf_cache: Path):
    """refs/main names a commit whose files were never downloaded: loading would retry the dead Hub for minutes."""
    _cache_model(hf_cache, "org/tiny", {"main": SHA_MAIN}, [SHA_MAIN], complete=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    with pytest.raises(HarnessError) as err:
        model_identity("org/tiny", endpoint=f"http://127.0.0.1:{port}")
    assert time.perf_counter() - start < 3.0
    msg = str(err.value)
    assert f"names commit {SHA_MAIN} without holding its files" in msg and "connect to the Hub once" in msg


def test_a_commit_held_in_full_loads_from_its_snapshot_folder(hf_cache: Path, model_dir: Path):
    """load_source: the cached snapshot folder of a complete commit (loading it needs no network), else as given."""
    folder = _cache_model(hf_cache, "org/tiny", {}, [SHA_V1], complete=False)
    shutil.copytree(model_dir, folder / "snapshots" / SHA_MAIN)
    snapshot = folder / "snapshots" / SHA_MAIN
    assert hub.local_snapshot("org/tiny", SHA_MAIN.upper()) == snapshot
    assert hub.load_source("org/tiny", SHA_MAIN) == (str(snapshot), None)
    assert hub.load_source("org/tiny", SHA_V1) == ("org/tiny", SHA_V1)  # incomplete: the Hub id, as given
    assert hub.load_source("org/tiny", "main") == ("org/tiny", "main")  # a branch may move: never from a folder
    assert hub.load_source(str(model_dir), None) == (str(model_dir), None)
    (snapshot / "model.safetensors").unlink()  # weights gone: not complete any more
    assert hub.local_snapshot("org/tiny", SHA_MAIN) is None


@pytest.fixture
def silent_hub() -> Iterator[str]:
    """A loopback port that accepts connections and never answers (a firewall that drops, a hung proxy)."""
    with silent_endpoint() as url:
        yield url


def test_silent_hub_is_given_up_at_the_deadline_and_not_asked_again(
        online: None, silent_hub: str, hf_cache: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EMPATHY_HUB_TIMEOUT_S", "0.5")
    _cache_model(hf_cache, "org/tiny", {"main": SHA_MAIN}, [SHA_MAIN])
    _cache_model(hf_cache, "org/other", {"main": SHA_V1}, [SHA_V1])
    start = time.perf_counter()
    assert model_identity("org/tiny", endpoint=silent_hub).revision == SHA_MAIN
    first = time.perf_counter() - start
    assert model_identity("org/other", endpoint=silent_hub).revision == SHA_V1
    with pytest.raises(HarnessError, match=r"did not answer within 0\.5 s.*EMPATHY_HUB_TIMEOUT_S"):
        model_identity("org/uncached", endpoint=silent_hub)
    took = time.perf_counter() - start
    assert 0.45 < first < 1.5, first  # one deadline, not the socket's 10 s or a retry storm
    assert took < first + 0.5, (first, took)  # the endpoint is not asked again in this process


@pytest.mark.parametrize("value", ["soon", "0", "-1"])
def test_bad_hub_timeout_is_refused(online: None, silent_hub: str, monkeypatch: pytest.MonkeyPatch, value: str):
    monkeypatch.setenv("EMPATHY_HUB_TIMEOUT_S", value)
    with pytest.raises(HarnessError, match="EMPATHY_HUB_TIMEOUT_S"):
        model_identity("org/tiny", endpoint=silent_hub)


def test_offline_resolves_from_the_local_cache(hf_cache: Path, hub_server: tuple[str, list[str]]):
    endpoint, paths = hub_server
    sha_pr = "c" * 40
    _cache_model(hf_cache, "org/tiny", {"main": SHA_MAIN + "\n", "v1": SHA_V1, "pr/1": sha_pr}, [SHA_MAIN, sha_pr])
    _cache_model(hf_cache, "solo", {"main": SHA_V1}, [])
    assert model_identity("org/tiny", endpoint=endpoint).revision == SHA_MAIN
    assert model_identity("org/tiny", revision="v1", endpoint=endpoint).revision == SHA_V1
    assert model_identity("org/tiny", revision="pr/1").revision == sha_pr
    assert model_identity("org/tiny", revision="ccccccc").revision == sha_pr  # short commit → snapshot folder
    assert model_identity("solo").revision == SHA_V1
    assert paths == []  # offline (tests/conftest.py sets HF_HUB_OFFLINE=1): the server is never asked


def test_offline_and_not_cached_is_refused(hf_cache: Path):
    with pytest.raises(HarnessError) as err:
        model_identity("Qwen/Qwen2.5-0.5B")
    msg = str(err.value)
    assert "cannot resolve the commit of Hub model 'Qwen/Qwen2.5-0.5B' (offline" in msg
    # no copy to pin: pinning --revision would only lead into download retries, so it is not offered
    assert "--revision" not in msg
    assert msg.endswith("unset HF_HUB_OFFLINE and connect once to download it, or give a local model folder")

    _cache_model(hf_cache, "org/tiny", {"main": SHA_MAIN}, [SHA_MAIN])
    _cache_model(hf_cache, "org/tiny", {}, [SHA_V1], complete=False)  # a tokenizer-only download, say
    with pytest.raises(HarnessError) as err:
        model_identity("org/tiny", revision="dev")
    msg = str(err.value)
    assert "at revision 'dev'" in msg and f"complete snapshots there: {SHA_MAIN})" in msg
    assert f"pin one with --revision {SHA_MAIN} (it loads from the cache, offline)" in msg and SHA_V1 not in msg


def test_offline_env_var_wins_over_the_imported_constant(
    monkeypatch: pytest.MonkeyPatch, hub_server: tuple[str, list[str]], hf_cache: Path
):
    endpoint, paths = hub_server
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "true")
    with pytest.raises(HarnessError, match=r"\(offline, and not in the local Hugging Face cache"):
        model_identity("org/tiny", endpoint=endpoint)
    assert paths == []


# -- served -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000",
        "http://127.0.0.1:8000/",
        "http://127.0.0.1:8000/v1",
        " http://127.0.0.1:8000/v1/ ",
        "http://127.0.0.1:8000/v1/chat/completions",
        "HTTP://127.0.0.1:8000/v1",
        "http://user:secret@127.0.0.1:8000/v1",
    ],
)
def test_served_url_spellings_give_one_identity(url: str):
    ident = model_identity("tiny", backend="openai-chat", base_url=url)
    assert (ident.kind, ident.name, ident.revision) == ("served", "tiny", None)
    assert ident.base_url == "http://127.0.0.1:8000/v1"
    assert ident == model_identity("tiny", backend="local-chat-completions", base_url="http://127.0.0.1:8000")


def test_served_fingerprint_follows_server_and_model_name():
    base = model_identity("tiny", backend="openai-chat", base_url="http://127.0.0.1:8000/v1").fingerprint
    other_port = model_identity("tiny", backend="openai-chat", base_url="http://127.0.0.1:8001/v1").fingerprint
    other_name = model_identity("tiny-2", backend="openai-chat", base_url="http://127.0.0.1:8000/v1").fingerprint
    assert len({base, other_port, other_name}) == 3


def test_served_default_port_and_openai_default_url():
    ident = model_identity("gpt-4o-mini", backend="openai")
    assert ident.base_url == "https://api.openai.com/v1"
    assert ident == model_identity("gpt-4o-mini", backend="openai", base_url="https://API.openai.com:443/v1/")


def test_served_name_is_not_a_path_or_hub_id(model_dir: Path):
    # A served name is never looked up on disk or on the Hub, even when it looks like one.
    ident = model_identity(str(model_dir), backend="openai-chat", base_url="http://127.0.0.1:8000")
    assert ident.kind == "served" and ident.name == str(model_dir)


def test_served_backend_without_url_is_refused():
    with pytest.raises(HarnessError, match=r"backend 'openai-chat' .* needs its base URL: give e.g. --base-url"):
        model_identity("tiny", backend="openai-chat")
    with pytest.raises(HarnessError, match="not an http"):
        model_identity("tiny", backend="openai-chat", base_url="127.0.0.1:8000")
