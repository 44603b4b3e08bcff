"""The tile service: executor, caches and the async entry points handlers call."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from microtome.pyramid.reader import Pyramid, open_pyramid

from . import produce
from .cache import AsyncLRU, Tile, TileCache
from .iiif_params import Limits
from .metrics import Metrics
from .resolver import ImageRef
from .settings import TileSettings
from .tilerequest import TileRequest

T = TypeVar("T")


def etag_for(ref: ImageRef, request_key: str) -> str:
    """Strong ETag from the image version and the canonical request."""
    digest = hashlib.blake2b(f"{ref.version}\x00{request_key}".encode(), digest_size=12)
    return f'"{digest.hexdigest()}"'


class TileService:
    """Everything a tile request needs beyond the request itself."""

    def __init__(self, settings: TileSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.limits = Limits(settings.max_width, settings.max_height, settings.max_area)
        self.executor = ThreadPoolExecutor(max_workers=settings.threads,
                                           thread_name_prefix="tiles")
        # Pass-through reads (one pread each) get their own pool so a viewer's tiles
        # never wait behind a large IIIF render in the CPU pool.  Sized for object
        # storage, where a read waits a round trip (and readers of one read-ahead
        # block wait for each other): waiting threads cost no CPU.
        self.io_executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="tiles-io")
        self.tiles = TileCache(settings.cache_bytes)
        self.images: AsyncLRU[Pyramid] = AsyncLRU(settings.max_open_images)
        self._inflight: dict[Hashable, asyncio.Future[Tile]] = {}

    async def run(self, fn: Callable[..., T], *args: Any, io: bool = False) -> T:
        """Run sync work in the CPU pool (codecs) or, with ``io``, the I/O pool."""
        pool = self.io_executor if io else self.executor
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def open(self, ref: ImageRef) -> Pyramid:
        """The opened image, cached by (path, version): no metadata read per request."""
        return self.images.peek(ref.key) or await self.images.get(
            ref.key, lambda: self.run(open_pyramid, ref.path))

    def cached(self, key: Hashable) -> Tile | None:
        tile = self.tiles.get(key)
        if tile is not None:
            self.metrics.cache_hits += 1
        return tile

    async def tile(self, key: Hashable, pyr: Pyramid, req: TileRequest) -> Tile:
        """The encoded answer to ``req`` (the caller looked in the tile cache first).

        Whether it is a stored chunk passed through is decided here, once.
        """
        chunk = produce.chunk_for(pyr, req)
        return await self.produce(key, produce.tile, pyr, req, chunk, io=chunk is not None)

    async def produce(self, key: Hashable, fn: Callable[..., Tile], *args: Any,
                      io: bool = False) -> Tile:
        """Cached tile or fn(*args) in the executor; concurrent misses share one call."""
        tile = self.cached(key)
        if tile is not None:
            return tile
        pending = self._inflight.get(key)
        if pending is not None:
            self.metrics.cache_hits += 1
            return await asyncio.shield(pending)
        self.metrics.cache_misses += 1
        fut: asyncio.Future[Tile] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            tile = await self.run(fn, *args, io=io)
        except BaseException as e:
            if isinstance(e, asyncio.CancelledError):
                fut.cancel()
            else:
                fut.set_exception(e)
                fut.exception()
            raise
        finally:
            del self._inflight[key]
        fut.set_result(tile)
        self.tiles.put(key, tile)
        if tile.passthrough:
            self.metrics.passthrough += 1
        else:
            self.metrics.rendered += 1
        return tile

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.io_executor.shutdown(wait=True, cancel_futures=True)
        self.tiles.clear()
        self.images.clear()
