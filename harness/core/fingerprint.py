"""Model identities that cannot go stale: what produces the answers, never just the string the user typed.

A local folder is identified by the bytes of its config, tokenizer and weight files; a Hub model by its resolved
commit; a served model by the server's URL and the served name. Hashing a 15 GB folder takes a while, so per-file
hashes are memoised by (absolute path, size, mtime) in ``fingerprints.json`` in the harness cache.
:class:`ModelIdentity` itself is a record (:mod:`harness.core.records`), re-exported here.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from harness.core.errors import HarnessError
from harness.core.hub import hub_identity
from harness.core.io import short_hash, write_atomic
from harness.core.records import ModelIdentity
from harness.core.settings import default_cache_dir
from harness.core.urls import OPENAI_URL, api_url, public_url

__all__ = ["MEMO_FILE", "SERVED_BACKENDS", "ModelIdentity", "local_model_folder", "model_identity", "short_hash"]

logger = logging.getLogger(__name__)

#: Backends whose model runs behind an OpenAI-compatible server (``openai-chat`` is our name for lm-eval's
#: ``local-chat-completions``).
SERVED_BACKENDS = frozenset({"openai", "openai-chat", "local-chat-completions"})
MEMO_FILE = "fingerprints.json"
_MEMO_VERSION = 1
_CHUNK = 8 * 1024 * 1024
# A file written this close to the moment it is hashed may be rewritten within the same file-system timestamp
# tick (1-2 s on some file systems) with the same size; such a hash is not memoised ("racily clean" in git).
_RACY_NS = 2_000_000_000

_MODEL_FILES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.json",
        "merges.txt",
        "tokenizer.model",
        "added_tokens.json",
        "chat_template.jinja",
        "chat_template.json",
    }
)
_MODEL_GLOBS = ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.pt", "*.gguf", "pytorch_model*.bin.index.json")
# Trainer state saved next to a checkpoint's weights: it does not change the answers and optimizer.pt is twice
# the size of the weights.
_TRAINER_STATE = frozenset({"optimizer.pt", "scheduler.pt", "training_args.bin"})
_SHA = re.compile(r"[0-9a-f]{40}")
# The Hub's own rule (huggingface_hub.utils.validate_repo_id): "name" or "namespace/name", letters, digits, - _ .


def model_identity(
    model: str,
    *,
    revision: str | None = None,
    backend: str = "hf",
    base_url: str | None = None,
    cache_dir: Path | None = None,
    endpoint: str | None = None,
) -> ModelIdentity:
    """The identity of the system behind ``model``: local content hash, resolved Hub commit, or server + name.

    Args:
        model: A local model folder, a Hub id (``org/name`` or ``name``), or a served model name.
        revision: Hub branch, tag or commit; a 40-hex commit is used as is, without any network call.
        backend: The backend that runs the model; those in :data:`SERVED_BACKENDS` make it a served model.
        base_url: The server of a served model; None with backend ``openai`` means OpenAI's API.
        cache_dir: Where ``fingerprints.json`` memoises per-file hashes (default: the harness cache).
        endpoint: Hub endpoint (default: huggingface.co, or ``HF_ENDPOINT``).

    Returns:
        The identity, with a 16-hex fingerprint.

    Raises:
        HarnessError: The folder holds no model, the path does not exist, the Hub id is malformed, the Hub
            commit cannot be resolved (offline and not cached), or a served backend has no base URL.
    """
    if not model.strip():
        raise HarnessError("no model given: name a local model folder, a Hub id (org/name) or a served model")
    if backend in SERVED_BACKENDS:
        return _served_identity(model, backend, base_url)
    if backend == "replies":
        return replies_identity(model)
    folder = local_model_folder(model)
    if folder is None:
        return hub_identity(model, revision, endpoint)
    if revision is not None:
        # a folder has no revisions: recording one would claim a provenance the answers do not have
        raise HarnessError(f"revision {revision!r} given for the local model folder {model}, which has no revisions "
                           "(its files are its identity): drop the revision, or give the Hub id")
    return _local_identity(model, folder, cache_dir if cache_dir is not None else default_cache_dir())


def local_model_folder(model: str, *, option: str | None = None) -> Path | None:
    """The local folder ``model`` names, checked to hold a model; None when ``model`` is not a path (a Hub id).

    Args:
        model: What the user gave: a folder, or a Hub id.
        option: The command-line option that gave it (e.g. ``--judge``), named in the errors; None: "model folder".

    Raises:
        HarnessError: The path does not exist, is a file, or is a folder without a model in it.
    """
    path = Path(model).expanduser()
    if not path.exists():
        if _looks_like_path(model):
            raise HarnessError(f"{option or 'model folder'} {model} does not exist: check the path, or give a Hub "
                               "id (org/name)")
        return None
    if not path.is_dir():
        raise HarnessError(
            f"{option or 'model path'} {model} is a file, not a model folder: give the folder that holds "
            "config.json (or the .gguf file)"
        )
    if not _holds_model(path):
        inside = sorted(p.name for p in path.iterdir() if p.is_dir() and _holds_model(p))
        hint = f" (models inside: {', '.join(inside[:5])})" if inside else ""
        raise HarnessError(
            f"{option or 'model folder'} {model} exists but holds no model (no config.json or .gguf){hint}: "
            "give the model folder itself"
        )
    return path


# -- served --------------------------------------------------------------------------------------------------


def _served_identity(model: str, backend: str, base_url: str | None) -> ModelIdentity:
    if base_url is None:
        if backend != "openai":
            raise HarnessError(
                f"backend {backend!r} runs model {model!r} behind a server and needs its base URL: "
                "give e.g. --base-url http://127.0.0.1:8000/v1"
            )
        base_url = OPENAI_URL
    url = _normalise_base_url(base_url)
    return ModelIdentity(
        kind="served", name=model, revision=None, base_url=url, fingerprint=short_hash("served", url, model)
    )


def _normalise_base_url(base_url: str) -> str:
    """One spelling per server: …/v1, lowercase scheme and host, no default port.

    Scheme, host, port and path only (:func:`~harness.core.urls.public_url`): a query string or user-info may hold
    a key, and is not what answers, so two URLs that differ only there are one server.
    """
    parts = urlsplit(public_url(api_url(base_url, "")))
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or (scheme, port) in {("http", 80), ("https", 443)} else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path, "", ""))


# -- local ---------------------------------------------------------------------------------------------------


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or model.count(os.sep) >= 2


def _is_model_file(name: str) -> bool:
    if name in _TRAINER_STATE:
        return False
    return name in _MODEL_FILES or any(fnmatch.fnmatchcase(name, pattern) for pattern in _MODEL_GLOBS)


def _holds_model(folder: Path) -> bool:
    return (folder / "config.json").is_file() or any(p.is_file() for p in folder.glob("*.gguf"))


def _local_identity(model: str, folder: Path, cache_dir: Path) -> ModelIdentity:
    files = sorted((p for p in folder.iterdir() if p.is_file() and _is_model_file(p.name)), key=lambda p: p.name)
    digests = _file_digests(files, cache_dir / MEMO_FILE)
    parts = [part for f in files for part in (f.name, digests[f.name])]
    return ModelIdentity(
        kind="local", name=model, revision=None, base_url=None, fingerprint=short_hash("local", *parts)
    )


def _file_sha256(path: Path) -> str:
    """Full sha256 of a file, read in large chunks so memory stays flat for multi-GB weights."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _file_digests(files: list[Path], memo_path: Path) -> dict[str, str]:
    """sha256 per file name, reusing memoised hashes whose (absolute path, size, mtime_ns) still match."""
    memo = _load_memo(memo_path)
    out: dict[str, str] = {}
    changed = False
    for f in files:
        key = str(f.resolve())  # Hub snapshots are symlinks to blobs: memoise the blob
        try:
            st = f.stat()
            entry = memo.get(key)
            if entry and entry["size"] == st.st_size and entry["mtime_ns"] == st.st_mtime_ns:
                out[f.name] = entry["sha256"]
                continue
            out[f.name] = _file_sha256(f)
        except OSError as exc:
            raise HarnessError(f"cannot read model file {f}: {exc.strerror or exc}; check its permissions") from exc
        if time.time_ns() - st.st_mtime_ns > _RACY_NS:
            memo[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": out[f.name]}
            changed = True
        elif memo.pop(key, None) is not None:
            changed = True
    if changed:
        _save_memo(memo_path, memo)
    return out


def _valid_entry(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("size"), int)
        and isinstance(entry.get("mtime_ns"), int)
        and isinstance(entry.get("sha256"), str)
        and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]) is not None
    )


def _load_memo(memo_path: Path) -> dict[str, dict[str, Any]]:
    """The memoised hashes; a missing, corrupt or foreign file counts as empty (it is rewritten)."""
    try:
        data = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != _MEMO_VERSION or not isinstance(data.get("files"), dict):
        return {}
    return {k: v for k, v in data["files"].items() if _valid_entry(v)}


def _save_memo(memo_path: Path, memo: dict[str, dict[str, Any]]) -> None:
    text = json.dumps({"version": _MEMO_VERSION, "files": memo}, indent=1, sort_keys=True) + "\n"
    try:
        write_atomic(memo_path, text)
    except OSError as exc:
        # The memo only saves time; a read-only cache must not stop an evaluation.
        logger.warning("could not write the fingerprint memo %s: %s", memo_path, exc)


# -- hub -----------------------------------------------------------------------------------------------------


def replies_identity(path: str) -> ModelIdentity:
    """Replies written beforehand (a JSONL file): identified by the file's bytes."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise HarnessError(f"replies file {path} is a folder: give a JSONL file of {{dialogue_id, response}} rows")
    if not file.is_file():
        raise HarnessError(f"replies file {path} does not exist: give a JSONL file of {{dialogue_id, response}} rows")
    return ModelIdentity(kind="replies", name=path, fingerprint=short_hash("replies", _file_sha256(file)))
