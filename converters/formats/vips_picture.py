"""Giant plain pictures (JPEG, PNG, WebP) in bounded memory, through libvips.

A JPEG or PNG has no random access: Pillow decodes it whole, so a 40000 x
40000 photo would need 4.8 GB.  libvips decodes it once, top to bottom in
bands (libjpeg scanlines, libpng rows), into a temporary uncompressed file
when it is larger than its disc threshold, and region reads then come from
that file through a small cache: memory stays bounded whatever the size.
The temporary file (about width x height x bands bytes) lives in TMPDIR and
is removed when the reader closes.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from microtome.pyramid.errors import SourceError
from microtome.pyramid.optional import missing_extra_message

from ..base import MAX_SIDE, ChannelInfo, SourceInfo, SourceReader, short_message
from . import orientation as orient

#: Decoded pictures above this many bytes go through libvips (smaller ones
#: keep the Pillow path, which handles every colour mode and EXIF detail).
BANDED_ABOVE_BYTES = 256 << 20
#: ... or above this many pixels (Pillow refuses 179 MP and more outright).
BANDED_ABOVE_PIXELS = 64_000_000
_CACHE_BYTES = 64 << 20

_setup_lock = threading.Lock()
_configured = False


def _vips() -> Any:
    global _configured
    try:
        import pyvips
    except ImportError as e:
        raise SourceError(missing_extra_message("vips")) from e

    with _setup_lock:
        if not _configured:
            # libvips' operation cache would otherwise hold decoded regions
            # of every crop we make.
            pyvips.cache_set_max(0)
            pyvips.cache_set_max_mem(_CACHE_BYTES)
            _configured = True
    return pyvips


def header_size(path: Path) -> tuple[int, int, int] | None:
    """(width, height, decoded bytes) from the file header, nothing decoded;
    None if libvips cannot read the header (the Pillow path then reports why)."""
    try:
        img = _vips().Image.new_from_file(str(path))
        per = img.bands * (2 if img.format == "ushort" else 1)
        return int(img.width), int(img.height), int(img.width) * int(img.height) * per
    except Exception:
        return None


def check_bomb(width: int, height: int) -> None:
    from microtome.core.settings import max_image_pixels

    if width > MAX_SIDE or height > MAX_SIDE:
        raise SourceError(f"image dimensions {width}x{height} are implausibly large "
                          "(damaged header or decompression bomb)")
    limit = max_image_pixels()
    if width * height > limit:
        raise SourceError(
            f"image {width}x{height} ({width * height / 1e9:.1f} gigapixels) is above the "
            f"decompression bomb limit of {limit / 1e9:.2f} gigapixels "
            "(raise MICROTOME_MAX_IMAGE_PIXELS to allow it)")


class VipsPicture(SourceReader):
    def __init__(self, path: Path, fmt: str) -> None:
        pyvips = _vips()
        self._tmp = Path(tempfile.mkdtemp(prefix="microtome-vips-"))
        try:
            self._open(pyvips, path, fmt)
        except SourceError:
            self.close()
            raise
        except Exception as e:
            self.close()
            raise SourceError(f"cannot decode {fmt.upper()}: {short_message(e)}") from e

    def _open(self, pyvips: Any, path: Path, fmt: str) -> None:
        # Sequential: libjpeg/libpng decode top to bottom, a band at a time.
        img = pyvips.Image.new_from_file(str(path), access="sequential", fail_on="truncated")
        notes = ["decoded in bands by libvips"]
        try:
            self._orientation = int(img.get("orientation"))
        except Exception:
            self._orientation = 1
        if self._orientation not in range(1, 9):
            self._orientation = 1
        need = img.width * img.height * img.bands * (2 if img.format == "ushort" else 1)
        free = shutil.disk_usage(self._tmp).free
        if need * 1.05 > free:
            raise SourceError(f"not enough temporary disk space to decode this picture "
                              f"({need / 1e9:.1f} GB needed in TMPDIR, "
                              f"{free / 1e9:.1f} GB free)")
        if img.interpretation == "cmyk":
            img = img.colourspace("srgb")
            notes.append("CMYK converted to RGB")
        if img.hasalpha():
            img = img.flatten(background=[255] * (img.bands - 1)
                              if img.format == "uchar" else [65535] * (img.bands - 1))
            notes.append("alpha composited on white")
        if img.format not in ("uchar", "ushort"):
            img = img.cast("uchar")
        # Decode once, now, to the temporary file (streamed in bands), so the
        # region reads that follow never decode the picture again.
        target = str(self._tmp / "decoded.v")
        img.write_to_file(target)
        self._img = pyvips.Image.new_from_file(target, access="random")
        sw, sh, n = int(self._img.width), int(self._img.height), int(self._img.bands)
        self._stored = (sw, sh)
        w, h = orient.oriented_size(self._orientation, sw, sh)
        if self._orientation != 1:
            notes.append(f"EXIF orientation {self._orientation} applied")
        dtype = "uint8" if self._img.format == "uchar" else "uint16"
        rgb = n == 3 and dtype == "uint8"
        channels = [] if rgb else [ChannelInfo("gray", "FFFFFF")] if n == 1 else [
            ChannelInfo(c, col) for c, col in (("Red", "FF0000"), ("Green", "00FF00"),
                                               ("Blue", "0000FF"))][:n]
        self.info = SourceInfo(format=fmt, width=w, height=h, dtype=dtype, rgb=rgb, size_c=n,
                               levels=[(w, h)], lossy=fmt == "jpeg", notes=notes,
                               channels=channels)
        self._meta = {"format": fmt, "size": [w, h], "bands": n,
                      "fields": {f: str(img.get(f))[:1000] for f in img.get_fields()
                                 if not f.endswith("-data") and f != "icc-profile-data"}}

    def read_region(self, x: int, y: int, w: int, h: int, t: int = 0, z: int = 0,
                    channels: list[int] | None = None) -> np.ndarray:
        sx, sy, sw, sh = orient.source_rect(self._orientation, *self._stored, x, y, w, h)
        try:
            block = np.asarray(self._img.crop(sx, sy, sw, sh).numpy())
        except Exception as e:
            raise SourceError(f"damaged image data near ({x},{y}): {short_message(e)}") from e
        if block.ndim == 2:
            block = block[..., None]
        block = orient.apply(self._orientation, block)
        if channels is not None and not self.info.rgb:
            block = block[..., channels]
        return np.ascontiguousarray(block)

    def original_metadata(self) -> dict[str, Any]:
        return self._meta

    def close(self) -> None:
        self._img = None
        shutil.rmtree(self._tmp, ignore_errors=True)
