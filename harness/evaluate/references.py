"""Reference sets built with the same code path as candidates, and kept by fingerprint for later runs.

An on-the-fly reference set (``--base-model``, ``--direct-model``) is stored under a key made of the model's
*identity* (the content of a local folder, the resolved commit of a Hub id, or a server URL + name), the prompt,
the dataset and the decoding — so a model retrained in place, or a Hub branch that moved, builds a new one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

from harness import __version__
from harness.core.fingerprint import model_identity, short_hash
from harness.core.prompts import load_generation_prompt
from harness.core.records import Decoding, Dialogue, ModelIdentity, ReferenceManifest, ReferenceSet
from harness.core.ui import console
from harness.data.references import load_reference, save_reference
from harness.generate.replies import (
    ModelSpec,
    default_decoding,
    generate,
    generation_dtype,
    resolve_chat_template,
)


def now() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def spec_identity(spec: ModelSpec, cache_dir: Path | None = None) -> tuple[ModelSpec, ModelIdentity]:
    """The model's identity, and the spec pinned to it (a Hub id loads exactly the fingerprinted commit)."""
    identity = model_identity(spec.model, revision=spec.revision, backend=spec.backend, base_url=spec.base_url,
                              cache_dir=cache_dir)
    if identity.kind == "hub":
        spec = dataclasses.replace(spec, revision=identity.revision)
    return spec, identity


def build_reference(
    spec: ModelSpec, name: str, dialogues: Sequence[Dialogue], *, dataset: str, digest: str,
    identity: ModelIdentity | None = None,
) -> ReferenceSet:
    """Generate a reference set with the same code path as candidates."""
    if identity is None:
        spec, identity = spec_identity(spec)
    decoding = default_decoding()
    spec = resolve_chat_template(spec)
    gens = generate(spec, dialogues, dataset=dataset, decoding=decoding, system=name)
    manifest = ReferenceManifest(
        name=name,
        model=spec.model,
        model_revision=spec.revision,
        model_identity=identity,
        backend=spec.backend,
        decoding=decoding,
        prompt_hash=load_generation_prompt().hash,
        dataset_hash=digest,
        dataset=dataset,
        chat_template=bool(spec.chat_template),
        n=len(gens),
        created_at=now(),
        harness_version=__version__,
    )
    return ReferenceSet(manifest=manifest, generations={g.dialogue_id: g for g in gens})


def reference_cache_path(refs_dir: Path, identity: ModelIdentity, spec: ModelSpec, name: str, digest: str,
                         decoding: Decoding) -> Path:
    """Where an on-the-fly reference set is kept, keyed by everything that shapes its replies."""
    key = json.dumps([identity.fingerprint, spec.backend, generation_dtype(spec), spec.chat_template,
                      load_generation_prompt().hash, digest, decoding.model_dump(mode="json")], sort_keys=True)
    return refs_dir / f"{name}-{short_hash(key)}.json"


def ensure_reference(
    spec: ModelSpec, name: str, dialogues: Sequence[Dialogue], *, dataset: str, digest: str, refs_dir: Path,
    cache_dir: Path | None = None,
) -> tuple[ReferenceSet, Path, bool]:
    """Reuse a matching reference set from ``refs_dir`` or build (and keep) one; returns (set, path, reused)."""
    spec, identity = spec_identity(spec, cache_dir)
    path = reference_cache_path(refs_dir, identity, spec, name, digest, default_decoding())
    if path.is_file():
        ref = load_reference(path, name=name)
        same = ref.manifest.model_identity is not None and ref.manifest.model_identity.fingerprint == identity.fingerprint
        if same and all(d.id in ref.generations for d in dialogues):
            console.print(f"  reference {name!r}: reusing {path} (same model fingerprint, prompt, data, decoding)")
            return ref, path, True
    console.print(f"  reference {name!r}: generating {len(dialogues)} replies with {spec.model}")
    ref = build_reference(spec, name, dialogues, dataset=dataset, digest=digest, identity=identity)
    save_reference(path, ref)
    return ref, path, False
