"""Renderers: plain-text tables for people, JSON for scripts, CSV for spreadsheets."""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Sequence


def fmt(value: Any) -> str:
    """A cell: floats with three significant figures at most after the point, big ones with separators."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    return "-" if value is None else str(value)


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> str:
    """Align ``rows`` under ``headers``; numbers right-aligned.

    >>> print(table([["a", 1.5]], ["name", "x"]))
    name    x
    ----  ---
    a     1.5
    """
    cells = [[fmt(v) for v in row] for row in rows]
    raw = [list(row) for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in raw if r[i] is not None)
               and any(r[i] is not None for r in raw) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


def to_json(obj: Any) -> str:
    """JSON text with numpy scalars and arrays converted."""
    return json.dumps(obj, indent=2, default=_plain)


def _plain(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
