"""Synchronous tile producers: run in the executor, return encoded `Tile`s.

Each first tries the pass-through path (a stored JPEG chunk that is exactly
the answer: one pread, no decode/encode), then renders.  `dzi_chunk` and
`iiif_chunk` tell the caller beforehand (no I/O), so pass-through reads can go
to the I/O pool instead of queueing behind renders.
"""

from __future__ import annotations

import numpy as np

from pyramid.reader import Pyramid

from .cache import Tile
from .encode import CONTENT_TYPES, apply_quality, encode, rotate
from .iiif_params import ImageRequest
from .render import RGB, RenderParams, render_region
from .tilemath import DziTile, best_level, fit_within, is_full_chunk, level_for

#: (level, chunk row, chunk column) of a stored chunk.
ChunkRef = tuple[int, int, int]


def _chunk_at(pyr: Pyramid, level: int, lx: int, ly: int, w: int, h: int) -> ChunkRef | None:
    """(level, row, col) if (lx, ly, w, h) on ``level`` is exactly one whole stored JPEG chunk."""
    meta = pyr.meta
    if meta.kind != "rgb" or not pyr.direct or not is_full_chunk(meta, level, lx, ly, w, h):
        return None
    ts = meta.tile_size
    return level, ly // ts, lx // ts


def dzi_chunk(pyr: Pyramid, dt: DziTile, col: int, row: int, fmt: str,
              params: RenderParams) -> ChunkRef | None:
    """The stored chunk that is this Deep Zoom tile, if any (pure: no I/O)."""
    if dt.stored_level is None or fmt not in ("jpg", "jpeg") or params is not RGB:
        return None
    ts = pyr.meta.tile_size
    return _chunk_at(pyr, dt.stored_level, col * ts, row * ts, dt.out_w, dt.out_h)


def iiif_chunk(pyr: Pyramid, req: ImageRequest, params: RenderParams) -> ChunkRef | None:
    """The stored chunk that is this IIIF image, if any (pure: no I/O)."""
    if (req.format != "jpg" or req.quality not in ("default", "color") or req.mirror
            or req.rotation or params is not RGB):
        return None
    meta = pyr.meta
    level = level_for(meta, req.x, req.y, req.w, req.h, req.out_w, req.out_h)
    d = meta.levels[level].downsample
    if req.x % d or req.y % d or (req.w, req.h) != (req.out_w * d, req.out_h * d):
        return None
    return _chunk_at(pyr, level, req.x // d, req.y // d, req.out_w, req.out_h)


def _stored(pyr: Pyramid, ref: ChunkRef | None) -> Tile | None:
    if ref is None:
        return None
    data = pyr.chunk_bytes(*ref)
    if data is None or data[:2] != b"\xff\xd8":
        return None  # never written (fill value) or not a JPEG: render instead
    return Tile(data, "image/jpeg", passthrough=True)


def dzi_tile(pyr: Pyramid, dt: DziTile, col: int, row: int, fmt: str,
             params: RenderParams) -> Tile:
    hit = _stored(pyr, dzi_chunk(pyr, dt, col, row, fmt, params))
    if hit is not None:
        return hit
    level = dt.stored_level if dt.stored_level is not None else best_level(pyr.meta, dt.scale)
    # Like openslide's DeepZoomGenerator: the clipped region is fitted to the tile's
    # ceil-rounded size, so a level's partial last pixel stretches by under one pixel.
    pixels = render_region(pyr, dt.x, dt.y, dt.w, dt.h, dt.out_w, dt.out_h, params, level)
    return Tile(encode(pixels, fmt, pyr.jpeg_quality), CONTENT_TYPES[fmt])


def iiif_image(pyr: Pyramid, req: ImageRequest, params: RenderParams) -> Tile:
    hit = _stored(pyr, iiif_chunk(pyr, req, params))
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
