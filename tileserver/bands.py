"""Resample a big window in bands of rows with the pixels of one Pillow resize.

`encode.resample` hands the whole window to Pillow, which resizes in two
separable passes through an 8-bit intermediate.  For big renders the window
is what costs memory, so here the window is produced band by band: Pillow
does the horizontal pass of each band (the same coefficients as for the
whole window: same x box, same width) and the vertical pass is done in numpy
with Pillow's own vertical coefficients for the *whole* window
(`vertical_weights` follows Pillow's `precompute_coeffs`, box given as C
floats, and its 8-bit fixed-point rounding step for step).  Results equal
one Pillow resize within 1 level: Pillow 13 sometimes runs the vertical pass
first, which rounds the intermediate differently.  Cutting the vertical pass
into band-sized Pillow resizes instead would move each band's box by a float
rounding, and where a box edge falls exactly on a pixel centre Pillow's box
filter then takes or drops that whole row (differences of 10+ levels).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

#: Pillow's fixed-point precision for 8-bit images (Resample.c).
_PRECISION_BITS = 32 - 8 - 2


def _box(x: float) -> float:
    return 1.0 if -0.5 < x <= 0.5 else 0.0


def _bilinear(x: float) -> float:
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


@dataclass(frozen=True, slots=True)
class VerticalWeights:
    """Per output row: first input row, and int32 weights over ``ksize`` rows."""

    first: np.ndarray  # (out_h,) int
    count: np.ndarray  # (out_h,) int: input rows in each row's support
    weights: np.ndarray  # (out_h, ksize) int64, zero past each row's support


def _filter(shrink: bool) -> tuple[Callable[[float], float], float, Image.Resampling]:
    if shrink:
        return _box, 0.5, Image.Resampling.BOX
    return _bilinear, 1.0, Image.Resampling.BILINEAR


def vertical_weights(in_size: int, y0: float, y1: float, out_size: int,
                     shrink: bool) -> VerticalWeights:
    """Pillow's vertical coefficients for resizing rows [y0, y1) of ``in_size`` rows."""
    flt, support0, _ = _filter(shrink)
    # Pillow receives the box as C floats and subtracts them in float.
    in0, in1 = np.float32(y0), np.float32(y1)
    scale = float(in1 - in0) / out_size
    filterscale = max(scale, 1.0)
    support = support0 * filterscale
    ksize = math.ceil(support) * 2 + 1
    first = np.zeros(out_size, np.int64)
    count = np.zeros(out_size, np.int64)
    weights = np.zeros((out_size, ksize), np.int64)
    ss = 1.0 / filterscale
    for j in range(out_size):
        center = float(in0) + (j + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size) - lo
        ws = [flt((x + lo - center + 0.5) * ss) for x in range(hi)]
        total = 0.0
        for w in ws:  # plain left-to-right sum as in C (sum() compensates since 3.12)
            total += w
        first[j], count[j] = lo, max(hi, 0)
        for x, w in enumerate(ws):
            if total != 0.0:
                w /= total
            weights[j, x] = int(-0.5 + w * (1 << _PRECISION_BITS)) if w < 0 else \
                int(0.5 + w * (1 << _PRECISION_BITS))
    return VerticalWeights(first, count, weights)


def resample_banded(read_rows: Callable[[int, int], np.ndarray], width: int, height: int,
                    out_w: int, out_h: int, box: tuple[float, float, float, float],
                    band_pixels: int) -> np.ndarray:
    """What `encode.resample(window, out_w, out_h, box)` gives, without the whole window.

    ``read_rows(r0, r1)`` returns rows [r0, r1) of the (height, width, 3) uint8
    window; each call asks for about ``band_pixels`` window pixels.
    """
    bx, by, bw, bh = box
    shrink = min(bw / out_w, bh / out_h) > 1
    _, _, resampling = _filter(shrink)
    vw = vertical_weights(height, by, by + bh, out_h, shrink)
    ksize = vw.weights.shape[1]
    last = np.minimum(height, np.maximum(vw.first + vw.count, vw.first + 1))
    out = np.empty((out_h, out_w, 3), np.uint8)
    for j0, j1 in _bands(vw.first, last, width, band_pixels):
        r0, r1 = int(vw.first[j0:j1].min()), int(last[j0:j1].max())
        rows = read_rows(r0, r1)
        # Horizontal pass only (Pillow skips the vertical pass for a full-height box).
        tmp = np.asarray(Image.fromarray(rows).resize(
            (out_w, r1 - r0), resampling, box=(bx, 0, bx + bw, r1 - r0)))
        del rows
        acc = np.full((j1 - j0, out_w, 3), 1 << (_PRECISION_BITS - 1), np.int64)
        for k in range(ksize):
            coef = vw.weights[j0:j1, k]
            if not coef.any():
                continue
            # Weights past a row's support are zero, so clamping their index is harmless.
            idx = np.minimum(vw.first[j0:j1] + k - r0, r1 - r0 - 1)
            acc += tmp[idx].astype(np.int64) * coef[:, None, None]
        np.right_shift(acc, _PRECISION_BITS, out=acc)
        out[j0:j1] = np.clip(acc, 0, 255)
    return out


def _bands(first: np.ndarray, last: np.ndarray, width: int,
           band_pixels: int) -> Iterator[tuple[int, int]]:
    """Runs of output rows whose input rows add up to about ``band_pixels``."""
    j0, n = 0, len(first)
    while j0 < n:
        j1 = j0 + 1
        while j1 < n and (int(last[j1]) - int(first[j0])) * width <= band_pixels:
            j1 += 1
        yield j0, j1
        j0 = j1
