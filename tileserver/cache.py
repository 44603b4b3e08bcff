"""Bounded caches: encoded tiles (by bytes) and opened images (by count).

Both are touched only from the event loop thread, so no locks.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import TypeVar

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Tile:
    """An encoded response body, ready to send."""

    body: bytes
    content_type: str
    #: True when the body is a stored chunk sent as it is.
    passthrough: bool = False


class TileCache:
    """LRU of encoded tiles bounded by total body bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._data: OrderedDict[Hashable, Tile] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: Hashable) -> Tile | None:
        tile = self._data.get(key)
        if tile is not None:
            self._data.move_to_end(key)
        return tile

    def put(self, key: Hashable, tile: Tile) -> None:
        size = len(tile.body)
        if size > self.max_bytes // 8:  # one huge IIIF image must not flush every tile
            return
        old = self._data.pop(key, None)
        if old is not None:
            self.nbytes -= len(old.body)
        self._data[key] = tile
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            _, evicted = self._data.popitem(last=False)
            self.nbytes -= len(evicted.body)

    def clear(self) -> None:
        self._data.clear()
        self.nbytes = 0


class AsyncLRU[V]:
    """Count-bounded LRU whose misses are filled once even under concurrency.

    Concurrent requests for the same missing key share one loader call
    (single flight), so a burst of tiles of a new image opens it once.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[Hashable, V] = OrderedDict()
        self._inflight: dict[Hashable, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        return len(self._data)

    def evict(self, predicate: Callable[[Hashable], bool]) -> None:
        """Drop the entries whose key matches (an image was deleted or revoked)."""
        for key in [k for k in self._data if predicate(k)]:
            del self._data[key]

    async def get(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
            return value
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            value = await load()
        except BaseException as e:
            if isinstance(e, asyncio.CancelledError):
                fut.cancel()
            else:
                fut.set_exception(e)
                fut.exception()  # mark retrieved: nobody else may be waiting
            raise
        finally:
            del self._inflight[key]
        fut.set_result(value)
        self._data[key] = value
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)
        return value

    def clear(self) -> None:
        self._data.clear()
