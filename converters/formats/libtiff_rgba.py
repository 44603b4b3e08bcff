"""Fallback TIFF decoder: libtiff's RGBA interface, one tile or strip at a time.

tifffile + imagecodecs decode the common encodings fast, but not the older
ones archives and some scanners still write: old-style JPEG (compression 6)
with its tables in the IFD, YCbCr with chroma subsampling under LZW/Deflate/
no compression, LogLuv.  libtiff's ``TIFFReadRGBATile``/``TIFFReadRGBAStrip``
decode all of these (colour conversion, upsampling and the OJPEG stream
reconstruction included) to 8-bit RGBA, one segment at a time, so memory stays
bounded by the segment size whatever the image size.

Which libtiff: the one shipped inside Pillow's wheel (built with OJPEG and
every codec Pillow reads; measured: libvips' wheel-shipped libtiff refuses
OJPEG with "Old-style JPEG compression support is not configured"), else the
system's ``libtiff.so.6``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from microtome.pyramid.errors import SourceError

#: Decoded segments kept (bytes).
CACHE_BYTES = 64 << 20
#: Largest segment (tile, or strip of RowsPerStrip rows) decoded at once: a
#: file with one strip for a huge image would need the whole image in memory.
MAX_SEGMENT_PIXELS = 64 << 20

_TIFFTAG_IMAGEWIDTH, _TIFFTAG_IMAGELENGTH = 256, 257
_TIFFTAG_ROWSPERSTRIP = 278
_TIFFTAG_TILEWIDTH, _TIFFTAG_TILELENGTH = 322, 323

_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


def _candidates() -> list[str]:
    out: list[str] = []
    try:
        import PIL

        libs = Path(PIL.__file__).resolve().parent.parent / "pillow.libs"
        out += sorted(glob.glob(str(libs / "libtiff*.so*")))
    except ImportError:
        pass
    found = ctypes.util.find_library("tiff")
    if found:
        out.append(found)
    out += ["libtiff.so.6", "libtiff.so.5"]
    return out


def libtiff() -> ctypes.CDLL:
    """The loaded libtiff, its handlers silenced (errors come back as return codes)."""
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        for name in _candidates():
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        else:
            raise SourceError("no TIFF fallback decoder available (libtiff not found)")
        lib.TIFFOpen.restype = ctypes.c_void_p
        lib.TIFFOpen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        lib.TIFFClose.argtypes = [ctypes.c_void_p]
        lib.TIFFSetDirectory.argtypes = [ctypes.c_void_p, ctypes.c_uint16]
        lib.TIFFGetField.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p]
        lib.TIFFIsTiled.argtypes = [ctypes.c_void_p]
        lib.TIFFReadRGBATileExt.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32,
                                            ctypes.c_void_p, ctypes.c_int]
        lib.TIFFReadRGBAStripExt.argtypes = [ctypes.c_void_p, ctypes.c_uint32,
                                             ctypes.c_void_p, ctypes.c_int]
        # libtiff prints errors and warnings on stderr by default; the return
        # codes are what we act on, and the messages would reach users raw.
        lib.TIFFSetErrorHandler.restype = ctypes.c_void_p
        lib.TIFFSetErrorHandler.argtypes = [ctypes.c_void_p]
        lib.TIFFSetWarningHandler.restype = ctypes.c_void_p
        lib.TIFFSetWarningHandler.argtypes = [ctypes.c_void_p]
        lib.TIFFSetErrorHandler(None)
        lib.TIFFSetWarningHandler(None)
        _lib = lib
        return lib


class RgbaPage:
    """One IFD of a TIFF read through libtiff's RGBA interface: ``read`` gives
    (h, w, 4) uint8 RGBA, top-down, whatever the storage order of the file."""

    def __init__(self, path: Path, directory: int) -> None:
        self._lib = libtiff()
        self._handle = self._lib.TIFFOpen(os.fsencode(path), b"rm")  # m: no mmap
        if not self._handle:
            raise SourceError("not a readable TIFF (fallback decoder)")
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        try:
            if not self._lib.TIFFSetDirectory(self._handle, directory):
                raise SourceError("TIFF directory not found (fallback decoder)")
            self.w = self._u32(_TIFFTAG_IMAGEWIDTH)
            self.h = self._u32(_TIFFTAG_IMAGELENGTH)
            self.tiled = bool(self._lib.TIFFIsTiled(self._handle))
            if self.tiled:
                self.sw, self.sh = self._u32(_TIFFTAG_TILEWIDTH), self._u32(_TIFFTAG_TILELENGTH)
            else:
                rows = self._u32(_TIFFTAG_ROWSPERSTRIP, default=self.h)
                self.sw, self.sh = self.w, max(1, min(rows, self.h))
            if self.sw < 1 or self.sh < 1 or self.w < 1 or self.h < 1:
                raise SourceError("damaged TIFF: tile or strip size is zero")
            if self.sw * self.sh > MAX_SEGMENT_PIXELS:
                raise SourceError(f"TIFF blocks of {self.sw} x {self.sh} pixels are too large "
                                  "to decode one at a time")
        except BaseException:
            self._lib.TIFFClose(self._handle)
            raise
        self.nx = -(-self.w // self.sw)
        self._capacity = max(4, CACHE_BYTES // (self.sw * self.sh * 4))

    def _u32(self, tag: int, default: int = 0) -> int:
        value = ctypes.c_uint32(0)
        if not self._lib.TIFFGetField(self._handle, tag, ctypes.byref(value)):
            return default
        return int(value.value)

    def _segment(self, index: int) -> np.ndarray:
        """Tile or strip ``index`` as (sh, sw, 4), top-down (libtiff fills bottom-up)."""
        with self._lock:
            seg = self._cache.get(index)
            if seg is not None:
                self._cache.move_to_end(index)
                return seg
            raster = np.zeros((self.sh, self.sw), np.uint32)
            ptr = raster.ctypes.data_as(ctypes.c_void_p)
            if self.tiled:
                x, y = (index % self.nx) * self.sw, (index // self.nx) * self.sh
                ok = self._lib.TIFFReadRGBATileExt(self._handle, x, y, ptr, 1)
                rows = self.sh
            else:
                y = index * self.sh
                ok = self._lib.TIFFReadRGBAStripExt(self._handle, y, ptr, 1)
                rows = min(self.sh, self.h - y)
            if not ok:
                raise SourceError(f"damaged image data ({'tile' if self.tiled else 'strip'} "
                                  f"{index})")
            # ABGR words, little-endian: bytes R, G, B, A; rows stored bottom-up.
            seg = raster[:rows][::-1].view(np.uint8).reshape(rows, self.sw, 4)
            seg = np.ascontiguousarray(seg)
            self._cache[index] = seg
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
            return seg

    def read(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        out = np.empty((h, w, 4), np.uint8)
        for sy in range(y // self.sh, (y + h - 1) // self.sh + 1):
            for sx in range(x // self.sw, (x + w - 1) // self.sw + 1):
                seg = self._segment(sy * self.nx + sx)
                y0, x0 = max(y, sy * self.sh), max(x, sx * self.sw)
                y1 = min(y + h, sy * self.sh + seg.shape[0])
                x1 = min(x + w, (sx + 1) * self.sw)
                out[y0 - y:y1 - y, x0 - x:x1 - x] = seg[y0 - sy * self.sh:y1 - sy * self.sh,
                                                        x0 - sx * self.sw:x1 - sx * self.sw]
        return out

    def close(self) -> None:
        with self._lock:
            if self._handle:
                self._lib.TIFFClose(self._handle)
                self._handle = None
            self._cache.clear()
