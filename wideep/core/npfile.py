"""Numeric arrays from ``.npy`` and ``.npz`` files a person hands us, never running code from them.

Arrays of Python objects are stored pickled; wideep never unpickles a file (DESIGN: no input file can run
code), so such a file gets one plain error instead of numpy's advice to enable pickling. Every member of
an ``.npz`` is read here, so a corrupt member fails at load with the file's name, not later.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wideep.core.errors import CatalogError, WideEPError

OBJECTS = ("holds an array of Python objects (stored pickled), which wideep never loads; "
           "save plain numeric arrays (e.g. numpy.int32, numpy.float64)")


def load_npy(path: Path, error: type[WideEPError] = CatalogError) -> np.ndarray:
    """The array of a ``.npy`` file; a corrupt or object file raises ``error`` naming ``path``."""
    arr = load_any(path, error)
    if not isinstance(arr, np.ndarray):
        raise error("expected a .npy array, found an .npz archive", str(path))
    return arr


def load_npz(path: Path, error: type[WideEPError] = CatalogError) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive by name; a corrupt member or an object array raises ``error``."""
    archive = load_any(path, error)
    if isinstance(archive, np.ndarray):
        raise error("expected an .npz archive, found a single .npy array", str(path))
    try:
        with archive:
            return {name: archive[name] for name in archive.files}
    except Exception as exc:  # numpy, zipfile and zlib raise many types for a corrupt member
        raise read_error(exc, path, error) from None


def load_any(path: Path, error: type[WideEPError]):
    """``np.load`` without pickles: an ndarray (``.npy``) or an open NpzFile (``.npz``)."""
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises many types for a bad header, truncated data or a huge shape
        raise read_error(exc, path, error) from None


def read_error(exc: Exception, path: Path, error: type[WideEPError]) -> WideEPError:
    """Our one-line error for whatever numpy raised reading ``path``."""
    if isinstance(exc, ValueError) and "allow_pickle" in str(exc):
        return error(OBJECTS, str(path))
    if isinstance(exc, MemoryError):
        return error("its arrays are too large to load into memory", str(path))
    text = " ".join(str(exc).split()) or type(exc).__name__
    return error(f"cannot read numpy data: {text}", str(path))
