"""A bounded LRU cache whose entries also expire after a TTL.

Used to keep the database off the tile path: credentials → principal,
(user, image) → allowed, image id → storage path.  A short TTL bounds how
long a revoked key or membership keeps working in *other* processes; this
process evicts explicitly on revocation.

Storage, expiry and eviction are cachetools' `TLRUCache` (expired entries go
first, then the least recently used); ours is the per-entry TTL override and
the `on_forget` hooks a revocation needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from cachetools import TLRUCache

V = TypeVar("V")
_MISSING: Any = object()


def _expires(_key: Hashable, item: tuple[float, Any], now: float) -> float:
    return now + item[0]


class TTLCache[V]:
    def __init__(self, maxsize: int, ttl: float, clock: Callable[[], float] = time.monotonic):
        self.maxsize = maxsize
        self.ttl = ttl
        # Values are stored as (ttl, value) so each entry may carry its own lifetime.
        self._data: TLRUCache[Hashable, tuple[float, V]] = TLRUCache(
            max(1, maxsize), ttu=_expires, timer=clock)
        #: Called with the key on an explicit pop(), with None on clear() (never on
        #: expiry): lets a derived cache drop what a revocation invalidates.
        self.on_forget: list[Callable[[Hashable | None], None]] = []
        #: Bumped by every pop(), clear() and evict(): a memo built from this cache's
        #: answers (catalog.resolver's) is stale once it moved.
        self.changes = 0

    def get(self, key: Hashable, default: V | None = None) -> V | None:
        item = self._data.get(key, _MISSING)
        return default if item is _MISSING else item[1]

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data

    def set(self, key: Hashable, value: V, ttl: float | None = None) -> None:
        self._data[key] = (self.ttl if ttl is None else ttl, value)

    def pop(self, key: Hashable) -> None:
        self.changes += 1
        self._data.pop(key, None)
        for listener in self.on_forget:
            listener(key)

    def clear(self) -> None:
        self.changes += 1
        self._data.clear()
        for listener in self.on_forget:
            listener(None)

    def evict(self, predicate: Callable[[Hashable], bool]) -> None:
        self.changes += 1
        for key in [k for k in self._data if predicate(k)]:
            self._data.pop(key, None)

    def __len__(self) -> int:
        return len(self._data)
