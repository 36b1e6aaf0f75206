"""A bounded memo for pure functions whose cache key is not simply their arguments.

``functools.lru_cache`` keys on every argument; :class:`Memo` lets the caller name the key, so that inputs
which give the same result share it (two systems whose EP groups have the same NVLink domains share one
placement; two clusters with the same graph share one routing table).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")


class Memo:
    """Results by key, the least recently used dropped past ``maxsize``.

    >>> m = Memo(2)
    >>> m.get("a", lambda: 1), m.get("a", lambda: 2), len(m)
    (1, 1, 1)
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict = OrderedDict()

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The result stored under ``key``, else ``compute()`` stored (an exception stores nothing)."""
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = compute()
        self._items[key] = value
        if len(self._items) > self.maxsize:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
