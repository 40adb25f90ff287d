"""Where the package's data lives: tasks/, prompts/ and the bundled dialogues.

In a wheel, ``tasks/`` and ``prompts/`` are installed as ``harness/_data/``; in a source checkout (editable
install) they are the folders beside the package. Never the current directory.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # harness/


def _data_dir(name: str) -> Path:
    installed = _PACKAGE_DIR / "_data" / name
    if installed.is_dir():
        return installed
    checkout = _PACKAGE_DIR.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"the package data folder {name!r} is missing from this installation ({installed})")


def tasks_dir() -> Path:
    """The folder of lm-eval task YAMLs, for ``--include_path``."""
    return _data_dir("tasks")


def prompts_dir() -> Path:
    """The folder of prompt files (generation, judge, teacher)."""
    return _data_dir("prompts")


def bundled_dialogues_path() -> Path:
    """The bundled dialogue set written for this project (Apache-2.0, like the code)."""
    return _PACKAGE_DIR / "data" / "dialogues.jsonl"
