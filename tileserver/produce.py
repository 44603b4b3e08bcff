"""Synchronous tile producers: run in the executor, return encoded `Tile`s.

Each first tries the pass-through path (a stored JPEG chunk that is exactly
the answer: one pread, no decode/encode), then renders.
"""

from __future__ import annotations

import numpy as np

from pyramid.reader import Pyramid

from .cache import Tile
from .encode import CONTENT_TYPES, apply_quality, encode, rotate
from .iiif_params import ImageRequest
from .render import RGB, RenderParams, render_region
from .tilemath import DziTile, best_level, fit_within, is_full_chunk, level_for


def _stored_chunk(pyr: Pyramid, level: int, lx: int, ly: int, w: int, h: int) -> Tile | None:
    """The stored JPEG chunk if (lx, ly, w, h) on ``level`` is exactly one whole chunk."""
    meta = pyr.meta
    if meta.kind != "rgb" or not pyr.direct or not is_full_chunk(meta, level, lx, ly, w, h):
        return None
    ts = meta.tile_size
    data = pyr.chunk_bytes(level, ly // ts, lx // ts)
    if data is None or data[:2] != b"\xff\xd8":
        return None  # never written (fill value) or not a JPEG: render instead
    return Tile(data, "image/jpeg", passthrough=True)


def dzi_tile(pyr: Pyramid, dt: DziTile, col: int, row: int, fmt: str,
             params: RenderParams) -> Tile:
    ts = pyr.meta.tile_size
    if dt.stored_level is not None and fmt in ("jpg", "jpeg") and params is RGB:
        hit = _stored_chunk(pyr, dt.stored_level, col * ts, row * ts, dt.out_w, dt.out_h)
        if hit is not None:
            return hit
    level = dt.stored_level if dt.stored_level is not None else best_level(pyr.meta, dt.scale)
    # Like openslide's DeepZoomGenerator: the clipped region is fitted to the tile's
    # ceil-rounded size, so a level's partial last pixel stretches by under one pixel.
    pixels = render_region(pyr, dt.x, dt.y, dt.w, dt.h, dt.out_w, dt.out_h, params, level)
    return Tile(encode(pixels, fmt, pyr.jpeg_quality), CONTENT_TYPES[fmt])


def iiif_image(pyr: Pyramid, req: ImageRequest, params: RenderParams) -> Tile:
    meta = pyr.meta
    if (req.format == "jpg" and req.quality in ("default", "color") and not req.mirror
            and req.rotation == 0 and params is RGB):
        level = level_for(meta, req.x, req.y, req.w, req.h, req.out_w, req.out_h)
        d = meta.levels[level].downsample
        if req.x % d == 0 and req.y % d == 0 and (req.w, req.h) == (req.out_w * d,
                                                                      req.out_h * d):
            hit = _stored_chunk(pyr, level, req.x // d, req.y // d, req.out_w, req.out_h)
            if hit is not None:
                return hit
    pixels: np.ndarray = render_region(pyr, req.x, req.y, req.w, req.h, req.out_w, req.out_h,
                                       params)
    pixels = rotate(apply_quality(pixels, req.quality), req.mirror, req.rotation)
    return Tile(encode(pixels, req.format, pyr.jpeg_quality), CONTENT_TYPES[req.format])


def thumbnail(pyr: Pyramid, size: int, fmt: str, params: RenderParams) -> Tile:
    meta = pyr.meta
    tw, th = fit_within(meta.width, meta.height, size, size)
    tw, th = min(tw, meta.width), min(th, meta.height)
    pixels = render_region(pyr, 0, 0, meta.width, meta.height, tw, th, params)
    return Tile(encode(pixels, fmt, pyr.jpeg_quality), CONTENT_TYPES[fmt])
