"""Plain pictures through Pillow: JPEG, PNG, GIF, BMP, WebP, JPEG 2000.

These formats have no random access, so the image is decoded once, whole,
after its header dimensions were checked against the memory limit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from microtome.pyramid.errors import SourceError

from ..base import ChannelInfo, SourceInfo, SourceReader, check_decoded_size, clean_json

#: Our format name -> Pillow's format id.
PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "bmp": "BMP", "webp": "WEBP",
               "jpeg2000": "JPEG2000"}

_BYTES_PER_PIXEL = {"1": 1, "L": 1, "LA": 2, "P": 4, "PA": 4, "RGB": 3, "RGBA": 4, "CMYK": 4,
                    "YCbCr": 3, "LAB": 3, "I": 4, "F": 4, "I;16": 2, "I;16B": 2,
                    "I;16L": 2, "I;16N": 2}


class PilReader(SourceReader):
    def __init__(self, path: Path, fmt: str) -> None:
        from PIL import Image

        try:
            if fmt == "png":
                # libpng through imagecodecs keeps 16-bit colour (Pillow truncates it)
                arr, rgb, notes, self._meta = _png(path)
            else:
                arr, rgb, notes, self._meta = _pil(path, fmt)
        except SourceError:
            raise
        except Image.DecompressionBombError as e:
            raise SourceError("image dimensions are implausibly large "
                              "(decompression bomb)") from e
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise SourceError(f"cannot decode {fmt.upper()}: {_short(e)}") from e
        except MemoryError as e:
            raise SourceError("image too large to decode in memory") from e
        self._arr = arr
        h, w = arr.shape[:2]
        n = arr.shape[2]
        lossy = fmt == "jpeg" or (fmt == "webp" and not _webp_lossless(path))
        self.info = SourceInfo(
            format=fmt, width=w, height=h, dtype=str(arr.dtype), rgb=rgb, size_c=n,
            levels=[(w, h)], lossy=lossy, notes=notes,
            channels=[] if rgb else _channels(n),
        )
        from .vendor_meta import exif_meta
        exif = self._meta.get("exif") or {}
        self.info.acquired, self.info.scanner = exif_meta(
            {int(k): v for k, v in exif.items() if str(k).isdigit()})
        if "1-bit samples stored as uint8 0/1" in notes:
            for ch in self.info.channels:
                ch.window = (0.0, 1.0)

    def read_region(self, x: int, y: int, w: int, h: int, t: int = 0, z: int = 0,
                    channels: list[int] | None = None) -> np.ndarray:
        block = self._arr[y:y + h, x:x + w]
        if channels is not None and not self.info.rgb:
            block = block[..., channels]
        return block

    def original_metadata(self) -> dict[str, Any]:
        return self._meta


def _pil(path: Path, fmt: str) -> tuple[np.ndarray, bool, list[str], dict[str, Any]]:
    from PIL import Image, ImageOps

    im: Any
    with Image.open(path, formats=[PIL_FORMATS[fmt]]) as im:
        w, h = im.size
        check_decoded_size(w, h, _BYTES_PER_PIXEL.get(im.mode, 4) + 4)
        meta = _pil_meta(im)
        frames = int(getattr(im, "n_frames", 1) or 1)
        im.load()
        im = ImageOps.exif_transpose(im)
        arr, rgb, notes = _to_array(im)
    if frames > 1:
        # Say so: the other frames of an animation are not converted.
        notes.append(f"animated image: first of {frames} frames converted")
    return arr, rgb, notes, meta


def _png(path: Path) -> tuple[np.ndarray, bool, list[str], dict[str, Any]]:
    import imagecodecs
    from PIL import Image

    from . import orientation as orient

    with Image.open(path, formats=["PNG"]) as im:  # header only: size, EXIF, metadata
        w, h = im.size
        check_decoded_size(w, h, 8 * 2)
        meta = _pil_meta(im)
        orientation = int(im.getexif().get(0x0112, 1) or 1)
    arr = imagecodecs.png_decode(path.read_bytes())
    if arr.ndim == 2:
        arr = arr[..., None]
    notes: list[str] = []
    if arr.shape[2] in (2, 4):  # gray+alpha, RGBA: composite on white
        top = np.iinfo(arr.dtype).max
        a = arr[..., -1:].astype(np.float64) / top
        arr = np.round(arr[..., :-1] * a + top * (1 - a)).astype(arr.dtype)
        notes.append("alpha composited on white")
    if orientation != 1 and orientation in range(2, 9):
        arr = orient.apply(orientation, arr)
        notes.append(f"EXIF orientation {orientation} applied")
    rgb = arr.shape[2] == 3 and arr.dtype == np.uint8
    return np.ascontiguousarray(arr), rgb, notes, meta


def _channels(n: int) -> list[ChannelInfo]:
    if n == 3:  # deep colour: shown as red, green, blue
        return [ChannelInfo(a, b) for a, b in (("Red", "FF0000"), ("Green", "00FF00"),
                                               ("Blue", "0000FF"))]
    return [ChannelInfo("gray", "FFFFFF")] if n == 1 else [ChannelInfo(f"C{i}")
                                                          for i in range(n)]


def _to_array(im: Any) -> tuple[np.ndarray, bool, list[str]]:
    """Pillow image -> (h, w, n) array, whether it is RGB, notes."""
    from PIL import Image

    notes: list[str] = []
    mode = im.mode
    if mode == "P" or mode == "PA":
        im = im.convert("RGBA" if ("transparency" in im.info or mode == "PA") else "RGB")
        mode = im.mode
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
        mode = "RGB"
    if mode in ("RGBA", "LA", "RGBa", "La"):
        base = "RGB" if mode.startswith("RGB") else "L"
        bg = Image.new(base, im.size, 255 if base == "L" else (255, 255, 255))
        bg.paste(im.convert("RGBA" if base == "RGB" else "LA"), mask=im.getchannel("A"))
        im, mode = bg, base
        notes.append("alpha composited on white")
    if mode == "1":
        arr = np.asarray(im, dtype=np.uint8)
        notes.append("1-bit samples stored as uint8 0/1")
    elif mode.startswith("I;16"):
        arr = np.asarray(im).astype(np.uint16)
    else:
        arr = np.asarray(im)
    if arr.ndim == 2:
        arr = arr[..., None]
    return np.ascontiguousarray(arr), mode == "RGB", notes


def _pil_meta(im: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"format": im.format, "mode": im.mode, "size": list(im.size)}
    info = {k: v for k, v in im.info.items() if k not in ("icc_profile", "exif")}
    meta["info"] = clean_json(info)
    try:
        exif = im.getexif()
        meta["exif"] = clean_json({str(k): v for k, v in exif.items()})
    except Exception:
        pass
    return meta


def _webp_lossless(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
        return head[12:16] == b"VP8L"
    except OSError:
        return False


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:200]
