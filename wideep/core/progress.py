"""Progress of long loops, told to whoever listens: the CLI draws a bar on a terminal's stderr.

Library code calls :func:`advance`; with no listener installed it costs one global lookup.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

Listener = Callable[[str, int, int], None]
_listener: Listener | None = None


def listen(listener: Listener | None) -> Listener | None:
    """Install ``listener(task, done, total)``; returns the one it replaces."""
    global _listener
    previous, _listener = _listener, listener
    return previous


def advance(task: str, done: int, total: int) -> None:
    """Report that ``done`` of ``total`` steps of ``task`` are finished."""
    if _listener is not None:
        _listener(task, done, total)


def terminal_bar(stream: TextIO = sys.stderr, after_s: float = 0.5, width: int = 30) -> Listener:
    """A listener drawing ``task [#####.....] done/total`` on ``stream``, for tasks that last over ``after_s``."""
    started: dict[str, float] = {}

    def draw(task: str, done: int, total: int) -> None:
        start = started.setdefault(task, time.monotonic())
        if time.monotonic() - start < after_s and done < total:
            return
        filled = width * done // max(total, 1)
        end = "\n" if done >= total else ""
        stream.write(f"\r{task} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}{end}")
        stream.flush()
        if done >= total:
            started.pop(task, None)

    return draw
