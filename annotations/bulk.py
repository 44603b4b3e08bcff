"""Columnar import batches and their PostgreSQL binary COPY encoding.  No I/O.

Why not `copy_records_to_table`: asyncpg encodes a COPY one Python tuple and
one value at a time (plus a Python callback per jsonb value); for a million
cells that was ~10 µs of CPU per row, more than parsing the GeoJSON.  Here
the fixed-width columns of a whole batch are one numpy structured array in
network byte order and each row only adds its variable parts (WKB, kind,
terms, properties) with a single `bytes.join` at the end.

Format: https://www.postgresql.org/docs/current/sql-copy.html (binary):
header, then per row an int16 field count and per field an int32 length
(-1 = NULL) and the value in the type's binary `send` form.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from .geometry import SHIFT, ImageFrame, morton_order

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)

#: COPY column order: fixed-width columns first (one numpy record per row), then
#: `geom`, whose length closes the fixed part, then the variable ones.
COLUMNS = ("id", "image_id", "project_id", "user_id", "n_vertices", "area_px", "perimeter_px",
           "area_um2", "perimeter_um", "sbox", "geom", "kind", "shape", "producer",
           "term_ids", "properties", "lod2")
_INT8_OID = 20
_NULL = struct.pack("!i", -1)


@dataclass
class Batch:
    """Validated annotations of an import, column by column (row i = feature i)."""

    wkb: list[bytes]
    bounds: np.ndarray        # (n, 4) float64: x0, y0, x1, y1 in image pixels
    n_vertices: np.ndarray    # int
    area: np.ndarray          # px²
    perimeter: np.ndarray     # px
    kinds: list[str]
    shapes: list[dict[str, Any] | None]
    term_names: list[tuple[tuple[str, str | None], ...]]  # (name, colour) per feature
    data: list[dict[str, Any]]
    producers: list[str | None]
    #: Stored viewport texts (`lod2`, migration 0130), None = not precomputed.
    lod: Sequence[bytes | None] | None = None

    def __len__(self) -> int:
        return len(self.wkb)


def concat(batches: Sequence[Batch]) -> Batch:
    """One batch holding the rows of several, in order."""
    if len(batches) == 1:
        return batches[0]
    return Batch(
        wkb=[w for b in batches for w in b.wkb],
        bounds=np.concatenate([b.bounds for b in batches]),
        n_vertices=np.concatenate([b.n_vertices for b in batches]),
        area=np.concatenate([b.area for b in batches]),
        perimeter=np.concatenate([b.perimeter for b in batches]),
        kinds=[k for b in batches for k in b.kinds],
        shapes=[s for b in batches for s in b.shapes],
        term_names=[t for b in batches for t in b.term_names],
        data=[d for b in batches for d in b.data],
        producers=[p for b in batches for p in b.producers],
        lod=[t for b in batches for t in (b.lod or [None] * len(b))])


def _int8_array(ids: tuple[int, ...]) -> bytes:
    """A bigint[] in binary form, with its int32 length prefix."""
    if not ids:
        body = struct.pack("!iii", 0, 0, _INT8_OID)
    else:
        body = struct.pack(f"!iiiii{'iq' * len(ids)}", 1, 0, _INT8_OID, len(ids), 1,
                           *(v for i in ids for v in (8, i)))
    return struct.pack("!i", len(body)) + body


def _text(value: str | None) -> bytes:
    if value is None:
        return _NULL
    raw = value.encode()
    return struct.pack("!i", len(raw)) + raw


def _bytea(value: bytes | None) -> bytes:
    return _NULL if value is None else struct.pack("!i", len(value)) + value


def _jsonb(value: Any) -> bytes:
    if value is None:
        return _NULL
    raw = orjson.dumps(value)
    return struct.pack("!ib", len(raw) + 1, 1) + raw  # jsonb binary: version 1 + text


def _fixed_dtype(nullable: dict[str, bool]) -> np.dtype[Any]:
    fields: list[tuple[str, str]] = [("nf", ">i2")]
    for name, typ in (("id", ">i8"), ("image_id", ">i8"), ("project_id", ">i8"),
                      ("user_id", ">i8"), ("n_vertices", ">i4"), ("area_px", ">f8"),
                      ("perimeter_px", ">f8"), ("area_um2", ">f8"), ("perimeter_um", ">f8")):
        fields.append((f"l_{name}", ">i4"))
        if not nullable.get(name):
            fields.append((name, typ))
    fields += [("l_sbox", ">i4"), ("hx", ">f8"), ("hy", ">f8"), ("lx", ">f8"), ("ly", ">f8"),
               ("l_geom", ">i4")]
    return np.dtype(fields)


def encode(frame: ImageFrame, batch: Batch, ids: Sequence[int], term_ids: Sequence[bytes],
           *, project_id: int | None, user_id: int | None) -> bytes:
    """The binary COPY payload (header to trailer) of `batch` for COLUMNS.

    `ids[i]` and `term_ids[i]` (a `term_array` value) belong to row i.  Rows are
    written in Z-order of their bbox centres (spatial neighbours share heap pages,
    which is what viewport queries read); ids keep the file order.
    """
    n = len(batch)
    b = batch.bounds
    ps = frame.pixel_size_um
    nulls = {"project_id": project_id is None, "user_id": user_id is None,
             "area_um2": not ps, "perimeter_um": not ps}
    fixed = np.zeros(n, dtype=_fixed_dtype(nulls))
    fixed["nf"] = len(COLUMNS)
    for name, size, value in (("id", 8, ids), ("image_id", 8, frame.image_id),
                              ("project_id", 8, project_id), ("user_id", 8, user_id),
                              ("n_vertices", 4, batch.n_vertices), ("area_px", 8, batch.area),
                              ("perimeter_px", 8, batch.perimeter),
                              ("area_um2", 8, batch.area * ps * ps if ps else None),
                              ("perimeter_um", 8, batch.perimeter * ps if ps else None)):
        if nulls.get(name):
            fixed[f"l_{name}"] = -1
        else:
            fixed[f"l_{name}"] = size
            fixed[name] = value
    off = frame.image_id * SHIFT
    fixed["l_sbox"] = 32
    # box_send order: high corner, low corner.
    fixed["hx"], fixed["hy"] = b[:, 2] + off, b[:, 3]
    fixed["lx"], fixed["ly"] = b[:, 0] + off, b[:, 1]
    fixed["l_geom"] = np.fromiter(map(len, batch.wkb), dtype=np.int64, count=n)
    width = fixed.dtype.itemsize
    raw = memoryview(fixed.tobytes())

    kinds = {k: _text(k) for k in set(batch.kinds)}
    producers = {p: _text(p) for p in set(batch.producers)}
    order = morton_order((b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2,
                         frame.width, frame.height).tolist()
    wkb, kind, shape, prod, data = (batch.wkb, batch.kinds, batch.shapes, batch.producers,
                                    batch.data)
    lod = batch.lod or [None] * n
    parts: list[Any] = [HEADER]
    for i in order:
        s = shape[i]
        parts += (raw[i * width:(i + 1) * width], wkb[i], kinds[kind[i]],
                  _NULL if s is None else _jsonb(s), producers[prod[i]], term_ids[i],
                  _jsonb(data[i]), _bytea(lod[i]))
    parts.append(TRAILER)
    return b"".join(parts)


def term_array(ids: tuple[int, ...], cache: dict[tuple[int, ...], bytes]) -> bytes:
    """The encoded `term_ids` value for sorted ids (memoised: imports reuse a few sets)."""
    out = cache.get(ids)
    if out is None:
        out = cache[ids] = _int8_array(ids)
    return out


# -- density cells (see migrations 0101 and 0102) ---------------------------------------

#: Cell sizes of `annotation_density`.
DENSITY_CELLS = (256, 1024, 4096)


def centres(frame: ImageFrame, bounds: np.ndarray) -> np.ndarray:
    """(n, 2) bbox centres exactly as the SQL functions `annotation_center_x/y` compute
    them from the stored shifted box (same float64 operations, same order)."""
    off = frame.image_id * SHIFT
    cx = ((bounds[:, 2] + off) + (bounds[:, 0] + off)) / 2 - off
    cy = (bounds[:, 3] + bounds[:, 1]) / 2
    return np.c_[cx, cy]


def density_rows(points: np.ndarray) -> tuple[list[int], list[int], list[int], list[int],
                                                list[float], list[float]]:
    """(cell, gx, gy, n, sum x, sum y) per density cell holding any of `points`."""
    out: tuple[list[Any], ...] = ([], [], [], [], [], [])
    if not len(points):
        return out  # type: ignore[return-value]
    cx, cy = points[:, 0], points[:, 1]
    for cell in DENSITY_CELLS:
        gx = np.floor(cx / cell).astype(np.int64)
        gy = np.floor(cy / cell).astype(np.int64)
        keys, inv = np.unique((gx << 32) + (gy - gy.min()), return_inverse=True)
        first = np.zeros(len(keys), dtype=np.int64)
        first[inv] = np.arange(len(inv))  # any member of each cell gives its gx, gy
        out[0].extend([cell] * len(keys))
        out[1].extend(gx[first].tolist())
        out[2].extend(gy[first].tolist())
        out[3].extend(np.bincount(inv).tolist())
        out[4].extend(np.bincount(inv, weights=cx).tolist())
        out[5].extend(np.bincount(inv, weights=cy).tolist())
    return out  # type: ignore[return-value]
