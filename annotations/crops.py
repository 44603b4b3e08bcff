"""Annotation images: the crop of an annotation's bounding box and masks of its shape.

Synchronous (pyramid reads, PIL): call from an executor.
"""

from __future__ import annotations

import io
import math
from typing import Any, Literal

import numpy as np
import shapely
from PIL import Image, ImageDraw

from microtome.pyramid.errors import InvalidRequest
from microtome.pyramid.reader import Pyramid

Mode = Literal["crop", "mask", "alpha"]
FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}
MAX_SIZE = 4096


def crop_window(bounds: tuple[float, float, float, float], pad: float, width: int,
                height: int) -> tuple[int, int, int, int]:
    """Integer level-0 window (x, y, w, h) around `bounds` plus `pad` px, inside the image."""
    x0, y0, x1, y1 = bounds
    x0 = max(0, math.floor(x0 - pad))
    y0 = max(0, math.floor(y0 - pad))
    x1 = min(width, math.ceil(x1 + pad))
    y1 = min(height, math.ceil(y1 + pad))
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


def pick_level(downsamples: list[int], wanted: float) -> int:
    """The coarsest level whose downsample does not exceed `wanted` (≥ the needed detail)."""
    fine_enough = [i for i, d in enumerate(downsamples) if d <= wanted]
    return max(fine_enough, key=downsamples.__getitem__, default=0)


def _to_rgb8(block: np.ndarray) -> np.ndarray:
    """8-bit RGB for display: 8-bit 3-channel data as it is; anything else (16-bit,
    fluorescence channels) with each of its first channels stretched to its range."""
    if block.dtype == np.uint8 and block.shape[2] >= 3:
        return block[..., :3]
    chans = []
    for c in range(min(3, block.shape[2])):
        ch = block[..., c].astype(np.float64)
        lo, hi = float(ch.min()), float(ch.max())
        chans.append(np.zeros(ch.shape, np.uint8) if hi <= lo
                     else ((ch - lo) * (255.0 / (hi - lo))).astype(np.uint8))
    if len(chans) == 1:
        chans *= 3  # one channel: grey
    while len(chans) < 3:
        chans.append(np.zeros_like(chans[0]))
    return np.stack(chans, axis=2)


def rasterize(geom: shapely.Geometry, window: tuple[int, int, int, int],
              out_size: tuple[int, int]) -> Image.Image:
    """An 8-bit mask (255 inside) of `geom` over `window`, scaled to `out_size`."""
    x, y, w, h = window
    ow, oh = out_size
    sx, sy = ow / w, oh / h
    img = Image.new("L", (ow, oh), 0)
    draw = ImageDraw.Draw(img)

    def pts(coords: Any) -> list[tuple[float, float]]:
        return [((cx - x) * sx, (cy - y) * sy) for cx, cy in np.asarray(coords)[:, :2]]

    for part in shapely.get_parts(geom):
        t = part.geom_type
        if t == "Polygon":
            draw.polygon(pts(part.exterior.coords), fill=255)
            for hole in part.interiors:
                draw.polygon(pts(hole.coords), fill=0)
        elif t == "LineString":
            draw.line(pts(part.coords), fill=255, width=max(1, round(min(sx, sy) * 2)))
        elif t == "Point":
            (px, py), = pts(part.coords)
            draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=255)
    return img


def render(pyr: Pyramid, geom: shapely.Geometry, *, mode: Mode, size: int, pad: float,
           fmt: str) -> bytes:
    """Encoded image of an annotation: its bbox crop, its mask, or the crop with the
    mask as alpha.  The longer side is at most `size` (never upsampled past level 0)."""
    if fmt not in FORMATS:
        raise InvalidRequest(f"format must be one of {sorted(FORMATS)}")
    if not 1 <= size <= MAX_SIZE:
        raise InvalidRequest(f"size must be between 1 and {MAX_SIZE}")
    if mode == "alpha" and FORMATS[fmt] == "JPEG":
        raise InvalidRequest("alpha needs png or webp")
    meta = pyr.meta
    window = crop_window(geom.bounds, pad, meta.width, meta.height)
    x, y, w, h = window
    scale = min(1.0, size / max(w, h))
    out = (max(1, round(w * scale)), max(1, round(h * scale)))
    mask = rasterize(geom, window, out) if mode != "crop" else None
    if mode == "mask":
        img = mask
    else:
        li = pick_level([lv.downsample for lv in meta.levels], 1.0 / scale)
        lv = meta.levels[li]
        d = lv.downsample
        lx, ly = x // d, y // d
        lw = max(1, min(lv.width - lx, math.ceil((x + w) / d) - lx))
        lh = max(1, min(lv.height - ly, math.ceil((y + h) / d) - ly))
        block = _to_rgb8(pyr.read_region(li, lx, ly, lw, lh))
        img = Image.fromarray(np.ascontiguousarray(block)).resize(out, Image.Resampling.BILINEAR)
        if mask is not None:
            img = img.convert("RGBA")
            img.putalpha(mask)
    assert img is not None
    buf = io.BytesIO()
    img.save(buf, FORMATS[fmt], **({"quality": 90} if FORMATS[fmt] == "JPEG" else {}))
    return buf.getvalue()
