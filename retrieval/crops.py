"""The pixels a descriptor sees: an annotation's bounding box at a normalised scale.

Every crop is resampled to TARGET_UM micrometres per pixel so that slides
scanned at 0.25 and 0.5 µm/px describe the same tissue the same way.  When a
slide's pixel size is unknown the crop stays at level-0 pixels (no better
guess exists).  Synchronous (pyramid reads): call from an executor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from PIL import Image

from microtome.annotations.crops import crop_window, pick_level, rasterize
from microtome.pyramid.errors import InvalidRequest
from microtome.pyramid.reader import Pyramid

#: Micrometres per descriptor pixel (about a 10x objective).
TARGET_UM = 1.0
#: Shorter / longer side limits of a crop at the normalised scale, in pixels.
MIN_SIDE = 16
MAX_SIDE = 2048


@dataclass(frozen=True)
class Crop:
    rgb: NDArray[np.uint8]  # (H, W, 3)
    mask: NDArray[np.bool_]  # (H, W): inside the annotation's shape
    um_per_px: float | None  # None: level-0 pixels of a slide without a pixel size


def px_per_output(pixel_size_um: float | None) -> float:
    """Level-0 pixels per descriptor pixel (1 when the pixel size is unknown)."""
    if pixel_size_um is None or not pixel_size_um > 0:
        return 1.0
    return TARGET_UM / pixel_size_um


def output_size(w: int, h: int, factor: float) -> tuple[int, int]:
    """(width, height) of a level-0 window of w x h at `factor` level-0 px per output px;
    InvalidRequest when outside [MIN_SIDE, MAX_SIDE]."""
    ow, oh = max(1, round(w / factor)), max(1, round(h / factor))
    if min(ow, oh) < MIN_SIDE or max(ow, oh) > MAX_SIDE:
        unit = f"{TARGET_UM} µm pixels" if factor != 1.0 else "pixels"
        raise InvalidRequest(
            f"region of {ow}x{oh} {unit} cannot be described: sides must be between "
            f"{MIN_SIDE} and {MAX_SIDE}",
            {"min_side": MIN_SIDE, "max_side": MAX_SIDE, "size": [ow, oh],
             "um_per_px": TARGET_UM if factor != 1.0 else None})
    return ow, oh


def _rgb8(block: NDArray[np.generic]) -> NDArray[np.uint8]:
    """8-bit RGB: as stored for brightfield; other data stretched per channel to its range."""
    if block.dtype == np.uint8 and block.shape[2] >= 3:
        return np.ascontiguousarray(block[..., :3])
    chans = []
    for c in range(min(3, block.shape[2])):
        ch = block[..., c].astype(np.float64)
        lo, hi = float(ch.min()), float(ch.max())
        chans.append(np.zeros(ch.shape, np.uint8) if hi <= lo
                     else ((ch - lo) * (255.0 / (hi - lo))).astype(np.uint8))
    while len(chans) < 3:
        chans.append(chans[0])
    return np.stack(chans, axis=2)


def read_crop(pyr: Pyramid, geom: shapely.Geometry, pixel_size_um: float | None = None) -> Crop:
    """The bounding-box crop of `geom` (level-0 pixels) at the normalised scale."""
    meta = pyr.meta
    if pixel_size_um is None and meta.pixel_size_um is not None:
        pixel_size_um = float(meta.pixel_size_um[0])
    factor = px_per_output(pixel_size_um)
    x0, y0, x1, y1 = geom.bounds
    if x1 <= 0 or y1 <= 0 or x0 >= meta.width or y0 >= meta.height:
        raise InvalidRequest("the region lies outside the image",
                             {"width": meta.width, "height": meta.height})
    window = crop_window(geom.bounds, 0.0, meta.width, meta.height)
    x, y, w, h = window
    out = output_size(w, h, factor)
    li = pick_level([lv.downsample for lv in meta.levels], factor)
    lv = meta.levels[li]
    d = lv.downsample
    lx, ly = x // d, y // d
    lw = max(1, min(lv.width - lx, math.ceil((x + w) / d) - lx))
    lh = max(1, min(lv.height - ly, math.ceil((y + h) / d) - ly))
    block = _rgb8(pyr.read_region(li, lx, ly, lw, lh))
    img = Image.fromarray(block).resize(out, Image.Resampling.BILINEAR)
    mask = np.asarray(rasterize(geom, window, out)) > 0
    if geom.geom_type not in ("Polygon", "MultiPolygon") or not mask.any():
        mask = np.ones_like(mask)  # points and lines: their surroundings are the region
    return Crop(np.asarray(img, dtype=np.uint8), mask,
                TARGET_UM if factor != 1.0 else None)
