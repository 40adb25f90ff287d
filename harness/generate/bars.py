"""lm-eval's progress bars in the harness's words: one rich bar that says whose replies it counts.

lm-eval draws tqdm bars named after its internals ("Running generate_until requests", "Requesting API") and an
unnamed one while it builds requests. While ``generate`` runs, the ``tqdm`` names in the modules of the chosen
lm-eval model class (and of the task module) point at a stand-in that draws one rich bar on stderr, labelled by
the caller, and hides the request-building loop (it takes milliseconds). Everything is put back on exit.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.progress import Progress, TaskID


class _Bar:
    """The part of tqdm's interface lm-eval's models call."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._progress, self._task = progress, task

    def update(self, n: float = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)

    def close(self) -> None:
        pass

    def set_description(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Tqdm:
    """Called like ``tqdm(...)``: an iterable is passed through unshown; a counted bar becomes a rich task."""

    def __init__(self, progress: Progress, description: str) -> None:
        self._progress, self._description = progress, description

    def __call__(self, iterable: Iterable[Any] | None = None, *args: Any, total: float | None = None,
                 disable: bool = False, **kwargs: Any) -> Any:
        if iterable is not None:
            return iterable
        if disable:
            return _Bar(None, None)
        return _Bar(self._progress, self._progress.add_task(self._description, total=total))

    async def gather(self, *awaitables: Awaitable[Any], **kwargs: Any) -> list[Any]:
        """``tqdm_asyncio.gather``: results in order, the bar advanced as each one finishes."""
        bar = self(total=len(awaitables))

        async def one(aw: Awaitable[Any]) -> Any:
            result = await aw
            bar.update(1)
            return result

        return list(await asyncio.gather(*(one(a) for a in awaitables)))


@contextmanager
def lm_eval_bars(model_class: type, description: str) -> Iterator[None]:
    """While inside, lm-eval's bars for ``model_class`` (and request building) are one rich bar, ``description``."""
    from harness.core.ui import new_progress

    names = {klass.__module__ for klass in model_class.__mro__} | {"lm_eval.api.task"}
    modules = [m for name in sorted(names) if (m := sys.modules.get(name)) is not None]
    saved: list[tuple[Any, str, object]] = []
    with new_progress() as progress:
        stand_in = _Tqdm(progress, description)
        for module in modules:
            for attr in ("tqdm", "tqdm_asyncio"):
                if hasattr(module, attr):
                    saved.append((module, attr, getattr(module, attr)))
                    setattr(module, attr, stand_in)
        try:
            yield
        finally:
            for module, attr, value in reversed(saved):
                setattr(module, attr, value)
