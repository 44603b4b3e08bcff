"""A small bounded LRU cache whose entries also expire after a TTL.

Used to keep the database off the tile path: credentials → principal,
(user, image) → allowed, image id → storage path.  A short TTL bounds how
long a revoked key or membership keeps working in *other* processes; this
process evicts explicitly on revocation.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

V = TypeVar("V")
_MISSING = object()


class TTLCache[V]:
    def __init__(self, maxsize: int, ttl: float, clock: Callable[[], float] = time.monotonic):
        self.maxsize = maxsize
        self.ttl = ttl
        self._clock = clock
        self._data: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        #: Called with the key on an explicit pop(), with None on clear() (never on
        #: expiry): lets a derived cache drop what a revocation invalidates.
        self.on_forget: list[Callable[[Hashable | None], None]] = []

    def get(self, key: Hashable, default: V | None = None) -> V | None:
        item = self._data.get(key)
        if item is None:
            return default
        expires, value = item
        if expires < self._clock():
            del self._data[key]
            return default
        self._data.move_to_end(key)
        return value

    def __contains__(self, key: Hashable) -> bool:
        return self.get(key, _MISSING) is not _MISSING  # type: ignore[arg-type]

    def set(self, key: Hashable, value: V, ttl: float | None = None) -> None:
        self._data[key] = (self._clock() + (self.ttl if ttl is None else ttl), value)
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def pop(self, key: Hashable) -> None:
        self._data.pop(key, None)
        for listener in self.on_forget:
            listener(key)

    def clear(self) -> None:
        self._data.clear()
        for listener in self.on_forget:
            listener(None)

    def evict(self, predicate: Callable[[Hashable], bool]) -> None:
        for key in [k for k in self._data if predicate(k)]:
            del self._data[key]

    def __len__(self) -> int:
        return len(self._data)
