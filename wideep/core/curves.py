"""Measured curves: validation of (x, efficiency) lists from data files and log-x interpolation."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from wideep.core.errors import CatalogError


def checked_curve(xs: object, ys: object, source: str, field: str,
                  efficiencies: bool = True) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Strictly increasing positive x and efficiencies in (0, 1] (``efficiencies=False``: any positive y);
    anything else raises :class:`CatalogError`.

    >>> checked_curve([1, 10], [0.5, 0.8], "f.toml", "ramp")
    ((1.0, 10.0), (0.5, 0.8))
    """
    try:
        x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    except (TypeError, ValueError):
        raise CatalogError("must be lists of numbers", source, field) from None
    if x.ndim != 1 or x.shape != y.shape or len(x) == 0:
        raise CatalogError("needs two non-empty lists of numbers of equal length", source, field)
    if not (np.all(np.isfinite(x)) and np.all(x > 0) and np.all(np.diff(x) > 0)):
        raise CatalogError("x values must be positive and increase strictly", source, field)
    if not (np.all(np.isfinite(y)) and np.all(y > 0)):
        raise CatalogError("values must be positive numbers", source, field)
    if efficiencies and np.any(y > 1):
        raise CatalogError("efficiencies must lie in (0, 1]", source, field)
    return tuple(x.tolist()), tuple(y.tolist())


def log_interp(x: float | np.ndarray, xs: tuple[float, ...], ys: tuple[float, ...]) -> np.ndarray:
    """``ys`` at ``x``, linear in log(x), held flat outside ``xs``.

    >>> float(log_interp(10.0, (1.0, 100.0), (0.2, 0.6)))
    0.4
    """
    return np.interp(np.log(np.maximum(x, 1e-300)), log_grid(xs) if isinstance(xs, tuple) else np.log(xs), ys)


def log_interp_each(x: float, xs: tuple[float, ...], curves: tuple[tuple[float, ...], ...]) -> tuple[float, ...]:
    """:func:`log_interp` of several curves over the same ``xs`` at one ``x`` (its log taken once).

    >>> log_interp_each(10.0, (1.0, 100.0), ((0.2, 0.6), (1.0, 3.0)))
    (0.4, 2.0)
    """
    at = np.log(np.maximum(x, 1e-300))
    return tuple(float(np.interp(at, log_grid(xs), ys)) for ys in curves)


@lru_cache(maxsize=1024)
def log_grid(xs: tuple[float, ...]) -> np.ndarray:
    """``np.log(xs)`` of a curve's x values, read-only (cached: a search interpolates the same curves often)."""
    out = np.log(xs)
    out.flags.writeable = False
    return out
