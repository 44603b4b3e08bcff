"""The OME-Zarr storage contract (DESIGN.md §4) as data and pure functions.

An image is a directory ``<name>.ome.zarr``:

- ``zarr.json``: NGFF 0.5 group; ``attributes.ome`` holds ``multiscales`` and
  ``omero``; ``attributes.microtome`` holds our own keys (see `ImageMeta`).
- ``0/``, ``1/``, ...: one zarr v3 array per level, each 2x smaller.
  RGB brightfield ("rgb" kind): axes (c, y, x), uint8, 3 channels, inner
  chunks (3, T, T) encoded as standalone baseline JPEG through
  ``transpose(order=[1, 2, 0])`` + ``imagecodecs_jpeg``.  Everything else
  ("nd" kind): axes (t, c, z, y, x), inner chunks (1, 1, 1, T, T), ``bytes``
  (little endian) + ``zstd``.  Both sharded (``sharding_indexed``, index at
  the end, index codecs ``bytes`` + ``crc32c``).
- ``associated/<name>.png``: label, macro, thumbnail images if the source had them.
- ``metadata/original.json``: the source's own metadata, as read.
- ``metadata/histogram.json``: per-channel histograms (pyramid/histogram.py).

Pixel coordinates are level-0 pixels, origin top-left, y down.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Literal

import google_crc32c

Kind = Literal["rgb", "nd"]

#: One inner-chunk index entry: (offset, nbytes) as little-endian uint64.
INDEX_ENTRY = struct.Struct("<QQ")
#: Marker for an absent inner chunk in a shard index (both fields).
EMPTY = 2**64 - 1
#: Bytes of the crc32c checksum that follows the index.
CRC_BYTES = 4


@dataclass(frozen=True, slots=True)
class Level:
    """One stored resolution level."""

    path: str
    width: int
    height: int
    #: Integer downsample factor relative to level 0 (1, 2, 4, ...).
    downsample: int


@dataclass(frozen=True, slots=True)
class Channel:
    label: str
    #: Six hex digits, no '#', as in the NGFF omero block.
    color: str
    window_start: float
    window_end: float
    window_min: float
    window_max: float
    active: bool = True
    #: NGFF omero ``inverted``: low values show in full colour (e.g. a MinIsWhite
    #: TIFF, whose stored 0 is white); the tile server honours it.
    inverted: bool = False


@dataclass(frozen=True, slots=True)
class ImageMeta:
    """Everything a reader needs to know about a stored pyramid."""

    width: int
    height: int
    levels: tuple[Level, ...]
    kind: Kind
    dtype: str
    tile_size: int
    shard_size: int
    codec: str
    size_t: int = 1
    size_c: int = 3
    size_z: int = 1
    #: Micrometres per pixel at level 0 along x and y; None when unknown.
    pixel_size_um: tuple[float, float] | None = None
    #: Micrometres between z planes; None when unknown.
    z_spacing_um: float | None = None
    channels: tuple[Channel, ...] = ()
    associated: tuple[str, ...] = ()
    #: Changes whenever the pixels change; part of every ETag and cache key.
    version: str = "1"
    name: str = ""
    source: dict[str, Any] = field(default_factory=dict)
    ngff: str = "0.5"

    @property
    def axes(self) -> tuple[str, ...]:
        return ("c", "y", "x") if self.kind == "rgb" else ("t", "c", "z", "y", "x")

    def chunk_shape(self) -> tuple[int, ...]:
        t = self.tile_size
        return (3, t, t) if self.kind == "rgb" else (1, 1, 1, t, t)

    def shard_shape(self) -> tuple[int, ...]:
        s = self.shard_size
        return (3, s, s) if self.kind == "rgb" else (1, 1, 1, s, s)

    def array_shape(self, level: Level) -> tuple[int, ...]:
        if self.kind == "rgb":
            return (3, level.height, level.width)
        return (self.size_t, self.size_c, self.size_z, level.height, level.width)

    @property
    def chunks_per_shard_side(self) -> int:
        return self.shard_size // self.tile_size


def level_sizes(width: int, height: int, tile_size: int) -> list[tuple[int, int]]:
    """(width, height) of each level: level 0, then halved (ceil) until one chunk holds it."""
    if width < 1 or height < 1:
        raise ValueError("image must be at least 1x1")
    sizes = [(width, height)]
    while sizes[-1][0] > tile_size or sizes[-1][1] > tile_size:
        w, h = sizes[-1]
        sizes.append(((w + 1) // 2, (h + 1) // 2))
    return sizes


def shard_key(meta: ImageMeta, level: Level, sy: int, sx: int, t: int = 0, c: int = 0,
              z: int = 0) -> str:
    """Store key (relative to the image directory) of the shard holding (sy, sx)."""
    if meta.kind == "rgb":
        return f"{level.path}/c/0/{sy}/{sx}"
    return f"{level.path}/c/{t}/{c}/{z}/{sy}/{sx}"


def pack_shard(chunks: dict[tuple[int, int], bytes], per_side: int) -> bytes:
    """Assemble a shard: concatenated inner chunks, then index, then crc32c.

    ``chunks`` maps (row, col) within the shard to encoded bytes; missing
    entries are recorded as empty (readers see the fill value).  The index is
    in C order over (row, col), which matches zarr's order for our chunk
    grids because the leading axes always have exactly one inner chunk.
    """
    body = bytearray()
    index = bytearray()
    for r in range(per_side):
        for c in range(per_side):
            data = chunks.get((r, c))
            if data is None:
                index += INDEX_ENTRY.pack(EMPTY, EMPTY)
            else:
                index += INDEX_ENTRY.pack(len(body), len(data))
                body += data
    crc = google_crc32c.value(bytes(index))
    return bytes(body) + bytes(index) + struct.pack("<I", crc)


def index_nbytes(per_side: int) -> int:
    return per_side * per_side * INDEX_ENTRY.size + CRC_BYTES


def unpack_index(raw: bytes, per_side: int) -> tuple[tuple[int, int], ...]:
    """Parse a shard index (with its checksum) into (offset, nbytes) pairs.

    Raises ValueError when the checksum or size is wrong: a damaged shard.
    """
    n = per_side * per_side
    if len(raw) != index_nbytes(per_side):
        raise ValueError("shard index has the wrong size")
    body, crc = raw[:-CRC_BYTES], raw[-CRC_BYTES:]
    if struct.pack("<I", google_crc32c.value(body)) != crc:
        raise ValueError("shard index checksum mismatch")
    return tuple(INDEX_ENTRY.unpack_from(body, i * INDEX_ENTRY.size) for i in range(n))
