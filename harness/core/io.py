"""Writing results: atomic JSON / JSONL files, and the lm-eval-compatible view of judgments."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def strict_json(value: Any) -> Any:
    """NaN/inf become null, so files (and typed results) are strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    return value


def short_hash(*parts: str) -> str:
    """The first 16 hex characters of the sha256 of ``parts`` joined with NUL separators.

    Args:
        *parts: Strings to hash, in order; ``("ab", "c")`` and ``("a", "bc")`` hash differently.

    Returns:
        16 lowercase hex characters.
    """
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:16]


def load_config(path: Path, model: type[M], what: str) -> M:
    """A typed YAML config file (prompts, probe, board protocol); errors name the file and each bad key."""
    import yaml

    from harness.core.errors import HarnessError, validation_problems

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise HarnessError(f"cannot read the {what} {path}: {exc}") from exc
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        raise HarnessError(f"invalid {what} {path}: {validation_problems(exc)}") from exc


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask: read from /proc on Linux; elsewhere by setting and restoring it (briefly, under a lock)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that readers see the old or the new content, never a partial one.

    The file gets the permissions a plain ``open(path, "w")`` would give (0666 less the umask), not mkstemp's 0600.
    """
    write_atomic_bytes(path, text.encode("utf-8"))


def write_atomic_bytes(path: Path, data: bytes, *, sync: bool = True) -> None:
    """:func:`write_atomic` for bytes; ``sync=False`` skips the fsync (a cache file, cheap to lose)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """Atomically write strict JSON (NaN → null)."""
    write_atomic(path, json.dumps(strict_json(data), indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, records: Iterable[BaseModel | dict[str, Any]]) -> None:
    """Atomically write one JSON object per line."""
    lines = []
    for r in records:
        data = r.model_dump(mode="json") if isinstance(r, BaseModel) else r
        lines.append(json.dumps(strict_json(data), ensure_ascii=False))
    write_atomic(path, "\n".join(lines) + ("\n" if lines else ""))


def file_hash(path: Path) -> str:
    """Short sha256 of a file's bytes (data provenance in reports and model cards)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def safetensors_parameters(folder: Path) -> int | None:
    """Parameter count from the headers of a model folder's ``*.safetensors`` files (None: none, or unreadable).

    Only the JSON headers are read (8-byte length, then the header), never the weights.
    """
    total = 0
    try:
        for file in sorted(folder.glob("*.safetensors")):
            with file.open("rb") as f:
                size = int.from_bytes(f.read(8), "little")
                if not 0 < size < 100_000_000:
                    return None
                header = json.loads(f.read(size))
            for key, tensor in header.items():
                if key != "__metadata__":
                    n = 1
                    for dim in tensor["shape"]:
                        n *= int(dim)
                    total += n
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return total or None
