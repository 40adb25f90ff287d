"""The one exception type the CLI turns into a clear message (no traceback) and exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class HarnessError(Exception):
    """A user-facing error: the message names the thing, the value and the fix."""


def did_you_mean(value: str, options: Iterable[str]) -> str:
    """A ' (did you mean X?)' hint for a mistyped name, or the list of valid names."""
    options = sorted(options)
    close = difflib.get_close_matches(value, options, n=1, cutoff=0.5)
    if close:
        return f"did you mean {close[0]!r}? (choices: {', '.join(options)})"
    return f"choices: {', '.join(options)}"


def validation_problems(exc: ValidationError, limit: int = 5) -> str:
    """The first ``limit`` problems of a pydantic validation error as ``key.path: message; …``."""
    return "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()[:limit])
