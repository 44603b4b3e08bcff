"""Streaming pyramid build: level 0 from the source, each next level by 2x area
averaging, written shard by shard with bounded memory.

Shards are visited as a quadtree: a level-L shard is assembled from the
downsampled halves of its (up to) four level-(L-1) children, so at any time
only one shard-sized buffer per level is alive — memory is about
``levels x shard^2 x channels`` bytes whatever the slide area.  Inside a
shard the chunks (read, JPEG/zstd encode, downsample) run in a thread pool:
the codecs, OpenSlide and numpy release the GIL.

A subtree (one shard at level K and everything under it) is also the unit of
work sent to a dask.distributed cluster (`remote_subtree`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from microtome.pyramid.errors import SourceError
from microtome.pyramid.layout import ImageMeta

from .base import SourceReader
from .sinks import crc, encode_chunk


@dataclass(frozen=True)
class PlaneJob:
    """One independent 2D pyramid: a (t, z) plane and a group of channels."""

    t: int
    z: int
    channels: tuple[int, ...]


@dataclass
class Tally:
    """Work done, merged from threads and remote tasks."""

    chunks: int = 0
    bytes: int = 0
    #: level-0 chunks copied from the source's own JPEG tiles
    copied: int = 0
    #: (level, t, c, z, cy, cx) -> crc32 of the stored chunk, for verification.
    crcs: dict[tuple[int, ...], int] = field(default_factory=dict)
    #: channel -> list of (low, high) robust ranges from the smallest level.
    ranges: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return {"chunks": self.chunks, "bytes": self.bytes, "copied": self.copied,
                "crcs": self.crcs,
                "ranges": self.ranges}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.Lock()

    def merge(self, other: Tally) -> None:
        with self.lock:
            self.chunks += other.chunks
            self.bytes += other.bytes
            self.copied += other.copied
            self.crcs.update(other.crcs)
            for k, v in other.ranges.items():
                self.ranges.setdefault(k, []).extend(v)


def downsample2(a: np.ndarray) -> np.ndarray:
    """2x2 area average of (h, w, n); odd edges average only the pixels that exist.

    Rounds half up.  8-bit gray/RGB goes through Pillow's ``reduce`` (C, GIL
    released, 2x faster than numpy here), which computes exactly the same.
    """
    h, w = a.shape[:2]
    if a.dtype == np.uint8 and a.shape[2] in (1, 3) and h > 1 and w > 1:
        from PIL import Image
        img = Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)
        out = np.asarray(img.reduce(2))
        return out[..., None] if out.ndim == 2 else out
    if h % 2 or w % 2:
        a = np.pad(a, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    dt = a.dtype
    if dt.kind in "ui" and dt.itemsize <= 2:
        acc = np.uint16 if dt == np.uint8 else np.int32
        s = (a[0::2, 0::2].astype(acc) + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])
        return ((s + 2) >> 2).astype(dt)  # round half up
    if dt.kind in "uib":
        s64 = (a[0::2, 0::2].astype(np.float64) + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])
        return np.floor(s64 / 4 + 0.5).astype(dt)
    sf = (a[0::2, 0::2].astype(np.float64) + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])
    return (sf / 4).astype(dt)


def half_decode(jpeg: bytes, tile: int) -> np.ndarray | None:
    """A baseline JPEG tile decoded at half size in the DCT domain (libjpeg-turbo
    scaled IDCT): for levels built above copied level-0 tiles, about half the
    work of a full decode plus a 2x2 average.  Differs from the area average of
    the full decode by less than JPEG's own loss (measured in
    tests/converters/test_svs.py); None if the stream does not decode to
    (tile/2, tile/2, 3)."""
    import imagecodecs

    try:
        out = np.asarray(imagecodecs.jpeg8_decode(jpeg, scale=2))
    except Exception:
        return None
    return out if out.shape == (tile // 2, tile // 2, 3) and out.dtype == np.uint8 else None


class Builder:
    """Builds every level of one `PlaneJob` into a sink."""

    def __init__(self, reader: SourceReader, meta: ImageMeta, sink: Any, quality: int,
                 pool: Executor, on_progress: Callable[[Tally], None] | None = None,
                 remote: RemoteFetcher | None = None, copy_jpeg: bool = True) -> None:
        self.reader = reader
        self.meta = meta
        self.sink = sink
        self.quality = quality
        self.pool = pool
        self.tally = Tally()
        self.on_progress = on_progress
        self.remote = remote
        self.last = len(meta.levels) - 1
        # Sources without tiles (striped TIFF, decoded pictures) are read one
        # shard at a time; tiled ones one chunk at a time, in the threads.
        self.whole_shard_reads = reader.info.tile_size == 0
        # Source JPEG tiles on our chunk grid are copied as they are.
        self.copy_jpeg = (meta.kind == "rgb" and sink.ngff == "0.5" and copy_jpeg
                          and reader.info.tile_size == meta.tile_size)

    # -- geometry -----------------------------------------------------------
    def grid(self, level: int) -> tuple[int, int]:
        lv, s = self.meta.levels[level], self.meta.shard_size
        return -(-lv.height // s), -(-lv.width // s)

    def shard_size(self, level: int, sy: int, sx: int) -> tuple[int, int]:
        lv, s = self.meta.levels[level], self.meta.shard_size
        return min(s, lv.height - sy * s), min(s, lv.width - sx * s)

    def dtype(self) -> np.dtype[Any]:
        return np.dtype(self.meta.dtype)

    # -- build --------------------------------------------------------------
    def build(self, job: PlaneJob) -> None:
        """Every level of one plane job, top shard first (it pulls its children)."""
        self.shard(job, self.last, 0, 0, None, (0, 0))

    def shard(self, job: PlaneJob, level: int, sy: int, sx: int,
              parent: np.ndarray | None, poff: tuple[int, int]) -> None:
        """Write shard (level, sy, sx) and put its 2x downsample into ``parent`` at ``poff``."""
        h, w = self.shard_size(level, sy, sx)
        s = self.meta.shard_size
        src: np.ndarray | None = None
        if level > 0:
            src = np.empty((h, w, len(job.channels)), self.dtype())
            ny, nx = self.grid(level - 1)
            for dy in (0, 1):
                for dx in (0, 1):
                    cy, cx = 2 * sy + dy, 2 * sx + dx
                    if cy >= ny or cx >= nx:
                        continue
                    off = (dy * s // 2, dx * s // 2)
                    if self.remote is not None and level - 1 == self.remote.level:
                        half = self.remote.fetch(job, cy, cx)
                        src[off[0]:off[0] + half.shape[0], off[1]:off[1] + half.shape[1]] = half
                    else:
                        self.shard(job, level - 1, cy, cx, src, off)
        elif self.whole_shard_reads:
            src = self._read(job, sx * s, sy * s, w, h)
        t = self.meta.tile_size
        futures: dict[tuple[int, int], Future[list[bytes]]] = {}
        for r in range(-(-h // t)):
            for c in range(-(-w // t)):
                futures[(r, c)] = self.pool.submit(
                    self._chunk, job, level, sy, sx, r, c, h, w, src, parent, poff)
        encoded = {rc: f.result() for rc, f in futures.items()}
        self._write(job, level, sy, sx, encoded)
        if self.on_progress is not None:
            self.on_progress(self.tally)

    def _read(self, job: PlaneJob, x: int, y: int, w: int, h: int) -> np.ndarray:
        chans = None if self.meta.kind == "rgb" else list(job.channels)
        block = self.reader.read_region(x, y, w, h, job.t, job.z, chans)
        if block.shape[:2] != (h, w) or block.shape[2] != len(job.channels):
            raise SourceError(f"reader returned {block.shape} for a {w}x{h} region")
        if block.dtype != self.dtype():
            block = block.astype(self.dtype())
        return block

    def _chunk(self, job: PlaneJob, level: int, sy: int, sx: int, r: int, c: int,
               h: int, w: int, src: np.ndarray | None, parent: np.ndarray | None,
               poff: tuple[int, int]) -> list[bytes]:
        t, s = self.meta.tile_size, self.meta.shard_size
        by, bx = r * t, c * t
        bh, bw = min(t, h - by), min(t, w - bx)
        raw = None
        if level == 0 and self.copy_jpeg and src is None:
            raw = self.reader.raw_tile(sx * s + bx, sy * s + by, t)
        # A copied whole tile's pixels are only needed at half size (the next
        # level): libjpeg-turbo decodes them there directly (DCT scaling).
        half = (half_decode(raw, t) if raw is not None and parent is not None
                and (bh, bw) == (t, t) else None)
        block: np.ndarray | None = None
        if src is not None:
            block = src[by:by + bh, bx:bx + bw]
        elif half is None:
            block = self._read(job, sx * s + bx, sy * s + by, bw, bh)
        if raw is not None:
            out = [raw]  # the source's own JPEG: no generation loss, no encode
            with self.tally.lock:
                self.tally.copied += 1
        else:
            assert block is not None
            out = encode_chunk(self.meta, block, self.quality, self.sink.ngff)
        if parent is not None:
            if half is None:
                assert block is not None
                half = downsample2(block)
            y0, x0 = poff[0] + by // 2, poff[1] + bx // 2
            parent[y0:y0 + half.shape[0], x0:x0 + half.shape[1]] = half
        if level == self.last and self.meta.kind == "nd":
            assert block is not None
            self._record_range(job, block)
        return out

    def _record_range(self, job: PlaneJob, block: np.ndarray) -> None:
        with self.tally.lock:
            for i, ch in enumerate(job.channels):
                plane = block[..., i].astype(np.float64)
                finite = plane[np.isfinite(plane)]
                if finite.size:
                    lo, hi = np.percentile(finite, [0.1, 99.9])
                    self.tally.ranges.setdefault(ch, []).append((float(lo), float(hi)))

    def _write(self, job: PlaneJob, level: int, sy: int, sx: int,
               encoded: dict[tuple[int, int], list[bytes]]) -> None:
        lv = self.meta.levels[level]
        per = self.meta.chunks_per_shard_side
        groups = [0] if self.meta.kind == "rgb" else list(job.channels)
        nbytes = 0
        crcs: dict[tuple[int, ...], int] = {}
        for i, ch in enumerate(groups):
            chunks = {rc: enc[i] for rc, enc in encoded.items()}
            nbytes += self.sink.write_shard(lv, sy, sx, chunks, job.t, ch, job.z)
            for (r, c), data in chunks.items():
                crcs[(level, job.t, ch, job.z, sy * per + r, sx * per + c)] = crc(data)
        with self.tally.lock:
            self.tally.chunks += len(encoded) * len(groups)
            self.tally.bytes += nbytes
            self.tally.crcs.update(crcs)


def zorder(builder: Builder, top: int, level: int) -> Iterator[tuple[int, int]]:
    """The order in which `Builder.shard` visits the shards of ``level``."""
    def walk(lv: int, sy: int, sx: int) -> Iterator[tuple[int, int]]:
        if lv == level:
            yield sy, sx
            return
        ny, nx = builder.grid(lv - 1)
        for dy in (0, 1):
            for dx in (0, 1):
                cy, cx = 2 * sy + dy, 2 * sx + dx
                if cy < ny and cx < nx:
                    yield from walk(lv - 1, cy, cx)
    return walk(top, 0, 0)


class RemoteFetcher:
    """Runs level-``level`` subtrees on a dask.distributed client, a bounded
    window of them in flight, in the order the local build will ask for them."""

    def __init__(self, client: Any, spec: dict[str, Any], level: int, window: int) -> None:
        self.client = client
        self.spec = spec
        self.level = level
        self.window = max(1, window)
        self.builder: Builder | None = None
        self._order: Iterator[tuple[PlaneJob, int, int]] | None = None
        self._pending: list[tuple[tuple[PlaneJob, int, int], Any]] = []

    def start(self, builder: Builder, jobs: list[PlaneJob]) -> None:
        self.builder = builder
        self._order = ((job, sy, sx) for job in jobs
                       for sy, sx in zorder(builder, builder.last, self.level))
        self._fill()

    def _fill(self) -> None:
        assert self._order is not None
        while len(self._pending) < self.window:
            nxt = next(self._order, None)
            if nxt is None:
                return
            job, sy, sx = nxt
            fut = self.client.submit(remote_subtree, self.spec, job, self.level, sy, sx,
                                     pure=False)
            self._pending.append((nxt, fut))

    def fetch(self, job: PlaneJob, sy: int, sx: int) -> np.ndarray:
        assert self.builder is not None
        key, fut = self._pending.pop(0)
        if key != (job, sy, sx):  # the visiting order is deterministic
            raise RuntimeError("distributed build out of order")
        half, tally = fut.result()
        self._fill()
        self.builder.tally.merge(tally)
        if self.builder.on_progress is not None:
            self.builder.on_progress(self.builder.tally)
        return half

    def cancel(self) -> None:
        for _key, fut in self._pending:
            fut.cancel()
        self._pending.clear()


_WORKER_SOURCES: dict[str, SourceReader] = {}
_WORKER_LOCK = threading.Lock()


def remote_subtree(spec: dict[str, Any], job: PlaneJob, level: int, sy: int, sx: int
                   ) -> tuple[np.ndarray, Tally]:
    """On a dask worker: build one subtree, return its 2x downsample and tally."""
    from concurrent.futures import ThreadPoolExecutor

    from .sinks import make_sink
    from .sources import open_source

    meta: ImageMeta = spec["meta"]
    key = repr(spec["src"])
    with _WORKER_LOCK:
        reader = _WORKER_SOURCES.get(key)
        if reader is None:
            for old in _WORKER_SOURCES.values():
                old.close()
            _WORKER_SOURCES.clear()
            reader = open_source(spec["src"])
            reader.configure(**spec.get("choices", {}))
            _WORKER_SOURCES[key] = reader
    sink = make_sink(spec["root"], meta, spec["quality"])
    with ThreadPoolExecutor(spec["threads"]) as pool:
        b = Builder(reader, meta, sink, spec["quality"], pool,
                    copy_jpeg=spec.get("copy_jpeg", True))
        h, w = b.shard_size(level, sy, sx)
        half = np.empty((-(-h // 2), -(-w // 2), len(job.channels)), np.dtype(meta.dtype))
        b.shard(job, level, sy, sx, half, (0, 0))
    return half, b.tally
