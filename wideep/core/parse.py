"""Parse JSON and TOML from untrusted files: every parser failure becomes one error naming the file.

Python's JSON and TOML parsers recurse once per nesting level, so a file nested ~1,000 deep (JSON) or
~500 deep (TOML) exhausts the interpreter's stack and raises :class:`RecursionError`; a huge file can
raise :class:`MemoryError`; an integer of more than 4,300 digits raises a plain :class:`ValueError`.
Every reader of a JSON or TOML file goes through :func:`parse_json` / :func:`parse_toml` (or
:func:`read_data`), which turn all of these into the project's error family.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from wideep.core.errors import CatalogError, WideEPError

TOO_DEEP = "nested too deeply (arrays or tables hundreds of levels inside each other)"
TOO_BIG = "too large to load into memory"


def parse_json(text: str | bytes, source: str, error: type[WideEPError] = CatalogError) -> Any:
    """The value of a JSON document; a malformed, too deeply nested or too large one raises ``error``.

    >>> parse_json('{"a": [1, 2]}', "x.json")
    {'a': [1, 2]}
    >>> parse_json("[" * 100000, "x.json")
    Traceback (most recent call last):
    wideep.core.errors.CatalogError: x.json: nested too deeply (arrays or tables hundreds of levels inside each other)
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise error(TOO_DEEP, source) from None
    except MemoryError:
        raise error(TOO_BIG, source) from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8/UTF-16 bytes, integers over 4,300 digits
        raise error(f"malformed JSON: {one_line(exc)}", source) from None


def parse_toml(text: str | bytes, source: str, error: type[WideEPError] = CatalogError) -> dict[str, Any]:
    """The table of a TOML document; malformed, too deeply nested or too large input raises ``error``.

    >>> parse_toml("a = 1", "x.toml")
    {'a': 1}
    >>> parse_toml("a = " + "[" * 5000 + "]" * 5000, "x.toml")
    Traceback (most recent call last):
    wideep.core.errors.CatalogError: x.toml: nested too deeply (arrays or tables hundreds of levels inside each other)
    """
    try:
        return tomllib.loads(text.decode() if isinstance(text, bytes) else text)
    except RecursionError:
        raise error(TOO_DEEP, source) from None
    except MemoryError:
        raise error(TOO_BIG, source) from None
    except ValueError as exc:  # TOMLDecodeError, bad UTF-8, integers over 4,300 digits
        raise error(f"malformed TOML: {one_line(exc)}", source) from None


def read_data(path: Path, error: type[WideEPError] = CatalogError) -> Any:
    """Parse a ``.json`` file as JSON and any other as TOML; unreadable files raise ``error``."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror or exc}", str(path)) from None
    except MemoryError:
        raise error(TOO_BIG, str(path)) from None
    if path.suffix == ".json":
        return parse_json(text, str(path), error)
    return parse_toml(text, str(path), error)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (parsers quote the offending text, which may hold newlines)."""
    return " ".join(str(exc).split())
