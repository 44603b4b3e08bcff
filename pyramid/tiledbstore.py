"""Pyramids as TileDB arrays (the optional ``tiledb`` extra), read through `Pyramid`.

An image is a folder (or an ``s3://`` prefix) ``<name>.tdb`` laid out like
TileDB's bio-imaging format: a TileDB group whose members are one dense array
per level, ``l_0.tdb``, ``l_1.tdb``, ..., each 2x smaller, with one ``uint8``
(or the image's dtype) attribute ``intensity``.  RGB slides have dimensions
(Y, X, C) with tiles of (T, T, 3); everything else (T, C, Z, Y, X) with tiles
of (1, 1, 1, T, T).  Tiles are stored losslessly (zstd), so a TileDB image
transcoded from one of our OME-Zarr pyramids holds exactly its decoded pixels.

Beside the arrays, plain objects the rest of Microtome reads through the byte
store (`pyramid.stores`): ``associated/*.png``, ``metadata/*.json`` and
``microtome.json`` (the NGFF-style attributes, each level's shape and array
name).  ``microtome.json`` is written last and marks a complete image, as
``zarr.json`` does for OME-Zarr (converters/publish.py).

Readers get a `TileDBPyramid`: the same interface as every other image
(`read_region`, `meta`, `store`), no raw-chunk pass-through (``direct`` is
false: tiles are decoded and re-encoded by the tile server).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import StorageError
from .layout import ImageMeta
from .metadata import group_attributes, meta_from_attributes
from .reader import Pyramid
from .stores import ObjectMissing, Store, is_remote, open_store

SUFFIX = ".tdb"
#: The image's own document, written last (its presence means "complete").
ROOT_DOC = "microtome.json"
#: The pixel attribute (the name TileDB's bio-imaging format uses).
ATTR = "intensity"
#: Most rows written per TileDB write call (a multiple of every tile size we use),
#: and the most bytes one write holds in memory.
STRIP_ROWS = 4096
STRIP_BYTES = 256 * 1024**2
FORMAT_VERSION = 1

#: S3 endpoint for TileDB's own client (``host:port`` and scheme), set by `configure`.
_S3: dict[str, str] = {}
_ctx_lock = threading.Lock()
_ctx: Any = None


def configure(endpoint_url: str | None, region: str | None = None) -> None:
    """Point TileDB's S3 client at an S3-compatible service (AWS_ENDPOINT_URL, read by
    core.settings); credentials come from the standard AWS variables, read by TileDB."""
    global _ctx
    cfg: dict[str, str] = {}
    if endpoint_url:
        scheme, _, rest = endpoint_url.partition("://")
        if not rest:
            scheme, rest = "https", endpoint_url
        cfg = {"vfs.s3.endpoint_override": rest.rstrip("/"), "vfs.s3.scheme": scheme,
               "vfs.s3.use_virtual_addressing": "false"}
    if region:
        cfg["vfs.s3.region"] = region
    with _ctx_lock:
        _S3.clear()
        _S3.update(cfg)
        _ctx = None


def _tiledb() -> Any:
    try:
        import tiledb
    except ImportError:
        raise StorageError("this image is stored in TileDB, which is not installed "
                           "(pip install 'microtome[tiledb]')") from None
    return tiledb


def context() -> Any:
    """One TileDB context per process (thread-safe; it owns TileDB's thread pools)."""
    global _ctx
    tiledb = _tiledb()
    with _ctx_lock:
        if _ctx is None:
            _ctx = tiledb.Ctx(tiledb.Config(dict(_S3)))
        return _ctx


def _uri(root: str | os.PathLike[str], name: str) -> str:
    return f"{str(root).rstrip('/')}/{name}" if is_remote(root) else str(Path(root) / name)


def is_tiledb_image(store: Store) -> bool:
    return store.exists(ROOT_DOC)


# -- writing ---------------------------------------------------------------------
def _schema(meta: ImageMeta, width: int, height: int) -> Any:
    tiledb = _tiledb()
    ctx = context()
    t = meta.tile_size
    dt = np.uint32

    def dim(name: str, size: int, tile: int) -> Any:
        return tiledb.Dim(name=name, domain=(0, size - 1), tile=min(tile, size), dtype=dt,
                          ctx=ctx)

    if meta.kind == "rgb":
        dims = [dim("Y", height, t), dim("X", width, t), dim("C", 3, 3)]
    else:
        dims = [dim("T", meta.size_t, 1), dim("C", meta.size_c, 1), dim("Z", meta.size_z, 1),
                dim("Y", height, t), dim("X", width, t)]
    attr = tiledb.Attr(name=ATTR, dtype=np.dtype(meta.dtype), ctx=ctx,
                       filters=tiledb.FilterList([tiledb.ZstdFilter(level=3)]))
    return tiledb.ArraySchema(domain=tiledb.Domain(*dims, ctx=ctx), attrs=[attr],
                              sparse=False, cell_order="row-major", tile_order="row-major",
                              ctx=ctx)


def _strip_rows(meta: ImageMeta, width: int, planes: int) -> int:
    """Rows per write: whole tiles, at most STRIP_ROWS and about STRIP_BYTES of pixels."""
    t = meta.tile_size
    per_row = width * planes * np.dtype(meta.dtype).itemsize * (3 if meta.kind == "rgb"
                                                                else meta.size_c)
    rows = min(STRIP_ROWS, STRIP_BYTES // max(1, per_row))
    return max(t, rows // t * t)


def write_pyramid(src: Pyramid, dst: Path,
                  progress: Callable[[float], None] | None = None) -> int:
    """Write ``src`` (any opened image) as a TileDB image folder ``dst``; returns bytes.

    The caller writes into a scratch folder and renames it (converters/tiledb_out.py).
    """
    tiledb = _tiledb()
    ctx = context()
    meta = src.meta
    dst.mkdir(parents=True, exist_ok=False)
    tiledb.Group.create(str(dst), ctx=ctx)
    names = [f"l_{i}.tdb" for i in range(len(meta.levels))]
    total = sum(lv.width * lv.height for lv in meta.levels) * max(1, meta.size_t * meta.size_z)
    done = 0
    planes = meta.size_t * meta.size_z if meta.kind == "nd" else 1
    for i, (lv, name) in enumerate(zip(meta.levels, names, strict=True)):
        uri = str(dst / name)
        tiledb.Array.create(uri, _schema(meta, lv.width, lv.height), ctx=ctx)
        rows = _strip_rows(meta, lv.width, planes)
        strips = 0
        with tiledb.open(uri, "w", ctx=ctx) as arr:
            for y0 in range(0, lv.height, rows):
                h = min(rows, lv.height - y0)
                if meta.kind == "rgb":
                    block = src.read_region(i, 0, y0, lv.width, h)
                    arr[y0:y0 + h, 0:lv.width, 0:3] = np.ascontiguousarray(block)
                else:  # every (t, z) plane of the strip in one write: one fragment
                    block = np.empty((meta.size_t, meta.size_c, meta.size_z, h, lv.width),
                                     dtype=np.dtype(meta.dtype))
                    for t in range(meta.size_t):
                        for z in range(meta.size_z):
                            block[t, :, z] = src.read_region(i, 0, y0, lv.width, h, t=t,
                                                             z=z).transpose(2, 0, 1)
                    arr[0:meta.size_t, 0:meta.size_c, 0:meta.size_z, y0:y0 + h,
                        0:lv.width] = block
                strips += 1
                done += lv.width * h * planes
                if progress is not None:
                    progress(done / total)
            arr.meta["level"] = i
            arr.meta["downsample"] = lv.downsample
        if strips > 1:  # disjoint strips: only their metadata is merged (cheap, one read
            # on open); the pixels are not rewritten
            tiledb.consolidate(uri, ctx=ctx,
                               config=tiledb.Config({"sm.consolidation.mode": "fragment_meta"}))
    with tiledb.Group(str(dst), "w", ctx=ctx) as group:
        for name in names:
            group.add(name, name=name.removesuffix(".tdb"), relative=True)
        group.meta["fmt_version"] = FORMAT_VERSION
        group.meta["axes"] = "YXC" if meta.kind == "rgb" else "TCZYX"
        group.meta["pixel_depth"] = json.dumps({str(i): lv.downsample
                                                for i, lv in enumerate(meta.levels)})
    for key in src.store.list("associated"):
        (dst / key).parent.mkdir(parents=True, exist_ok=True)
        (dst / key).write_bytes(src.store.get(key))
    for key in src.store.list("metadata"):
        (dst / key).parent.mkdir(parents=True, exist_ok=True)
        (dst / key).write_bytes(src.store.get(key))
    attrs = group_attributes(meta)
    attrs["microtome"]["dtype"] = meta.dtype
    doc = {"format": "tiledb", "format_version": FORMAT_VERSION, "attributes": attrs,
           "arrays": names, "shapes": [list(meta.array_shape(lv)) for lv in meta.levels]}
    (dst / ROOT_DOC).write_text(json.dumps(doc, indent=1, allow_nan=False))
    return sum(p.stat().st_size for p in dst.rglob("*") if p.is_file())


# -- reading ---------------------------------------------------------------------
class TileDBPyramid(Pyramid):
    """An opened TileDB image.  Thread-safe: each thread reads through its own handles."""

    def __init__(self, root: str | os.PathLike[str], meta: ImageMeta, store: Store,
                 arrays: list[str]) -> None:
        super().__init__(root, meta, direct=False, store=store)
        self._uris = [_uri(root, name) for name in arrays]
        self._local = threading.local()

    def _array(self, level: int) -> Any:
        opened: dict[int, Any] | None = getattr(self._local, "arrays", None)
        if opened is None:
            opened = self._local.arrays = {}
        arr = opened.get(level)
        if arr is None:
            try:
                arr = _tiledb().open(self._uris[level], "r", ctx=context())
            except StorageError:
                raise
            except Exception as e:  # TileDBError has no stable subclasses
                raise StorageError("stored level is unreadable") from e
            opened[level] = arr
        return arr

    def chunk_bytes(self, level: int, cy: int, cx: int, t: int = 0, c: int = 0,
                    z: int = 0) -> bytes | None:
        raise StorageError("raw chunk access needs our sharded OME-Zarr layout")

    def read_region(self, level: int, x: int, y: int, w: int, h: int, t: int = 0, z: int = 0,
                    channels: list[int] | None = None) -> np.ndarray:
        lv = self.meta.levels[level]
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > lv.width or y + h > lv.height:
            raise ValueError("region outside level")
        arr = self._array(level)
        try:
            if self.meta.kind == "rgb":
                out = arr.query(attrs=[ATTR])[y:y + h, x:x + w, 0:3][ATTR]
                return np.ascontiguousarray(out)
            chans = channels or list(range(self.meta.size_c))
            lo, hi = min(chans), max(chans) + 1
            block = arr.query(attrs=[ATTR])[t:t + 1, lo:hi, z:z + 1, y:y + h, x:x + w][ATTR]
            picked = block[0, [c - lo for c in chans], 0]
            return np.ascontiguousarray(picked.transpose(1, 2, 0))
        except Exception as e:
            raise StorageError("stored tile data is damaged") from e


def open_tiledb(root: str | os.PathLike[str], store: Store | None = None) -> TileDBPyramid:
    """Open the TileDB image at a local folder or ``s3://`` URL (NotFound when absent)."""
    from .errors import NotFound

    store = store if store is not None else open_store(root)
    try:
        doc = json.loads(store.get(ROOT_DOC))
    except ObjectMissing:
        raise NotFound("image not found") from None
    except ValueError as e:
        raise StorageError("image metadata is unreadable") from e
    try:
        if doc.get("format") != "tiledb":
            raise ValueError("not a TileDB image document")
        shapes = [tuple(int(s) for s in shape) for shape in doc["shapes"]]
        arrays = [str(a) for a in doc["arrays"]]
        if len(arrays) != len(shapes) or any("/" in a or a.startswith(".") for a in arrays):
            raise ValueError("arrays do not match the levels")
        meta = meta_from_attributes(doc["attributes"], shapes)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        raise StorageError("image metadata is malformed") from e
    pyr = TileDBPyramid(root, meta, store, arrays)
    pyr.axes = list(meta.axes)
    return pyr
