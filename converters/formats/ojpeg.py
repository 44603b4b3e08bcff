"""Tiled old-style JPEG (TIFF compression 6) decoded tile by tile.

Old scanners and archives wrote tiles that hold only entropy-coded JPEG data
and keep the tables in the IFD (JPEGQTables, JPEGDCTables, JPEGACTables,
one offset per component; TIFF 6.0 section 22).  libtiff's OJPEG decoder
reads such tiles in tile-row order only (with several tiles across, every
tile of a row after the first comes back as the first one), so these files
are read here instead: for each tile a baseline JPEG stream is put together
from the IFD's tables and the tile's scan (SOI, DQT, DHT, SOF0 with the
tile's size and the YCbCr subsampling, DRI, SOS, data, EOI) and decoded by
libjpeg-turbo through imagecodecs.  One tile at a time, an LRU of decoded
tiles, so memory is bounded by the tile size whatever the image size.

Refused, each with its own message: lossless JPEG (JPEGProc 14), samples
other than 8 bits, photometric other than grey/RGB/YCbCr, missing or
damaged tables.
"""

from __future__ import annotations

import os
import struct
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from microtome.pyramid.errors import SourceError

#: Decoded tiles kept (bytes).
CACHE_BYTES = 64 << 20
#: Largest tile decoded at once (pixels).
MAX_TILE_PIXELS = 64 << 20

_PROC, _RESTART = 512, 515
_QTABLES, _DCTABLES, _ACTABLES = 519, 520, 521
_SUBSAMPLING = 530


def has_ifd_tables(page: Any) -> bool:
    """Does this compression-6 page keep its JPEG tables in the IFD?"""
    return all(page.tags.get(code) is not None for code in (_QTABLES, _DCTABLES, _ACTABLES))


def _values(page: Any, code: int) -> list[int]:
    value = page.tags.valueof(code)
    if value is None:
        return []
    return [int(v) for v in (value if isinstance(value, (tuple, list)) else [value])]


def _segment(code: int, body: bytes) -> bytes:
    return b"\xff" + bytes([code]) + struct.pack(">H", len(body) + 2) + body


def _renumber_restarts(scan: bytes) -> bytes:
    """Restart markers numbered 0..7 from the start of this tile (a tile cut
    from a longer stream may continue the numbering of the one before)."""
    data = np.frombuffer(scan, np.uint8)
    where = np.nonzero((data[:-1] == 0xFF) & (data[1:] >= 0xD0) & (data[1:] <= 0xD7))[0]
    if not len(where):
        return scan
    out = data.copy()
    out[where + 1] = 0xD0 + (np.arange(len(where)) % 8)
    return out.tobytes()


class OjpegTiles:
    """One tiled compression-6 IFD; ``read`` gives (h, w, 4) uint8 RGBA (alpha 255)."""

    def __init__(self, path: Path, page: Any) -> None:
        if int(page.bitspersample) != 8:
            raise SourceError(f"old-style JPEG with {int(page.bitspersample)}-bit samples "
                              "is not supported (8-bit only)")
        proc = int(page.tags.valueof(_PROC, 1) or 1)
        if proc != 1:
            raise SourceError("old-style JPEG in lossless mode (JPEGProc 14) is not supported")
        photometric = int(page.photometric)
        samples = int(page.samplesperpixel)
        if photometric == 6 and samples == 3:
            self._colorspace = "YCBCR"
        elif photometric == 2 and samples == 3:
            self._colorspace = "RGB"
        elif photometric in (0, 1) and samples == 1:
            self._colorspace = "GRAYSCALE"
        else:
            raise SourceError(f"old-style JPEG with photometric {photometric} and {samples} "
                              "samples is not supported")
        self.w, self.h = int(page.imagewidth), int(page.imagelength)
        self.sw, self.sh = int(page.tilewidth), int(page.tilelength)
        if self.sw < 1 or self.sh < 1 or self.sw * self.sh > MAX_TILE_PIXELS:
            raise SourceError(f"old-style JPEG tiles of {self.sw} x {self.sh} pixels cannot be "
                              "decoded one at a time")
        self.nx = -(-self.w // self.sw)
        self._offsets = [int(v) for v in page.dataoffsets]
        self._counts = [int(v) for v in page.databytecounts]
        self._fd = os.open(path, os.O_RDONLY)
        try:
            self._size = os.fstat(self._fd).st_size
            self._header = self._build_header(page, samples)
        except BaseException:
            os.close(self._fd)
            raise
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._capacity = max(4, CACHE_BYTES // (self.sw * self.sh * 4))

    def _read(self, offset: int, length: int) -> bytes:
        if offset < 8 or length < 0 or offset + length > self._size:
            raise SourceError("damaged old-style JPEG: data or tables point past the end "
                              "of the file")
        data = os.pread(self._fd, length, offset)
        if len(data) != length:
            raise SourceError("damaged old-style JPEG: the file is cut short")
        return data

    def _huffman(self, offset: int) -> bytes:
        counts = self._read(offset, 16)
        n = sum(counts)
        if n == 0 or n > 256:
            raise SourceError("damaged old-style JPEG: a Huffman table is empty or too long")
        return counts + self._read(offset + 16, n)

    def _build_header(self, page: Any, samples: int) -> bytes:
        """SOI + tables + a SOF0/SOS template for this IFD (sizes filled per tile)."""
        q, dc, ac = (_values(page, c) for c in (_QTABLES, _DCTABLES, _ACTABLES))
        if min(len(q), len(dc), len(ac)) < samples:
            raise SourceError("damaged old-style JPEG: fewer JPEG tables than samples")
        # Components sharing a table offset share the table (JPEG baseline
        # allows two of each kind; writers give chroma one table).
        q_ids = {off: i for i, off in enumerate(dict.fromkeys(q[:samples]))}
        dc_ids = {off: i for i, off in enumerate(dict.fromkeys(dc[:samples]))}
        ac_ids = {off: i for i, off in enumerate(dict.fromkeys(ac[:samples]))}
        if max(len(q_ids), len(dc_ids), len(ac_ids)) > 4:
            raise SourceError("damaged old-style JPEG: too many distinct tables")
        out = b"\xff\xd8"
        for off, i in q_ids.items():
            out += _segment(0xDB, bytes([i]) + self._read(off, 64))
        for off, i in dc_ids.items():
            out += _segment(0xC4, bytes([0x00 | i]) + self._huffman(off))
        for off, i in ac_ids.items():
            out += _segment(0xC4, bytes([0x10 | i]) + self._huffman(off))
        restart = int(page.tags.valueof(_RESTART, 0) or 0)
        if restart:
            out += _segment(0xDD, struct.pack(">H", restart & 0xFFFF))
        if self._colorspace == "YCBCR":
            sub = _values(page, _SUBSAMPLING) or [2, 2]
            hs, vs = [*sub, 2][:2]
            if hs not in (1, 2, 4) or vs not in (1, 2, 4):
                raise SourceError(f"old-style JPEG with chroma subsampling {hs}x{vs} is not "
                                  "supported")
        else:
            hs, vs = 1, 1
        self._components = b"".join(
            bytes([c + 1, (hs << 4 | vs) if c == 0 else 0x11, q_ids[q[c]]])
            for c in range(samples))
        self._sos = _segment(0xDA, bytes([samples]) + b"".join(
            bytes([c + 1, dc_ids[dc[c]] << 4 | ac_ids[ac[c]]]) for c in range(samples))
            + b"\x00\x3f\x00")
        self._samples = samples
        return out

    def _stream(self, index: int) -> bytes:
        scan = self._read(self._offsets[index], self._counts[index])
        if scan[:2] == b"\xff\xd8":  # a whole JPEG per tile: decode it as it is
            return scan
        if len(scan) >= 2 and scan[0] == 0xFF and 0xD0 <= scan[1] <= 0xD7:
            scan = scan[2:]  # a restart marker left from the stream it was cut from
        if scan.endswith(b"\xff\xd9"):
            scan = scan[:-2]
        sof = _segment(0xC0, bytes([8]) + struct.pack(">HH", self.sh, self.sw)
                       + bytes([self._samples]) + self._components)
        return self._header + sof + self._sos + _renumber_restarts(scan) + b"\xff\xd9"

    def _tile(self, index: int) -> np.ndarray:
        import imagecodecs

        with self._lock:
            tile = self._cache.get(index)
            if tile is not None:
                self._cache.move_to_end(index)
                return tile
            if index >= min(len(self._offsets), len(self._counts)):
                raise SourceError(f"damaged old-style JPEG: tile {index} is not listed")
            stream = self._stream(index)
        try:
            px = imagecodecs.jpeg8_decode(stream, colorspace=self._colorspace,
                                          outcolorspace="GRAYSCALE" if self._samples == 1
                                          else "RGB")
        except Exception as e:
            raise SourceError(f"damaged image data (old-style JPEG tile {index})") from e
        px = np.asarray(px)
        if px.ndim == 2:
            px = np.repeat(px[..., None], 3, axis=2)
        if px.shape[0] < self.sh or px.shape[1] < self.sw:
            raise SourceError(f"damaged image data (old-style JPEG tile {index} is "
                              f"{px.shape[1]} x {px.shape[0]} pixels)")
        rgba = np.empty((self.sh, self.sw, 4), np.uint8)
        rgba[..., :3] = px[:self.sh, :self.sw, :3]
        rgba[..., 3] = 255
        with self._lock:
            self._cache[index] = rgba
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
        return rgba

    def read(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        out = np.empty((h, w, 4), np.uint8)
        for ty in range(y // self.sh, (y + h - 1) // self.sh + 1):
            for tx in range(x // self.sw, (x + w - 1) // self.sw + 1):
                tile = self._tile(ty * self.nx + tx)
                y0, x0 = max(y, ty * self.sh), max(x, tx * self.sw)
                y1 = min(y + h, (ty + 1) * self.sh)
                x1 = min(x + w, (tx + 1) * self.sw)
                out[y0 - y:y1 - y, x0 - x:x1 - x] = tile[y0 - ty * self.sh:y1 - ty * self.sh,
                                                         x0 - tx * self.sw:x1 - tx * self.sw]
        return out

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            self._cache.clear()
