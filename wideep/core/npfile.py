"""Numeric arrays from ``.npy`` and ``.npz`` files a person hands us, never running code from them.

Arrays of Python objects are stored pickled; wideep never unpickles a file (DESIGN: no input file can run
code), so such a file gets one plain error instead of numpy's advice to enable pickling. Every member of
an ``.npz`` is read here, so a corrupt member fails at load with the file's name, not later.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from wideep.core.errors import CatalogError, WideEPError

#: How a .npy file (numpy's format) and an .npz archive (a zip file) begin.
MAGICS = (b"\x93NUMPY", b"PK\x03\x04", b"PK\x05\x06")
OBJECTS = ("holds an array of Python objects (stored pickled), which wideep never loads; "
           "save plain numeric arrays (e.g. numpy.int32, numpy.float64)")


def load_npy(path: Path, error: type[WideEPError] = CatalogError) -> np.ndarray:
    """The array of a ``.npy`` file; a corrupt or object file raises ``error`` naming ``path``."""
    arrays = load_arrays(path, error)
    if arrays is None:
        raise error("expected a .npy array, found an .npz archive", str(path))
    return arrays


def load_npz(path: Path, error: type[WideEPError] = CatalogError) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive by name; a corrupt member or an object array raises ``error``."""
    arrays = load_arrays(path, error, archive=True)
    if arrays is None:
        raise error("expected an .npz archive, found a single .npy array", str(path))
    return arrays


def load_arrays(path: Path, error: type[WideEPError], archive: bool = False):
    """``np.load`` without pickles, every member read while the file is open (closed on every path).

    Returns the array (``archive`` False) or the {name: array} dict (True); None when the file holds the
    other kind.
    """
    try:
        with open(path, "rb") as fh, warnings.catch_warnings():
            if not fh.read(6).startswith(MAGICS):  # np.load takes any other file for a pickle
                raise error("is not a numpy file (.npy or .npz)", str(path))
            fh.seek(0)
            warnings.simplefilter("ignore")  # numpy parses a damaged header as Python and may warn on it
            data = np.load(fh, allow_pickle=False)
            if isinstance(data, np.ndarray):
                return None if archive else data
            with data:
                return {name: data[name] for name in data.files} if archive else None
    except WideEPError:
        raise
    except Exception as exc:  # numpy, zipfile and zlib raise many types for a bad header, member or size
        raise read_error(exc, path, error) from None


def read_error(exc: Exception, path: Path, error: type[WideEPError]) -> WideEPError:
    """Our one-line error for whatever numpy raised reading ``path``."""
    if isinstance(exc, ValueError) and "allow_pickle" in str(exc):
        return error(OBJECTS, str(path))
    if isinstance(exc, MemoryError):
        return error("its arrays are too large to load into memory", str(path))
    text = " ".join(str(exc).split())[:200] or type(exc).__name__  # numpy may quote a whole damaged header
    return error(f"cannot read numpy data: {text}", str(path))
