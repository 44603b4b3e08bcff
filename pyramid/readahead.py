"""Encoded chunks of remote images: read ahead a band of shard rows, keep hot ones in memory.

A request to object storage costs a round trip (tens of milliseconds) whatever
its size up to a few hundred KiB.  A viewer asks for neighbouring tiles
together, and a shard stores its chunks in C order, so an aligned band of
`ROWS` whole shard rows is one contiguous span of the shard object: one
range GET of it answers the tiles around the one asked for, in both
directions.  A band longer than `MAX_SPAN` falls back to the chunk's own
shard row, then to the chunk alone.  Concurrent requests for chunks of one
band wait for the one GET in flight instead of sending their own (`once`,
also used for shard indexes).  Everything is bounded: `RawChunkCache` by
bytes (LRU), in-flight reads by the readers waiting.

Measured (bench/s3tiles.py, 3000 panning tiles of a 32768 x 24576 slide,
16 x 16 chunks per shard): 8-chunk blocks within one row needed 0.16 GETs
per tile without single-flight indexes (0.28 with duplicate index reads),
bands of 4 rows 0.036 in the sequential count.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future

#: Shard rows per read-ahead band (aligned within the shard).
ROWS = 4
#: Longest span read in one GET; a longer band falls back to the row, then the chunk.
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

    def once(self, block: tuple[object, ...], fetch: Callable[[], object]) -> None:
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
                 empty: int) -> tuple[tuple[object, ...], list[tuple[int, int, int, int]]]:
    """What to read with the chunk at (``row``, ``col``) of a shard: a name of the group
    (the same for every chunk of it, so concurrent readers share one GET) and the
    (row, column, offset, nbytes) of its stored chunks, which lie within MAX_SPAN.

    The group is the aligned band of ROWS rows holding the chunk, else its row, else
    the chunk alone."""
    def cells(rows: range, cols: range) -> list[tuple[int, int, int, int]]:
        out = []
        for r in rows:
            for c in cols:
                off, n = index[r * per + c]
                if off != empty:
                    out.append((r, c, off, n))
        return out

    def span(group: list[tuple[int, int, int, int]]) -> int:
        return max(o + n for _, _, o, n in group) - min(o for _, _, o, _ in group)

    first = (row // ROWS) * ROWS
    band = cells(range(first, min(per, first + ROWS)), range(per))
    if band and span(band) <= MAX_SPAN:
        return ("band", first), band
    line = [cell for cell in band if cell[0] == row]
    if line and span(line) <= MAX_SPAN:
        return ("row", row), line
    return ("chunk", row, col), [cell for cell in line if cell[1] == col]
