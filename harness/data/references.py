"""Reference sets: the replies of one system (base SLM, direct-distilled SLM, a teacher) plus a manifest.

A comparison uses a reference only when its prompt hash, dataset hash and decoding equal the run's, and when
it covers every dialogue of the run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from harness.core.errors import HarnessError
from harness.core.io import write_json
from harness.core.records import Decoding, Dialogue, Generation, ReferenceManifest, ReferenceSet


def build_command_hint(name: str, path: Path | str) -> str:
    """The command that builds a reference set, for error messages."""
    return f"empathy refs build --model MODEL --name {name} --output {path}"


def save_reference(path: Path, ref: ReferenceSet) -> None:
    """Write a reference set atomically as one JSON file."""
    write_json(
        path,
        {
            "manifest": ref.manifest.model_dump(mode="json"),
            "generations": [g.model_dump(mode="json") for g in ref.generations.values()],
        },
    )


def load_reference(path: Path | str, *, name: str = "reference") -> ReferenceSet:
    """Read a reference set file; a missing or unreadable file gets an error naming the build command."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(
            f"reference set {name!r} not found at {path} — build it with '{build_command_hint(name, path)}'"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        manifest = ReferenceManifest(**raw["manifest"])
        generations = {g["dialogue_id"]: Generation(**g) for g in raw["generations"]}
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValidationError) as exc:
        raise HarnessError(
            f"reference set {name!r} at {path} is not a valid reference file ({type(exc).__name__}); rebuild it "
            f"with '{build_command_hint(name, path)}'"
        ) from exc
    return ReferenceSet(manifest=manifest, generations=generations)


def check_compatible(
    ref: ReferenceSet,
    *,
    name: str,
    path: Path | str,
    prompt_hash: str,
    dataset_hash: str,
    decoding: Decoding,
    dialogues: Sequence[Dialogue],
    limit_hint: str = "--limit",
) -> None:
    """Refuse a reference set that was built with another prompt, dataset or decoding, or misses dialogues."""
    m = ref.manifest
    hint = build_command_hint(name, path)
    if m.prompt_hash != prompt_hash:
        raise HarnessError(
            f"reference set {name!r} ({path}) was generated with another prompt (prompt hash {m.prompt_hash}, this run "
            f"uses {prompt_hash}): both sides of a comparison must see the same prompt — rebuild it with '{hint}'"
        )
    if m.dataset_hash != dataset_hash:
        raise HarnessError(
            f"reference set {name!r} ({path}) was generated on another dataset (dataset hash {m.dataset_hash} of "
            f"{m.dataset!r}, this run uses {dataset_hash}) — rebuild it with '{hint} --dataset ...'"
        )
    if m.decoding != decoding:
        raise HarnessError(
            f"reference set {name!r} ({path}) used other decoding settings ({m.decoding.model_dump()} vs "
            f"{decoding.model_dump()}): every system in a comparison must decode the same way — rebuild it"
        )
    missing = [d.id for d in dialogues if d.id not in ref.generations]
    if missing:
        raise HarnessError(
            f"reference set {name!r} ({path}) has no reply for {len(missing)} of this run's dialogues (e.g. "
            f"{', '.join(missing[:3])}); it was built with a smaller --limit — rebuild it with '{hint}' and a --limit "
            f"at least as large as this run's, or evaluate as many dialogues as it covers ({limit_hint})"
        )
