"""Pure tile math: Deep Zoom levels and tiles, thumbnails, level choice, region mapping.

Coordinates: level-0 pixels unless a name says otherwise; origin top-left.
Stored level k is assumed to be level 0 downsampled by ``Level.downsample``
with ceil rounding of sizes (pyramid.layout.level_sizes), so level pixel i
covers level-0 pixels [i*d, (i+1)*d).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from microtome.pyramid.errors import NotFound
from microtome.pyramid.layout import ImageMeta

from .renderparams import RGB, RenderParams
from .tilerequest import TileRequest


def dzi_max_level(width: int, height: int) -> int:
    """Index of the full-resolution Deep Zoom level (level 0 is 1x1)."""
    return (max(width, height) - 1).bit_length()


def dzi_level_size(width: int, height: int, level: int) -> tuple[int, int]:
    """Size of one Deep Zoom level: ceil(size / 2**(max - level))."""
    shift = dzi_max_level(width, height) - level
    if shift < 0 or level < 0:
        raise NotFound("no such level")
    step = 1 << shift
    return (width + step - 1) >> shift, (height + step - 1) >> shift


def dzi_tile(meta: ImageMeta, level: int, col: int, row: int, fmt: str = "jpg",
             render: RenderParams = RGB) -> TileRequest:
    """Map Deep Zoom (level, col, row) to a request; NotFound when outside the pyramid.

    The region is read from the coarsest stored level with at least the Deep
    Zoom level's resolution; like openslide's DeepZoomGenerator, the clipped
    region is fitted to the tile's ceil-rounded size, so a level's partial last
    pixel stretches by under one pixel.
    """
    width, height = meta.width, meta.height
    shift = dzi_max_level(width, height) - level
    if shift < 0 or level < 0 or col < 0 or row < 0:
        raise NotFound("no such tile")
    scale = 1 << shift
    lw, lh = (width + scale - 1) >> shift, (height + scale - 1) >> shift  # dzi_level_size
    ts = meta.tile_size
    if col * ts >= lw or row * ts >= lh:
        raise NotFound("no such tile")
    out_w, out_h = min(ts, lw - col * ts), min(ts, lh - row * ts)
    x, y = col * ts * scale, row * ts * scale
    w, h = min(out_w * scale, width - x), min(out_h * scale, height - y)
    return TileRequest(x, y, w, h, out_w, out_h, best_level(meta, scale),
                       "jpg" if fmt == "jpeg" else fmt, render=render)


def thumbnail_tile(meta: ImageMeta, size: int, fmt: str, render: RenderParams) -> TileRequest:
    """The whole image fitted in size x size (never enlarged)."""
    tw, th = fit_within(meta.width, meta.height, size, size)
    tw, th = min(tw, meta.width), min(th, meta.height)
    return TileRequest(0, 0, meta.width, meta.height, tw, th,
                       level_for(meta, 0, 0, meta.width, meta.height, tw, th),
                       "jpg" if fmt == "jpeg" else fmt, render=render)


def is_full_chunk(meta: ImageMeta, level: int, lx: int, ly: int, w: int, h: int) -> bool:
    """True when a level rectangle is exactly one whole stored chunk (no padding)."""
    ts = meta.tile_size
    lv = meta.levels[level]
    return (w == ts and h == ts and lx % ts == 0 and ly % ts == 0
            and lx + ts <= lv.width and ly + ts <= lv.height)


def best_level(meta: ImageMeta, scale: float) -> int:
    """The coarsest stored level that still has at least the requested resolution.

    ``scale`` is level-0 pixels per output pixel; reading a finer level than
    needed costs time, a coarser one loses detail.
    """
    limit = scale * (1 + 1e-9)
    chosen = 0
    for i, lv in enumerate(meta.levels):
        if lv.downsample <= limit:
            chosen = i
    return chosen


def level_for(meta: ImageMeta, x: int, y: int, w: int, h: int, out_w: int, out_h: int) -> int:
    """The coarsest stored level with at least out_w x out_h pixels over a level-0 region.

    Like `best_level(min(w / out_w, h / out_h))`, but a region that ends at the
    image's right/bottom edge may use the ceil-rounded size viewers ask for
    there (488 px at scale 4 → 122 px; the level's last pixel is partial), so
    edge tiles are read from their own level too.
    """

    def fits(pos: int, extent: int, out: int, full: int, d: int) -> bool:
        if d * out <= extent * (1 + 1e-9):
            return True
        return pos + extent == full and -(-extent // d) >= out and d * (out - 1) < extent

    chosen = 0
    for i, lv in enumerate(meta.levels):
        d = lv.downsample
        if fits(x, w, out_w, meta.width, d) and fits(y, h, out_h, meta.height, d):
            chosen = i
    return chosen


@dataclass(frozen=True, slots=True)
class LevelBox:
    """A level-0 rectangle expressed on one stored level.

    ``x, y, w, h`` is the integer pixel window to read (clipped to the
    level); ``fx, fy, fw, fh`` is the exact (fractional) source box inside
    that window, for the resampler.
    """

    level: int
    x: int
    y: int
    w: int
    h: int
    fx: float
    fy: float
    fw: float
    fh: float


def level_box(meta: ImageMeta, level: int, x: float, y: float, w: float, h: float) -> LevelBox:
    """Map a level-0 rectangle onto a stored level (see `LevelBox`).

    The fractional box may reach past the level's edge (a Deep Zoom level
    whose last pixel is partial); the caller pads the window by repeating
    the edge, as the stored pyramid's own ceil-sized levels do.
    """
    lv = meta.levels[level]
    d = lv.downsample
    x0, y0 = x / d, y / d
    x1, y1 = (x + w) / d, (y + h) / d
    ix0, iy0 = min(int(x0), lv.width - 1), min(int(y0), lv.height - 1)
    ix1, iy1 = min(lv.width, math.ceil(x1)), min(lv.height, math.ceil(y1))
    ix1, iy1 = max(ix1, ix0 + 1), max(iy1, iy0 + 1)
    return LevelBox(level, ix0, iy0, ix1 - ix0, iy1 - iy0,
                    x0 - ix0, y0 - iy0, max(x1 - x0, 1e-6), max(y1 - y0, 1e-6))


def fit_within(width: int, height: int, box_w: int, box_h: int) -> tuple[int, int]:
    """Largest size with the aspect ratio of width x height that fits box_w x box_h."""
    s = min(box_w / width, box_h / height)
    return max(1, min(box_w, round(width * s))), max(1, min(box_h, round(height * s)))
