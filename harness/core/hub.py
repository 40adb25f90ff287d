"""A Hub model's identity: its resolved commit — one short request, else the local Hugging Face cache."""

from __future__ import annotations

import os
import re
from pathlib import Path

from harness.core.errors import HarnessError
from harness.core.io import short_hash
from harness.core.records import ModelIdentity

#: One short Hub request, no retries: an unreachable Hub falls back to the local cache quickly.
HUB_TIMEOUT_S = 10.0
_SHA = re.compile(r"[0-9a-f]{40}")
_SHA_PREFIX = re.compile(r"[0-9a-f]{7,39}")
_TRUE = {"1", "ON", "YES", "TRUE"}
_HUB_ID = re.compile(r"(?:[\w\-.]{1,96}/)?[\w\-.]{1,96}", re.ASCII)


def hub_identity(model: str, revision: str | None, endpoint: str | None) -> ModelIdentity:
    """A Hub id pinned to its commit: a 40-hex revision as given, else resolved (Hub, then local cache)."""
    if not _valid_hub_id(model):
        raise HarnessError(
            f"model {model!r} is neither an existing local folder nor a valid Hub id: give a model folder, or a "
            "Hub id like Qwen/Qwen2.5-0.5B-Instruct (letters, digits, '-', '_', '.'; no '--' or '..')"
        )
    sha = _resolve_commit(model, revision, endpoint)
    return ModelIdentity(kind="hub", name=model, revision=sha, base_url=None, fingerprint=short_hash("hub", model, sha))


def _resolve_commit(model: str, revision: str | None, endpoint: str | None) -> str:
    """A 40-hex revision as is; else one Hub request (unless offline), then the local Hugging Face cache."""
    if revision is not None and _SHA.fullmatch(revision.lower()):
        return revision.lower()
    sha, why = (None, "offline") if _hub_offline() else _ask_hub(model, revision, endpoint)
    sha = sha or _cached_commit(model, revision)
    if sha is None:
        raise HarnessError(_unresolved_message(model, revision, why))
    return sha


def _valid_hub_id(model: str) -> bool:
    return (
        _HUB_ID.fullmatch(model) is not None
        and not any(part[:1] in "-." or part[-1:] in "-." for part in model.split("/"))
        and "--" not in model
        and ".." not in model
        and not model.endswith(".git")
    )


def _hub_offline() -> bool:
    # huggingface_hub reads HF_HUB_OFFLINE once at import; the variable may have been set since.
    from huggingface_hub import constants

    env = (os.environ.get(v, "").strip().upper() for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return bool(constants.HF_HUB_OFFLINE) or any(v in _TRUE for v in env)


def _ask_hub(model: str, revision: str | None, endpoint: str | None) -> tuple[str | None, str]:
    """(commit sha, "") from one Hub request, or (None, why) — the caller falls back to the local cache."""
    from huggingface_hub import HfApi

    try:
        info = HfApi(endpoint=endpoint).model_info(model, revision=revision, timeout=HUB_TIMEOUT_S)
    except Exception as exc:  # unreachable, timeout, 401/404, bad JSON: all mean "ask the cache instead"
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        return None, f"the Hub lookup failed: {type(exc).__name__}: {first_line}"
    sha = (info.sha or "").lower()
    if not _SHA.fullmatch(sha):
        return None, f"the Hub answered without a commit sha ({info.sha!r})"
    return sha, ""


def _hub_cache_folder(model: str) -> Path:
    from huggingface_hub import constants

    # Read at call time: the cache root is fixed at import from HF_HUB_CACHE / HF_HOME.
    return Path(constants.HF_HUB_CACHE) / ("models--" + model.replace("/", "--"))


def _cached_snapshots(folder: Path) -> list[str]:
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return []
    return sorted(p.name for p in snapshots.iterdir() if p.is_dir() and _SHA.fullmatch(p.name))


def _cached_commit(model: str, revision: str | None) -> str | None:
    """The commit the local Hugging Face cache records for ``revision`` (default main), or None."""
    folder = _hub_cache_folder(model)
    ref = revision or "main"
    ref_file = folder / "refs" / ref
    if ".." not in Path(ref).parts and ref_file.is_file():
        try:
            sha = ref_file.read_text(encoding="utf-8").strip().lower()
        except OSError:
            sha = ""
        if _SHA.fullmatch(sha):
            return sha
    # A short commit given as the revision names a snapshot folder.
    if revision is not None and _SHA_PREFIX.fullmatch(revision.lower()):
        matches = [s for s in _cached_snapshots(folder) if s.startswith(revision.lower())]
        if len(matches) == 1:
            return matches[0]
    return None


def _unresolved_message(model: str, revision: str | None, why: str) -> str:
    folder = _hub_cache_folder(model)
    at = f" at revision {revision!r}" if revision else ""
    cached = _cached_snapshots(folder)
    seen = f"; cached snapshots there: {', '.join(cached[:5])}" if cached else ""
    return (
        f"cannot resolve the commit of Hub model {model!r}{at} ({why}, and not in the local Hugging Face cache "
        f"{folder}{seen}): pin it with --revision <40-hex commit>, or give a local model folder"
    )
