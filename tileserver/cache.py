"""Bounded caches: encoded tiles (by bytes) and opened images (by count).

Storage and eviction are cachetools' LRU; what is ours is the policy around
it (a single huge answer never flushes the tile cache, concurrent misses of
an opened image share one load).  Both are touched only from the event loop
thread, so no locks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from cachetools import LRUCache
from multidict import CIMultiDict

from .tilerequest import TileRequest

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Tile:
    """An encoded response body, ready to send."""

    body: bytes
    content_type: str
    #: True when the body is a stored chunk sent as it is.
    passthrough: bool = False


def _body_size(tile: Tile) -> int:
    return len(tile.body)


class Parsed(NamedTuple):
    """A request URL already parsed for one image version (tileserver/pipeline.py)."""

    #: `ImageRef.key` of the image version it was parsed for.
    image: tuple[str, str]
    req: TileRequest
    #: The tile cache key of its answer.
    tile_key: tuple[str, str, str]
    etag: str
    extra: dict[str, str] | None
    #: Cache-Control value → the response headers, built on first use.
    headers: dict[str, CIMultiDict[str]]


#: Parsed URLs remembered; past that the oldest are forgotten first.
MAX_PARSED = 16384


class TileCache:
    """LRU of encoded tiles bounded by total body bytes, and the parsed-URL memo.

    The memo maps a tile URL (route, its parts, the raw query) to what parsing it
    gave for an image version: a warm tile then costs no parsing, key or ETag
    computation.  It holds only URLs that parsed without error, so a bad URL is
    refused as before; an entry for another image version is recomputed.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._data: LRUCache[Hashable, Tile] = LRUCache(max(1, max_bytes), getsizeof=_body_size)
        self.parsed: dict[Hashable, Parsed] = {}

    def remember(self, url: Hashable, parsed: Parsed) -> None:
        memo = self.parsed
        memo[url] = parsed
        if len(memo) > MAX_PARSED:  # first in, first out: no bookkeeping on hits
            del memo[next(iter(memo))]

    def __len__(self) -> int:
        return len(self._data)

    @property
    def nbytes(self) -> int:
        return int(self._data.currsize)

    def get(self, key: Hashable) -> Tile | None:
        # One lookup on the hit path (cachetools' get() tests membership first).
        try:
            return self._data[key]
        except KeyError:
            return None

    def put(self, key: Hashable, tile: Tile) -> None:
        if len(tile.body) > self.max_bytes // 8:  # one huge IIIF image must not flush every tile
            return
        self._data[key] = tile

    def clear(self) -> None:
        self._data.clear()
        self.parsed.clear()


class AsyncLRU[V]:
    """Count-bounded LRU whose misses are filled once even under concurrency.

    Concurrent requests for the same missing key share one loader call
    (single flight), so a burst of tiles of a new image opens it once.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._data: LRUCache[Hashable, V] = LRUCache(max(1, max_entries))
        self._inflight: dict[Hashable, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        return len(self._data)

    def evict(self, predicate: Callable[[Hashable], bool]) -> None:
        """Drop the entries whose key matches (an image was deleted or revoked)."""
        for key in [k for k in self._data if predicate(k)]:
            self._data.pop(key, None)

    def peek(self, key: Hashable) -> V | None:
        """The cached value, if any (no loading: the hot path's synchronous check)."""
        try:
            return self._data[key]
        except KeyError:
            return None

    async def get(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        try:
            return self._data[key]
        except KeyError:
            pass
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
        return value

    def clear(self) -> None:
        self._data.clear()
