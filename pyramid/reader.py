"""Read stored pyramids: metadata, raw inner chunks, decoded regions.

Synchronous on purpose: callers on an event loop run these in an executor.
Our own sharded layout is read directly (one pread for a chunk, shard
indexes cached); anything else zarr can open (NGFF 0.4 / foreign OME-Zarr)
goes through zarr.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np

from . import diskcache
from .errors import NotFound, StorageError, Unprocessable
from .layout import EMPTY, ImageMeta, Level, index_nbytes, shard_key, unpack_index
from .metadata import meta_from_attributes
from .readahead import RAW, block_ranges
from .stores import ObjectMissing, Store, is_remote, open_store


def _load_json(store: Store, key: str) -> dict[str, Any]:
    try:
        doc = json.loads(store.get(key))
    except ObjectMissing as e:
        raise NotFound("image not found") from e
    except (OSError, ValueError) as e:
        raise StorageError("image metadata is unreadable") from e
    if not isinstance(doc, dict):
        raise StorageError("image metadata is malformed")
    return doc


def _try_json(store: Store, key: str) -> dict[str, Any] | None:
    """The document at ``key``, or None when there is none."""
    try:
        return _load_json(store, key)
    except NotFound:
        return None


def _is_ours(level_doc: dict[str, Any]) -> bool:
    try:
        codecs = level_doc["codecs"]
        return (level_doc.get("zarr_format") == 3 and len(codecs) == 1
                and codecs[0]["name"] == "sharding_indexed"
                and codecs[0]["configuration"].get("index_location", "end") == "end")
    except (KeyError, TypeError, IndexError):
        return False


class DecodedChunkCache:
    """Process-wide LRU of decoded chunks, bounded by bytes; thread-safe.

    Unaligned regions (IIIF regions, edge tiles, resampled levels) decode
    the same chunks again and again while a viewer pans; decoding a JPEG
    chunk costs far more than looking it up.  Keys start with a per-Pyramid
    token, so a replaced image never sees its predecessor's pixels.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._data: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, ...]) -> np.ndarray | None:
        with self._lock:
            arr = self._data.get(key)
            if arr is not None:
                self._data.move_to_end(key)
            return arr

    def resize(self, max_bytes: int) -> None:
        with self._lock:
            self.max_bytes = max(0, max_bytes)
            self._evict()

    def _evict(self) -> None:
        while self.nbytes > self.max_bytes and self._data:
            _, evicted = self._data.popitem(last=False)
            self.nbytes -= evicted.nbytes

    def put(self, key: tuple[int, ...], arr: np.ndarray) -> None:
        if arr.nbytes > self.max_bytes // 4:
            return
        arr.flags.writeable = False  # shared between requests: never modified in place
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.nbytes -= old.nbytes
            self._data[key] = arr
            self.nbytes += arr.nbytes
            self._evict()


#: Shared by every opened image in this process; the tile server sizes it from
#: its settings at start-up (`configure_decoded_cache`).
DECODED = DecodedChunkCache(96 * 1024**2)


def configure_decoded_cache(max_bytes: int) -> None:
    """Resize the process-wide decoded-chunk cache (evicting down to the new bound)."""
    DECODED.resize(max_bytes)


_tokens = itertools.count()


class Pyramid:
    """An opened image.  Thread-safe: the tile server shares one per image."""

    def __init__(self, root: str | os.PathLike[str], meta: ImageMeta, direct: bool,
                 store: Store | None = None) -> None:
        #: A local path, or the URL of a remote image (``s3://bucket/prefix/x.ome.zarr``).
        self.root: Path | str = str(root) if is_remote(root) else Path(root)
        self.store: Store = store if store is not None else open_store(root)
        self.meta = meta
        self.direct = direct
        self._index_cache: OrderedDict[str, tuple[tuple[int, int], ...] | None] = OrderedDict()
        self._lock = threading.Lock()
        self._zarr_arrays: dict[str, Any] = {}
        self._token = next(_tokens)
        #: Quality of the stored JPEG chunks, when known (None for zstd or foreign data).
        self.jpeg_quality: int | None = None
        #: Axis names of the stored arrays (foreign images may have fewer than 5).
        self.axes: list[str] = ["c", "y", "x"] if meta.kind == "rgb" else list("tczyx")

    def decoded_chunk(self, level: int, cy: int, cx: int, t: int = 0, c: int = 0,
                      z: int = 0) -> np.ndarray:
        """`decode_chunk(chunk_bytes(...))` through the process-wide decoded-chunk cache.

        The returned array is read-only (shared).
        """
        key = (self._token, level, cy, cx, t, c, z)
        arr = DECODED.get(key)
        if arr is None:
            arr = self.decode_chunk(self.chunk_bytes(level, cy, cx, t, c, z))
            DECODED.put(key, arr)
        return arr

    # -- raw chunks ---------------------------------------------------------
    def _shard_index(self, key: str) -> tuple[tuple[int, int], ...] | None:
        with self._lock:
            if key in self._index_cache:
                self._index_cache.move_to_end(key)
                return self._index_cache[key]
        if self.store.remote:
            # One GET per shard index however many requests need it at once.
            RAW.once((self._token, "index", key), lambda: self._index_cached(key) or
                     self._load_index(key))
            with self._lock:
                if key in self._index_cache:
                    return self._index_cache[key]
        return self._load_index(key)

    def _index_cached(self, key: str) -> bool:
        with self._lock:
            return key in self._index_cache

    def _load_index(self, key: str) -> tuple[tuple[int, int], ...] | None:
        """Read one shard index into the cache (and return it)."""
        per = self.meta.chunks_per_shard_side
        n = index_nbytes(per)
        try:
            # One request (a suffix range on remote stores): no size lookup first.
            raw, size = self.store.get_suffix(key, n)
            if size < n or len(raw) != n:
                raise StorageError("stored tile data is damaged (short shard)")
            idx: tuple[tuple[int, int], ...] | None = unpack_index(raw, per)
        except ObjectMissing:
            if not self.store.exists("zarr.json"):
                raise NotFound("image not found") from None
            idx = None  # a shard never written: all fill value
        except ValueError as e:
            raise StorageError("stored tile data is damaged (bad shard index)") from e
        except OSError as e:
            raise StorageError("stored tile data is unreadable") from e
        with self._lock:
            self._index_cache[key] = idx
            if len(self._index_cache) > 4096:
                self._index_cache.popitem(last=False)
        return idx

    def _locate(self, level: int, cy: int, cx: int, t: int, c: int,
                z: int) -> tuple[str, int, int] | None:
        """(shard key, offset, nbytes) of an inner chunk, None when never written."""
        if not self.direct:
            raise StorageError("raw chunk access needs our sharded layout")
        lv = self.meta.levels[level]
        per = self.meta.chunks_per_shard_side
        key = shard_key(self.meta, lv, cy // per, cx // per, t, c, z)
        idx = self._shard_index(key)
        if idx is None:
            return None
        offset, nbytes = idx[(cy % per) * per + (cx % per)]
        if offset == EMPTY:
            return None
        return key, offset, nbytes

    def _read_ranges(self, key: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        try:
            out = self.store.get_ranges(key, ranges)
        except ObjectMissing:
            # The index was cached but the shard is gone: the image was deleted
            # (or replaced) while being served.
            with self._lock:
                self._index_cache.pop(key, None)
            raise NotFound("image not found") from None
        except OSError as e:
            raise StorageError("stored tile data is unreadable") from e
        if any(len(d) != n for d, (_, n) in zip(out, ranges, strict=True)):
            raise StorageError("stored tile data is damaged (truncated shard)")
        return out

    def chunk_bytes(self, level: int, cy: int, cx: int, t: int = 0, c: int = 0,
                    z: int = 0) -> bytes | None:
        """The encoded inner chunk at chunk row/col (cy, cx), or None if never written."""
        if self.store.remote:
            return self._remote_chunk(level, cy, cx, t, c, z)
        where = self._locate(level, cy, cx, t, c, z)
        if where is None:
            return None
        key, offset, nbytes = where
        return self._read_ranges(key, [(offset, nbytes)])[0]

    def _remote_chunk(self, level: int, cy: int, cx: int, t: int, c: int,
                      z: int) -> bytes | None:
        """`chunk_bytes` for object storage: hot chunks from memory, misses read with
        their neighbours in a band of shard rows (one GET per band, see pyramid.readahead)."""
        key = (self._token, level, cy, cx, t, c, z)
        hit = RAW.get(key)
        if hit is not None:
            return hit
        disk = diskcache.DISK
        if disk is not None:
            hit = disk.get(self._disk_key(level, cy, cx, t, c, z))
            if hit is not None:
                RAW.put(key, hit)
                return hit
        where = self._locate(level, cy, cx, t, c, z)
        if where is None:
            return None
        shard, offset, nbytes = where
        per = self.meta.chunks_per_shard_side
        row, col = cy % per, cx % per
        idx = self._shard_index(shard)
        assert idx is not None
        group, cells = block_ranges(idx, per, row, col, EMPTY)

        def fetch() -> None:
            start = min(off for _, _, off, _ in cells)
            end = max(off + n for _, _, off, n in cells)
            span = self._read_ranges(shard, [(start, end - start)])[0]
            for row_, col_, off, n in cells:
                data = span[off - start:off - start + n]
                cy_, cx_ = cy - row + row_, cx - col + col_
                RAW.put((self._token, level, cy_, cx_, t, c, z), data)
                if disk is not None:
                    disk.put(self._disk_key(level, cy_, cx_, t, c, z), data)

        RAW.once((self._token, shard, *group), fetch)
        hit = RAW.get(key)
        if hit is None:  # evicted at once (a tiny cache): read it alone
            hit = self._read_ranges(shard, [(offset, nbytes)])[0]
        return hit

    def _disk_key(self, level: int, cy: int, cx: int, t: int, c: int, z: int) -> str:
        """The chunk's name in the shared disk cache: location, pixel version, chunk."""
        return diskcache.DiskChunkCache.key(self.root, self.meta.version, level, cy, cx, t, c, z)

    def _prefetch(self, level: int, cells: list[tuple[int, int, int]], t: int,
                  z: int) -> dict[tuple[int, int, int], np.ndarray]:
        """Decoded chunks (cy, cx, channel) of a region not yet in the decoded cache,
        fetched per shard in one coalesced request each (remote stores)."""
        wanted: dict[str, list[tuple[tuple[int, int, int], int, int]]] = {}
        out: dict[tuple[int, int, int], np.ndarray] = {}
        disk = diskcache.DISK
        for cy, cx, ch in cells:
            if DECODED.get((self._token, level, cy, cx, t, ch, z)) is not None:
                continue
            if disk is not None:
                hit = disk.get(self._disk_key(level, cy, cx, t, ch, z))
                if hit is not None:
                    arr = self.decode_chunk(hit)
                    DECODED.put((self._token, level, cy, cx, t, ch, z), arr)
                    out[(cy, cx, ch)] = arr
                    continue
            where = self._locate(level, cy, cx, t, ch, z)
            if where is None:
                continue
            key, offset, nbytes = where
            wanted.setdefault(key, []).append(((cy, cx, ch), offset, nbytes))
        for key, items in wanted.items():
            datas = self._read_ranges(key, [(off, n) for _, off, n in items])
            for (cell, _, _), data in zip(items, datas, strict=True):
                if disk is not None:
                    disk.put(self._disk_key(level, cell[0], cell[1], t, cell[2], z), data)
                arr = self.decode_chunk(data)
                DECODED.put((self._token, level, cell[0], cell[1], t, cell[2], z), arr)
                out[cell] = arr
        return out

    def decode_chunk(self, data: bytes | None, dtype: np.dtype[Any] | None = None) -> np.ndarray:
        """Decode an inner chunk to (T, T, 3) for rgb or (T, T) for nd."""
        t = self.meta.tile_size
        if data is None:
            shape = (t, t, 3) if self.meta.kind == "rgb" else (t, t)
            return np.zeros(shape, dtype=np.dtype(self.meta.dtype))
        try:
            if self.meta.kind == "rgb":
                arr = imagecodecs.jpeg8_decode(data)
                if arr.shape != (t, t, 3):
                    raise ValueError("unexpected chunk shape")
                return arr
            raw = imagecodecs.zstd_decode(data)
            dt = np.dtype(self.meta.dtype).newbyteorder("<")
            return np.frombuffer(raw, dtype=dt).reshape(t, t)
        except Exception as e:  # codec errors have no common base class
            raise StorageError("stored tile data is damaged (cannot decode chunk)") from e

    # -- regions ------------------------------------------------------------
    def read_region(self, level: int, x: int, y: int, w: int, h: int, t: int = 0, z: int = 0,
                    channels: list[int] | None = None) -> np.ndarray:
        """Pixels of a rectangle of one level, clipped by the caller to the level.

        Returns (h, w, 3) uint8 for rgb images and (h, w, n_channels) in the
        stored dtype for nd images.
        """
        lv = self.meta.levels[level]
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > lv.width or y + h > lv.height:
            raise ValueError("region outside level")
        if not self.direct:
            return self._read_region_zarr(lv, x, y, w, h, t, z, channels)
        ts = self.meta.tile_size
        chans = [0] if self.meta.kind == "rgb" else (channels or list(range(self.meta.size_c)))
        nc = 3 if self.meta.kind == "rgb" else len(chans)
        out = np.zeros((h, w, nc), dtype=np.dtype(self.meta.dtype))
        rows = range(y // ts, (y + h - 1) // ts + 1)
        cols = range(x // ts, (x + w - 1) // ts + 1)
        pre: dict[tuple[int, int, int], np.ndarray] = {}
        if self.store.remote and len(rows) * len(cols) * len(chans) > 1:
            pre = self._prefetch(level, [(cy, cx, ch) for cy in rows for cx in cols
                                         for ch in chans], t, z)
        for cy in rows:
            for cx in cols:
                y0, x0 = max(y, cy * ts), max(x, cx * ts)
                y1, x1 = min(y + h, (cy + 1) * ts), min(x + w, (cx + 1) * ts)
                for i, ch in enumerate(chans):
                    tile = pre.get((cy, cx, ch))
                    if tile is None:
                        tile = self.decoded_chunk(level, cy, cx, t, ch, z)
                    part = tile[y0 - cy * ts:y1 - cy * ts, x0 - cx * ts:x1 - cx * ts]
                    if self.meta.kind == "rgb":
                        out[y0 - y:y1 - y, x0 - x:x1 - x] = part
                    else:
                        out[y0 - y:y1 - y, x0 - x:x1 - x, i] = part
        return out

    def _zarr_location(self, relpath: str) -> Any:
        """Where zarr finds one level: a path, or a zarr store over the remote object store."""
        if isinstance(self.root, Path):
            return str(self.root / relpath)
        from zarr.storage import ObjectStore
        from zarr.storage._common import StorePath

        client: Any = getattr(self.store, "_client", None)
        prefix = getattr(self.store, "prefix", "")
        return StorePath(ObjectStore(client, read_only=True), f"{prefix}/{relpath}".strip("/"))

    def _read_region_zarr(self, lv: Level, x: int, y: int, w: int, h: int, t: int, z: int,
                          channels: list[int] | None) -> np.ndarray:
        import zarr

        arr = self._zarr_arrays.get(lv.path)
        if arr is None:
            try:
                arr = zarr.open_array(self._zarr_location(lv.path), mode="r")
            except Exception as e:
                raise StorageError("stored level is unreadable") from e
            self._zarr_arrays[lv.path] = arr
        try:
            if self.meta.kind == "rgb":
                block = np.asarray(arr[:, y:y + h, x:x + w])
                return np.ascontiguousarray(block.transpose(1, 2, 0))
            chans = channels or list(range(self.meta.size_c))
            pick: dict[str, int | slice] = {"t": t, "z": z, "c": slice(None),
                                            "y": slice(y, y + h), "x": slice(x, x + w)}
            block = np.asarray(arr[tuple(pick.get(a, 0) for a in self.axes)])
            kept = [a for a in self.axes if a in "cyx"]
            if "c" not in kept:
                block, kept = block[None], ["c", *kept]
            block = np.moveaxis(block, [kept.index(a) for a in "cyx"], [0, 1, 2])[chans]
            return np.ascontiguousarray(block.transpose(1, 2, 0))
        except Exception as e:
            raise StorageError("stored tile data is damaged") from e


#: A zarr store that is readable but holds no NGFF image: the id exists, so not
#: NotFound, and nothing is damaged, so not StorageError ("malformed").
_NOT_OME = "not an OME-Zarr image"


def open_pyramid(root: str | os.PathLike[str]) -> Pyramid:
    """Open an image written by us (or any NGFF 0.4/0.5 image zarr can read, or one of
    our TileDB images, pyramid/tiledbstore.py), at a local path or a store URL
    (``s3://bucket/prefix/x.ome.zarr``).

    Raises NotFound if there is no image, Unprocessable if the directory is a
    zarr store without NGFF multiscales (a plain array, a bare group),
    StorageError if it is damaged, Unavailable if remote storage does not answer.
    """
    store = open_store(root)
    group = _try_json(store, "zarr.json")
    if group is not None:
        if group.get("node_type") == "array":
            raise Unprocessable(_NOT_OME + " (a plain zarr array)")
        attrs = group.get("attributes", {})
        level_doc_name = "zarr.json"
    else:
        zattrs = _try_json(store, ".zattrs")
        is_array = store.exists(".zarray")
        if zattrs is not None and not is_array:
            attrs = zattrs
            level_doc_name = ".zarray"
        elif is_array or store.exists(".zgroup"):
            raise Unprocessable(_NOT_OME + (" (a plain zarr array)" if is_array
                                            else " (no NGFF multiscales metadata)"))
        else:
            from .tiledbstore import is_tiledb_image, open_tiledb

            if is_tiledb_image(store):  # TileDB arrays: the same interface
                return open_tiledb(root, store)
            raise NotFound("image not found")
    if isinstance(attrs, dict) and "multiscales" not in attrs and not (
            isinstance(attrs.get("ome"), dict) and "multiscales" in attrs["ome"]):
        raise Unprocessable(_NOT_OME + " (no NGFF multiscales metadata)")
    try:
        ome = attrs["ome"] if "ome" in attrs else attrs
        datasets = ome["multiscales"][0]["datasets"]
        docs = [_load_json(store, f"{ds['path']}/{level_doc_name}") for ds in datasets]
        shapes = [tuple(int(s) for s in d["shape"]) for d in docs]
        attrs = dict(attrs)
        ours = dict(attrs.get("microtome", {}))
        ours.setdefault("dtype", str(docs[0].get("data_type", docs[0].get("dtype", "uint8"))))
        if level_doc_name == ".zarray":
            ours["dtype"] = str(np.dtype(docs[0]["dtype"]))
        # Images other tools wrote: sizes and kind from the NGFF axes.
        axes = _axis_names(ome["multiscales"][0], len(shapes[0]))
        ours.setdefault("size", {a: shapes[0][axes.index(a)] if a in axes else 1
                                 for a in "tcz"})
        ours.setdefault("kind", "rgb" if axes == ["c", "y", "x"] and shapes[0][0] == 3
                        and ours["dtype"] == "uint8" else "nd")
        attrs["microtome"] = ours
        meta = meta_from_attributes(attrs, shapes)
    except (NotFound, Unprocessable):
        raise
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise StorageError("image metadata is malformed") from e
    direct = all(_is_ours(d) for d in docs) and _ours(group)
    pyr = Pyramid(root, meta, direct, store)
    pyr.jpeg_quality = _jpeg_quality(docs[0])
    pyr.axes = axes
    return pyr


def _axis_names(multiscale: dict[str, Any], ndim: int) -> list[str]:
    """NGFF axis names (0.4+: dicts, 0.3: strings); absent → the 0.3 default order."""
    raw = multiscale.get("axes") or list("tczyx")[5 - ndim:]
    names = [str(a["name"] if isinstance(a, dict) else a).lower() for a in raw]
    if len(names) != ndim or names[-2:] != ["y", "x"] or len(set(names)) != ndim:
        raise ValueError("axes do not match the arrays")
    return names


def _jpeg_quality(level_doc: dict[str, Any]) -> int | None:
    """The JPEG quality chunks were stored with (our layout), so re-encoded tiles match."""
    try:
        for codec in level_doc["codecs"][0]["configuration"]["codecs"]:
            if codec.get("name") == "imagecodecs_jpeg":
                q = int(codec.get("configuration", {}).get("level", 0))
                return q if 1 <= q <= 100 else None
    except (KeyError, TypeError, IndexError, ValueError, AttributeError):
        pass
    return None


def _ours(group: dict[str, Any] | None) -> bool:
    """The group document says Microtome wrote the image (our sharded layout)."""
    attrs = (group or {}).get("attributes", {})
    ours = attrs.get("microtome", {}) if isinstance(attrs, dict) else {}
    return isinstance(ours, dict) and "tile_size" in ours
