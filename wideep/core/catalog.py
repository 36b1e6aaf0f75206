"""Catalog files: finding them, reading TOML/JSON, and strict validation of their fields.

Catalog ids are file names without the extension. The catalogs ship inside the installed package
(``wideep/_catalog``); in a source checkout they are the top-level ``topologies/`` and ``models/``.
A path to a user's own file is accepted anywhere an id is.
"""

from __future__ import annotations

import difflib
import math
import reprlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from wideep.core.errors import CatalogError, NotFoundError
from wideep.core.parse import read_data

FLOAT_MAX = 1.7976931348623157e308  # the largest float: integers beyond it cannot enter any arithmetic here

KINDS = {"gpus": "topologies/gpus", "systems": "topologies/systems", "models": "models",
         "calibration": "topologies/calibration", "transports": "topologies/transports",
         "collectives": "topologies/collectives"}


@lru_cache(maxsize=1)
def catalog_root() -> Path:
    """Folder holding ``topologies/`` and ``models/``: inside the package when installed (found once)."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "_catalog"
    return installed if installed.is_dir() else package.parent


def list_ids(kind: str) -> list[str]:
    """Sorted ids of one catalog kind (``gpus``, ``systems`` or ``models``)."""
    return sorted(p.stem for p in (catalog_root() / KINDS[kind]).glob("*.toml"))


def looks_like_path(name: str) -> bool:
    return name.endswith((".toml", ".json")) or "/" in name or "\\" in name


def not_a_file(path: Path) -> str:
    """Why ``path``, which is not a readable file, cannot be read: the problem of the error raised."""
    return "is a folder, not a file" if path.is_dir() else "no such file"


def resolve(kind: str, name: str) -> Path:
    """Path of a catalog id or of a user's file; unknown ids suggest the closest ones."""
    if looks_like_path(name):
        path = Path(name)
        if not path.is_file():
            raise NotFoundError(not_a_file(path), str(path))
        return path
    path = catalog_file(kind, name)
    if path is not None:
        return path
    close = difflib.get_close_matches(name, list_ids(kind), n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(list_ids(kind))}"
    raise NotFoundError(f"unknown {kind[:-1]} {name!r}{hint}", f"--{kind[:-1]}" if kind != "systems" else "--topology")


def catalog_file(kind: str, name: str) -> Path | None:
    """The catalog's file of id ``name``, or None (found files remembered: plans look their model and system up
    again and again)."""
    key = (catalog_root(), kind, name)
    if key not in _FOUND:
        path = catalog_root() / KINDS[kind] / f"{name}.toml"
        if not path.is_file():
            return None
        _FOUND[key] = path
    return _FOUND[key]


_FOUND: dict[tuple, Path] = {}


def read_file(path: Path) -> dict[str, Any]:
    """Parse a TOML or JSON file into a dict; malformed files raise :class:`CatalogError`."""
    data = read_data(path)
    if not isinstance(data, dict):
        raise CatalogError("top level must be a table/object", str(path))
    return data


@dataclass(frozen=True)
class Field:
    """One expected key: its type and the rule its value obeys.

    rule: ``"positive"`` (finite, > 0), ``"nonneg"`` (finite, >= 0), ``"any"``; ``choices`` limits strings.
    """

    type: type | tuple[type, ...]
    rule: str = "any"
    required: bool = True
    choices: tuple[str, ...] = ()


def number_ok(value: Any, rule: str) -> str | None:
    """Problem with a numeric value under ``rule``, or None.

    >>> number_ok(10**400, "any")
    'out of range (an integer beyond 1.8e308)'
    """
    if isinstance(value, int) and abs(value) > FLOAT_MAX:
        return "out of range (an integer beyond 1.8e308)"
    if not math.isfinite(value):
        return f"must be finite, got {value}"
    if rule == "positive" and value <= 0:
        return f"must be > 0, got {value}"
    if rule == "nonneg" and value < 0:
        return f"must be >= 0, got {value}"
    return None


def check_table(data: dict[str, Any], spec: dict[str, Field], source: str, prefix: str = "") -> dict[str, Any]:
    """Validate ``data`` against ``spec``: unknown, missing, mistyped and out-of-range keys raise.

    Integers are accepted where floats are expected; booleans never count as numbers.

    >>> check_table({"a": 1}, {"a": Field(float, "positive")}, "x.toml")
    {'a': 1}
    >>> check_table({"a": -1}, {"a": Field(float, "positive")}, "x.toml")
    Traceback (most recent call last):
    wideep.core.errors.CatalogError: x.toml: a: must be > 0, got -1
    """
    for key in data:
        if key not in spec:
            raise CatalogError(f"unknown key (expected one of: {', '.join(spec)})", source, prefix + key)
    for key, field in spec.items():
        if key not in data:
            if field.required:
                raise CatalogError("missing required field", source, prefix + key)
            continue
        check_value(data[key], field, source, prefix + key)
    return data


def check_value(value: Any, field: Field, source: str, name: str) -> None:
    types = field.type if isinstance(field.type, tuple) else (field.type,)
    numeric = float in types or int in types
    if isinstance(value, bool) and bool not in types:
        ok = False
    elif float in types and isinstance(value, int):
        ok = True
    else:
        ok = isinstance(value, types)
    if not ok:
        want = " or ".join(t.__name__ for t in types)
        raise CatalogError(f"expected {want}, got {type(value).__name__} {reprlib.repr(value)}", source, name)
    if numeric and isinstance(value, (int, float)) and not isinstance(value, bool):
        problem = number_ok(value, field.rule)
        if problem:
            raise CatalogError(problem, source, name)
    if field.choices and value not in field.choices:
        raise CatalogError(f"must be one of {', '.join(field.choices)}, got {value!r}", source, name)


def sub_table(data: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    """A required sub-table of ``data``."""
    value = data.get(key)
    if value is None:
        raise CatalogError("missing required table", source, key)
    if not isinstance(value, dict):
        raise CatalogError(f"expected a table, got {type(value).__name__}", source, key)
    return value
