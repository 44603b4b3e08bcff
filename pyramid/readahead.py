"""Encoded chunks of remote images: read ahead along a shard row, keep hot ones in memory.

A request to object storage costs a round trip (tens of milliseconds) whatever
its size up to a few hundred KiB.  A viewer asks for neighbouring tiles
together, and neighbours in a shard row are neighbours in the shard object
(C order), so one range GET of an aligned block of `BLOCK` chunks answers
the next tiles too.  Concurrent requests for chunks of one block wait for
the one GET in flight instead of sending their own.  Everything is bounded:
`RawChunkCache` by bytes (LRU), in-flight blocks by the readers waiting.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future

#: Chunks per read-ahead block (aligned within a shard row).
BLOCK = 8
#: Longest span read in one GET; a larger block falls back to the one chunk.
MAX_SPAN = 1024 * 1024

ChunkKey = tuple[int, ...]


class RawChunkCache:
    """Process-wide LRU of encoded chunks, bounded by bytes; thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._data: OrderedDict[ChunkKey, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._pending: dict[tuple[object, ...], Future[None]] = {}

    def get(self, key: ChunkKey) -> bytes | None:
        with self._lock:
            data = self._data.get(key)
            if data is not None:
                self._data.move_to_end(key)
            return data

    def put(self, key: ChunkKey, data: bytes) -> None:
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.nbytes -= len(old)
            self._data[key] = data
            self.nbytes += len(data)
            self._evict()

    def _evict(self) -> None:
        while self.nbytes > self.max_bytes and self._data:
            _, evicted = self._data.popitem(last=False)
            self.nbytes -= len(evicted)

    def resize(self, max_bytes: int) -> None:
        with self._lock:
            self.max_bytes = max(0, max_bytes)
            self._evict()

    def once(self, block: tuple[object, ...], fetch: Callable[[], None]) -> None:
        """Run ``fetch`` for ``block`` unless another thread is already doing it: then
        wait for that one (its exception, if any, is raised here too)."""
        with self._lock:
            fut = self._pending.get(block)
            owner = fut is None
            if owner:
                fut = self._pending[block] = Future()
        assert fut is not None
        if not owner:
            fut.result()
            return
        try:
            fetch()
        except BaseException as e:
            fut.set_exception(e)
            raise
        else:
            fut.set_result(None)
        finally:
            with self._lock:
                self._pending.pop(block, None)


#: Shared by every remote image in this process.
RAW = RawChunkCache(64 * 1024**2)


def block_ranges(index: tuple[tuple[int, int], ...], per: int, row: int, col: int,
                 empty: int) -> list[tuple[int, int, int]]:
    """(column, offset, nbytes) of the stored chunks of the aligned block holding
    ``col`` in shard row ``row``, when they lie within MAX_SPAN of each other."""
    first = (col // BLOCK) * BLOCK
    cells = []
    for c in range(first, min(per, first + BLOCK)):
        off, n = index[row * per + c]
        if off != empty:
            cells.append((c, off, n))
    if not cells:
        return []
    start = min(off for _, off, _ in cells)
    end = max(off + n for _, off, n in cells)
    if end - start > MAX_SPAN:
        return [cell for cell in cells if cell[0] == col]
    return cells
