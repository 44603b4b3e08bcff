"""Whole-slide formats through OpenSlide: Aperio, Hamamatsu, MIRAX, Leica,
Philips, Ventana, Sakura, Trestle, generic tiled TIFF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from microtome.pyramid.errors import SourceError

from ..base import SourceInfo, SourceReader, clean_json

#: OpenSlide vendor id -> our format name.
VENDOR_FORMATS = {
    "aperio": "svs",
    "hamamatsu": "ndpi",
    "mirax": "mrxs",
    "leica": "scn",
    "philips": "philips-tiff",
    "ventana": "bif",
    "sakura": "svslide",
    "trestle": "trestle",
    "synthetic": "synthetic",
    "generic-tiff": "generic-tiff",
}


def openslide_vendor(path: Path) -> str | None:
    """OpenSlide's content-based vendor detection, or None."""
    try:
        import openslide
        return openslide.OpenSlide.detect_format(str(path))
    except Exception:
        return None


def _float(props: Any, key: str) -> float | None:
    try:
        v = float(props[key])
        return v if v > 0 and np.isfinite(v) else None
    except (KeyError, ValueError, TypeError):
        return None


class OpenSlideReader(SourceReader):
    def __init__(self, path: Path, vendor: str) -> None:
        import openslide

        try:
            self._slide = openslide.OpenSlide(str(path))
        except openslide.OpenSlideUnsupportedFormatError as e:
            raise SourceError("unsupported slide format") from e
        except openslide.OpenSlideError as e:
            raise SourceError(f"cannot open slide: {_short(e)}") from e
        s = self._slide
        props = s.properties
        w, h = s.dimensions
        mppx = _float(props, openslide.PROPERTY_NAME_MPP_X)
        mppy = _float(props, openslide.PROPERTY_NAME_MPP_Y)
        bg = props.get(openslide.PROPERTY_NAME_BACKGROUND_COLOR) or "FFFFFF"
        try:
            self._bg = tuple(int(bg[i:i + 2], 16) for i in (0, 2, 4))
        except ValueError:
            self._bg = (255, 255, 255)
        tile = int(props.get("openslide.level[0].tile-width", 0) or 0)
        fmt = VENDOR_FORMATS.get(vendor, vendor)
        self.info = SourceInfo(
            format=fmt, vendor=vendor, width=w, height=h, dtype="uint8", rgb=True,
            size_c=3, levels=[(int(d[0]), int(d[1])) for d in s.level_dimensions],
            pixel_size_um=(mppx, mppy) if mppx and mppy else None,
            objective_power=_float(props, openslide.PROPERTY_NAME_OBJECTIVE_POWER),
            associated=[n for n in ("label", "macro", "thumbnail")
                        if n in s.associated_images],
            lossy=_is_lossy(vendor, props), whole_slide=True, tile_size=tile,
        )
        from .vendor_meta import openslide_meta
        self.info.acquired, self.info.scanner = openslide_meta(props)
        self._fast = _fast_level0(path, vendor, w, h)
        if self._fast is not None and not self._fast_agrees():
            self._fast.close()
            self._fast = None

    def read_region(self, x: int, y: int, w: int, h: int, t: int = 0, z: int = 0,
                    channels: list[int] | None = None) -> np.ndarray:
        import openslide

        if self._fast is not None:
            return self._fast.read(x, y, w, h)
        try:
            rgba = np.asarray(self._slide.read_region((x, y), 0, (w, h)))
        except openslide.OpenSlideError as e:
            raise SourceError(f"damaged slide data near ({x},{y}): {_short(e)}") from e
        return _flatten(rgba, self._bg)

    def _fast_agrees(self) -> bool:
        """The direct decoder must see what OpenSlide sees (colour space of JPEG 2000
        or unusual JPEG variants): compare one region, else fall back to OpenSlide.
        Decoders differ slightly in chroma upsampling (mean ~1 on CMU-1)."""
        import openslide

        w, h = self.info.width, self.info.height
        rw, rh = min(256, w), min(256, h)
        x, y = (w - rw) // 2, (h - rh) // 2
        try:
            ref = _flatten(np.asarray(self._slide.read_region((x, y), 0, (rw, rh))), self._bg)
            mine = self._fast.read(x, y, rw, rh)
        except (SourceError, openslide.OpenSlideError, OSError, ValueError):
            return False
        return float(np.abs(ref.astype(np.int16) - mine).mean()) <= 4.0

    def associated_image(self, name: str) -> np.ndarray:
        return np.asarray(self._slide.associated_images[name].convert("RGB"))

    def raw_tile(self, x: int, y: int, size: int) -> bytes | None:
        if self._fast is None or self.info.rgb is False:
            return None
        return self._fast.raw_tile(x, y, size)  # type: ignore[no-any-return]

    def original_metadata(self) -> dict[str, Any]:
        return clean_json(dict(self._slide.properties))

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        self._slide.close()


def _fast_level0(path: Path, vendor: str, w: int, h: int) -> Any:
    """Direct tile decoding for Aperio level 0 (a plain tiled TIFF page), else None."""
    if vendor != "aperio":
        return None
    import tifffile

    from .tiled import TiledPage

    try:
        with tifffile.TiffFile(str(path)) as tif:
            page: Any = tif.pages[0]
            if (page.is_tiled and page.dtype == np.uint8 and page.samplesperpixel == 3
                    and (page.imagewidth, page.imagelength) == (w, h)):
                page.decode  # noqa: B018 - build the decoder while the file is open
                return TiledPage(path, page)
    except Exception:
        return None
    return None


def _flatten(rgba: np.ndarray, bg: tuple[int, ...]) -> np.ndarray:
    """OpenSlide gives premultiplied RGBA; areas with no scan data have alpha 0.

    Composite over the slide's background colour (white unless it says).
    """
    rgb = np.ascontiguousarray(rgba[..., :3])
    alpha = rgba[..., 3]
    if alpha.min() == 255:
        return rgb
    a = alpha.astype(np.uint16)[..., None]
    bgv = np.asarray(bg, np.uint16)
    # premultiplied: out = rgb + bg * (1 - a)
    out = rgb.astype(np.uint16) + (bgv * (255 - a) + 127) // 255
    return np.minimum(out, 255).astype(np.uint8)


def _is_lossy(vendor: str, props: Any) -> bool:
    comp = str(props.get("tiff.Compression", "")).upper()
    if "JPEG" in comp or vendor in ("aperio", "hamamatsu", "mirax", "ventana", "philips"):
        return True
    return False


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:200]
