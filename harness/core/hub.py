"""A Hub model's identity: its resolved commit — one short request, else the local Hugging Face cache."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from harness.core.errors import HarnessError
from harness.core.io import short_hash
from harness.core.records import ModelIdentity

#: One Hub request, no retries, with a hard deadline (DNS included; ``EMPATHY_HUB_TIMEOUT_S`` overrides): an
#: unreachable Hub falls back to the local cache within seconds, and is not asked again in this process.
HUB_TIMEOUT_S = 2.0
_UNREACHABLE: dict[str, str] = {}
_SHA = re.compile(r"[0-9a-f]{40}")
_SHA_PREFIX = re.compile(r"[0-9a-f]{7,39}")
_TRUE = {"1", "ON", "YES", "TRUE"}
T = TypeVar("T")
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
    if sha is None and (sha := _cached_commit(model, revision)) is not None and why != "offline":
        if local_snapshot(model, sha) is None:
            # loading would ask the Hub that did not answer for the missing files: minutes of retries, then a failure
            raise HarnessError(
                f"Hub model {model!r}: {why}, and the local Hugging Face cache names commit {sha} without holding "
                f"its files ({_hub_cache_folder(model) / 'snapshots' / sha} lacks the config, tokenizer or weights): "
                "connect to the Hub once to download it, or give a local model folder"
            )
        from harness.core.ui import console

        console.print(f"[yellow]warning:[/] {why}; using {model} at {sha[:12]} from the local Hugging Face cache "
                      "(pin --revision, or raise EMPATHY_HUB_TIMEOUT_S for a slow link)", soft_wrap=True)
    if sha is None:
        raise HarnessError(_unresolved_message(model, revision, why))
    return sha


def local_snapshot(model: str, revision: str | None) -> Path | None:
    """The local Hugging Face cache's complete copy of Hub model ``model`` at commit ``revision``, or None.

    Loading that folder needs no network. Loading the Hub id at the same commit instead asks the Hub about every
    optional file the snapshot lacks, so an unreachable Hub costs minutes of retries even when the model is
    cached. "Complete" means config, tokenizer and every weight file the index names (or one weight file).
    """
    if revision is None or not _SHA.fullmatch(revision.lower()) or Path(model).expanduser().exists():
        return None
    folder = _hub_cache_folder(model) / "snapshots" / revision.lower()
    return folder if _complete_snapshot(folder) else None


def load_source(model: str, revision: str | None) -> tuple[str, str | None]:
    """What to hand ``from_pretrained``: the cached snapshot folder of a Hub commit held in full, else as given."""
    snapshot = local_snapshot(model, revision)
    return (str(snapshot), None) if snapshot is not None else (model, revision)


def _complete_snapshot(folder: Path) -> bool:
    import json

    if not (folder / "config.json").is_file():
        return any(p.is_file() for p in folder.glob("*.gguf"))
    if not any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        return False
    for index in (*folder.glob("*.safetensors.index.json"), *folder.glob("pytorch_model*.bin.index.json")):
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return False
        return all((folder / shard).is_file() for shard in shards)
    return any(p.is_file() for pattern in ("*.safetensors", "*.bin") for p in folder.glob(pattern))


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
    """(commit sha, "") from one Hub request, or (None, why) — the caller falls back to the local cache.

    The request runs in a daemon thread joined with a deadline, since a socket timeout does not bound a hanging
    name lookup; an endpoint that failed once is not asked again in this process (no retry storm over models).
    """
    from huggingface_hub import HfApi, constants

    where = endpoint or constants.ENDPOINT
    if where in _UNREACHABLE:
        return None, _UNREACHABLE[where]
    deadline = hub_deadline()
    try:
        info = within_deadline(lambda t: HfApi(endpoint=endpoint).model_info(model, revision=revision, timeout=t),
                               deadline, name="hub-lookup")
    except HubSilent:
        _UNREACHABLE[where] = f"the Hub at {where} did not answer within {deadline:g} s"
        return None, _UNREACHABLE[where]
    except Exception as exc:  # unreachable, timeout, 401/404, bad JSON: all mean "ask the cache instead"
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        why = f"the Hub lookup failed: {type(exc).__name__}: {first_line}"
        if _is_connection_error(exc):
            _UNREACHABLE[where] = why
        return None, why
    sha = (getattr(info, "sha", None) or "").lower()
    if not _SHA.fullmatch(sha):
        return None, f"the Hub answered without a commit sha ({getattr(info, 'sha', None)!r})"
    return sha, ""


class HubSilent(Exception):
    """The Hub did not answer within the deadline."""


def within_deadline(call: Callable[[float], T], deadline: float, *, name: str) -> T:
    """``call(socket_timeout)`` in a daemon thread joined with ``deadline`` seconds; its value, or what it raised.

    A socket timeout does not bound a hanging name lookup, hence the thread. The socket gets a second more than the
    join, so that a silent Hub is always reported as silent (:class:`HubSilent`), never as a socket timeout.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call(deadline + 1.0)
        except Exception as exc:  # re-raised in the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join(deadline)
    if thread.is_alive() or not box:
        raise HubSilent(f"no answer within {deadline:g} s")
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def hub_deadline() -> float:
    """Seconds one Hub request may take: ``EMPATHY_HUB_TIMEOUT_S``, else :data:`HUB_TIMEOUT_S`."""
    raw = os.environ.get("EMPATHY_HUB_TIMEOUT_S", "").strip()
    try:
        value = float(raw) if raw else HUB_TIMEOUT_S
    except ValueError:
        raise HarnessError(f"EMPATHY_HUB_TIMEOUT_S={raw!r} is not a number of seconds (e.g. 5)") from None
    if not value > 0:
        raise HarnessError(f"EMPATHY_HUB_TIMEOUT_S={raw!r} must be above 0 seconds")
    return value


def _is_connection_error(exc: BaseException) -> bool:
    """No answer at all (refused, unknown host, timeout) — as opposed to an answer such as 404 or 401."""
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & {"ConnectError", "ConnectTimeout", "ReadTimeout", "TimeoutException", "ConnectionError",
                         "TimeoutError", "OSError"}) and "HTTPStatusError" not in names and \
        getattr(exc, "response", None) is None


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
    """Why the commit is unknown, and a fix that works from here.

    Pinning ``--revision`` is offered only for a snapshot the cache holds in full (it then loads offline, at once);
    without one, a pinned commit would still have to be downloaded from the Hub that did not answer.
    """
    folder = _hub_cache_folder(model)
    at = f" at revision {revision!r}" if revision else ""
    head = f"cannot resolve the commit of Hub model {model!r}{at} ({why}, and not in the local Hugging Face cache {folder}"
    complete = [sha for sha in _cached_snapshots(folder) if local_snapshot(model, sha) is not None]
    if complete:
        return (f"{head}; complete snapshots there: {', '.join(complete[:5])}): pin one with --revision "
                f"{complete[0]} (it loads from the cache, offline), or give a local model folder")
    if why == "offline":
        fix = "unset HF_HUB_OFFLINE and connect once to download it"
    elif why not in _UNREACHABLE.values():  # the Hub answered, with an error
        fix = f"check the model id{' and revision' if revision else ''} (a private or gated model needs HF_TOKEN)"
    else:
        fix = "connect to the Hub to download it (raise EMPATHY_HUB_TIMEOUT_S for a slow link)"
    return f"{head}): {fix}, or give a local model folder"
