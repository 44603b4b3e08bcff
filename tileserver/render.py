"""Turn stored pixels into 8-bit RGB: plane selection and channel rendering.

What to render comes as `RenderParams` (tileserver/renderparams.py, which
documents the query parameters).  Channels are composed additively (each
channel's normalised value times its colour, summed and clipped), which is
what fluorescence viewers do.  Any dtype (uint8/16/32, float) renders
through the windows.
"""

from __future__ import annotations

import math

import numpy as np

from microtome.pyramid.reader import Pyramid

from .bands import resample_banded
from .encode import resample
from .renderparams import RenderParams
from .tilemath import LevelBox, level_box, level_for


def compose(planes: np.ndarray, params: RenderParams) -> np.ndarray:
    """(h, w, n) stored values → (h, w, 3) uint8, additive over channels."""
    h, w = planes.shape[:2]
    acc = np.zeros((h, w, 3), np.float32)
    for i in range(planes.shape[2]):
        start, end = params.windows[i]
        v = (planes[..., i].astype(np.float32) - np.float32(start)) / np.float32(end - start)
        np.clip(v, 0.0, 1.0, out=v)
        if params.gammas[i] != 1.0:
            np.power(v, np.float32(1.0 / params.gammas[i]), out=v)
        if i < len(params.inverted) and params.inverted[i]:
            # After the gamma, as OMERO's reverse-intensity map.
            np.subtract(np.float32(1.0), v, out=v)
        color = np.asarray(params.colors[i], np.float32)
        acc += v[..., None] * color
    np.clip(acc, 0.0, 255.0, out=acc)
    return (acc + 0.5).astype(np.uint8)


#: Largest level window (pixels) read and composed in one piece.  Bigger windows
#: (IIIF ``full/max`` or large regions of big images) are rendered in bands of
#: output rows, so peak memory follows the output size and this constant, not
#: the source region: composing nd channels costs ~40 bytes per source pixel.
BAND_PIXELS = 1 << 20


def _window_rows(pyr: Pyramid, box: LevelBox, r0: int, r1: int, width: int,
                 params: RenderParams) -> np.ndarray:
    """Rows [r0, r1) of the level window as (r1 - r0, width, 3) uint8.

    Rows and columns past the level's edge repeat its last row/column, as the
    stored pyramid's own ceil-sized levels do (see `level_box`).
    """
    a = min(r0, box.h - 1)
    b = max(a + 1, min(r1, box.h))
    if pyr.meta.kind == "rgb":
        pixels = pyr.read_region(box.level, box.x, box.y + a, box.w, b - a)
    else:
        raw = pyr.read_region(box.level, box.x, box.y + a, box.w, b - a, t=params.t,
                              z=params.z, channels=list(params.channels))
        pixels = compose(raw, params)
        del raw
    skip = r0 - a  # > 0 only when the band lies wholly in the bottom padding
    pad = ((0, max(0, r1 - r0 + skip - pixels.shape[0])), (0, max(0, width - box.w)), (0, 0))
    if any(p[1] for p in pad):
        pixels = np.pad(pixels, pad, mode="edge")
    return pixels[skip:skip + r1 - r0]


def render_region(pyr: Pyramid, x: float, y: float, w: float, h: float, out_w: int, out_h: int,
                  params: RenderParams, level: int | None = None) -> np.ndarray:
    """A level-0 rectangle as (out_h, out_w, 3) uint8 RGB, read from the best level.

    Fractional rectangles are fine (filtered tiles add a margin of one output pixel).
    """
    meta = pyr.meta
    if level is None:
        level = level_for(meta, int(x), int(y), math.ceil(w), math.ceil(h), out_w, out_h)
    box = level_box(meta, level, x, y, w, h)
    need_w, need_h = math.ceil(box.fx + box.fw), math.ceil(box.fy + box.fh)
    width, height = max(box.w, need_w), max(box.h, need_h)
    if width * height <= BAND_PIXELS:
        pixels = _window_rows(pyr, box, 0, height, width, params)
        return resample(pixels, out_w, out_h, (box.fx, box.fy, box.fw, box.fh))
    return resample_banded(lambda r0, r1: _window_rows(pyr, box, r0, r1, width, params),
                           width, height, out_w, out_h, (box.fx, box.fy, box.fw, box.fh),
                           BAND_PIXELS)
