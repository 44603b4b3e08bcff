"""Render a request with its filters (tileserver/filters.py): margins and Otsu levels.

Synchronous: runs in the tile executor.  The edge filter needs one output
pixel beyond the tile on each side, so filtered tiles are rendered from a
box one output pixel larger (inside the image; past its edge the edge pixel
repeats), which keeps neighbouring tiles seamless.  Otsu's threshold is one
per image and filter setting, taken from the image's overview level and kept
in a small bounded cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import numpy as np

from microtome.pyramid.reader import Pyramid

from .filters import NO_FILTERS, Filters, finish, grey, otsu, point_ops
from .render import BAND_PIXELS, render_region
from .renderparams import RenderParams
from .tilerequest import TileRequest

#: Overview level used for Otsu's threshold: the largest with at most this many pixels.
OTSU_PIXELS = 1 << 20
_OTSU_MAX = 256
_otsu_cache: OrderedDict[tuple[Path | str, str, str], int] = OrderedDict()
_otsu_lock = threading.Lock()


def _otsu_level(pyr: Pyramid, params: RenderParams) -> int:
    """Otsu's threshold of the whole image after the filters before the threshold."""
    before = replace(params, filters=params.filters.before_threshold())
    key = (pyr.root, pyr.meta.version, before.key())
    with _otsu_lock:
        hit = _otsu_cache.get(key)
        if hit is not None:
            _otsu_cache.move_to_end(key)
            return hit
    meta = pyr.meta
    level = next((i for i, lv in enumerate(meta.levels) if lv.width * lv.height <= OTSU_PIXELS),
                 len(meta.levels) - 1)
    lv = meta.levels[level]
    pixels = render_region(pyr, 0, 0, meta.width, meta.height, lv.width, lv.height,
                           replace(params, filters=NO_FILTERS), level)
    value = otsu(grey(point_ops(pixels, before.filters)))
    with _otsu_lock:
        _otsu_cache[key] = value
        while len(_otsu_cache) > _OTSU_MAX:
            _otsu_cache.popitem(last=False)
    return value


def render_request(pyr: Pyramid, req: TileRequest) -> np.ndarray:
    """The request's (out_h, out_w, 3) uint8 pixels, filters applied."""
    f: Filters = req.render.filters
    if f == NO_FILTERS:
        return render_region(pyr, req.x, req.y, req.w, req.h, req.out_w, req.out_h,
                             req.render, req.level)
    plain = replace(req.render, filters=NO_FILTERS)
    # Level-0 pixels per output pixel; the margin box stays at the same scale.
    sx, sy = req.w / req.out_w, req.h / req.out_h
    m = 1 if f.edge else 0
    width, height = pyr.meta.width, pyr.meta.height
    # A margin only where the image goes on; past its edge the edge pixel repeats.
    left, top = int(m and req.x - sx >= 0), int(m and req.y - sy >= 0)
    right = int(m and req.x + req.w + sx <= width)
    bottom = int(m and req.y + req.h + sy <= height)
    pixels = render_region(pyr, req.x - left * sx, req.y - top * sy,
                           req.w + (left + right) * sx, req.h + (top + bottom) * sy,
                           req.out_w + left + right, req.out_h + top + bottom, plain, req.level)
    if m:
        pad = ((m - top, m - bottom), (m - left, m - right), (0, 0))
        if any(a or b for a, b in pad):
            pixels = np.pad(pixels, pad, mode="edge")
    level = _otsu_level(pyr, req.render) if f.threshold is not None and f.threshold < 0 else None
    return _filter_bands(pixels, f, level, m)


def _filter_bands(pixels: np.ndarray, f: Filters, level: int | None, m: int) -> np.ndarray:
    """Filters applied in bands of rows: float work stays ~`BAND_PIXELS` whatever the size.

    Exact: the point operations need no neighbours and the edge filter one row,
    which each band carries as its margin.
    """
    h, w = pixels.shape[0] - 2 * m, pixels.shape[1] - 2 * m
    out = np.empty((h, w, 3), np.uint8)
    rows = max(1, BAND_PIXELS // max(1, pixels.shape[1]))
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        out[r0:r1] = finish(point_ops(pixels[r0:r1 + 2 * m], f), f, level, m)
    return out
