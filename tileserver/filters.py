"""Image filters applied on the server: parameters (validated, canonical) and pixel ops (pure).

Query parameters, accepted on every image URL like the rendering parameters
(tileserver/renderparams.py), applied to the displayed 8-bit RGB in this
order:

1. `stain` (`stain=H`, `E` or `DAB`; RGB brightfield images only): colour
   deconvolution with the haematoxylin-eosin-DAB matrix of Ruifrok and
   Johnston (scikit-image's ``rgb2hed``), showing only that stain, as
   ``hed2rgb`` of that stain alone would.
2. `contrast` (0-10, default 1) then `brightness` (-1-1, default 0):
   ``v = (v - 0.5) * contrast + 0.5 + brightness`` on values in 0-1.
3. `gamma` on RGB images (one value or one per R, G, B; 0.05-20):
   ``v = v ** (1 / gamma)``.  (On multi-channel images `gamma` stays the
   per-channel display gamma of renderparams.py.)
4. `threshold` (`threshold=128` for a grey level 0-255, or `threshold=otsu`):
   grey level (``0.2125 R + 0.7154 G + 0.0721 B``, scikit-image's
   ``rgb2gray``) above the threshold is white, the rest black.  Otsu's
   threshold is computed once per image and filter settings from the whole
   image (its overview level after steps 1-3), so every tile uses the same one.
5. `edge` (`edge=sobel`): Sobel gradient magnitude of the grey level
   (scikit-image's ``filters.sobel``); tiles are rendered with a one-pixel
   margin so there are no seams between them.

Values are rounded to a fixed step (brightness 1/255, contrast and gamma
0.01) before rendering, so there are bounded many distinct tiles per
setting and the cache key names exactly the pixels served.  Bad values are
400 on every image; `stain` on a multi-channel image is 400 (it does not
apply).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from microtome.pyramid.errors import InvalidRequest

FILTER_KEYS = ("stain", "contrast", "brightness", "threshold", "edge")
STAINS = ("H", "E", "DAB")

# Ruifrok & Johnston stain vectors (rows: H, E, DAB), as scikit-image's rgb_from_hed.
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29],
                         [0.07, 0.99, 0.11],
                         [0.27, 0.57, 0.78]])
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)
#: scikit-image's floor for optical density (avoids log(0)).
_LOG_ADJUST = np.log(1e-6)
#: rgb2gray weights (scikit-image, ITU-R 709 luma).
GREY = np.array([0.2125, 0.7154, 0.0721], np.float32)


@dataclass(frozen=True, slots=True)
class Filters:
    """Validated filter settings; `NO_FILTERS` when nothing is asked."""

    stain: str = ""
    contrast: float = 1.0
    brightness: float = 0.0
    #: Per R, G, B (RGB images only).
    gamma: tuple[float, float, float] = (1.0, 1.0, 1.0)
    #: Grey level 0-255, -1 for Otsu, None for no threshold.
    threshold: int | None = None
    edge: bool = False

    def key(self) -> str:
        """Canonical text for cache keys and ETags ('' for `NO_FILTERS`)."""
        if self == NO_FILTERS:
            return ""
        return (f"|s{self.stain}c{self.contrast:g}b{self.brightness:.6f}"
                f"g{self.gamma}t{self.threshold}e{int(self.edge)}")

    def before_threshold(self) -> Filters:
        """The point operations that come before the threshold (what Otsu sees)."""
        return Filters(self.stain, self.contrast, self.brightness, self.gamma)


NO_FILTERS = Filters()


def _bad(name: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, {"parameter": name})


def _number(query: Mapping[str, str], name: str, lo: float, hi: float) -> float:
    raw = query[name]
    try:
        v = float(raw) if len(raw) <= 32 else float("nan")
    except ValueError:
        v = float("nan")
    if not (np.isfinite(v) and lo <= v <= hi):
        raise _bad(name, f"{name} must be a number in {lo:g}..{hi:g}")
    return v


def parse_filters(kind: str, query: Mapping[str, str],
                  rgb_gamma: tuple[float, ...] = ()) -> Filters:
    """Filter parameters → `Filters`; ``rgb_gamma`` are the parsed `gamma` values of an RGB image.

    Every parameter is validated whatever the image; `stain` on a
    multi-channel image is refused (it has no meaning there).
    """
    stain = ""
    if "stain" in query:
        stain = query["stain"].upper()
        if stain not in STAINS:
            raise _bad("stain", "stain must be H, E or DAB")
        if kind != "rgb":
            raise _bad("stain", "stain applies to RGB brightfield images only")
    contrast = round(_number(query, "contrast", 0, 10), 2) if "contrast" in query else 1.0
    brightness = (round(_number(query, "brightness", -1, 1) * 255) / 255
                  if "brightness" in query else 0.0)
    threshold: int | None = None
    if "threshold" in query:
        raw = query["threshold"]
        if raw.lower() == "otsu":
            threshold = -1
        elif raw.isascii() and raw.isdigit() and len(raw) <= 3 and int(raw) <= 255:
            threshold = int(raw)
        else:
            raise _bad("threshold", "threshold must be a grey level 0..255 or otsu")
    edge = False
    if "edge" in query:
        if query["edge"].lower() != "sobel":
            raise _bad("edge", "edge must be sobel")
        edge = True
    gamma = (1.0, 1.0, 1.0)
    if kind == "rgb" and rgb_gamma:
        g = [round(v, 2) for v in rgb_gamma]
        g3 = (g * 3)[:3] if len(g) == 1 else g[:3]
        gamma = (g3[0], g3[1], g3[2])
    if contrast == 1.0:
        contrast = 1.0  # -0.0/1.00 spellings: one key
    return Filters(stain, contrast, brightness + 0.0, gamma, threshold, edge)


# -- pixel operations --------------------------------------------------------------


def single_stain(pixels: np.ndarray, stain: str) -> np.ndarray:
    """(h, w, 3) uint8 → float32 0-1 RGB showing only one stain (rgb2hed, then hed2rgb)."""
    k = STAINS.index(stain)
    rgb = np.maximum(pixels.astype(np.float32) / np.float32(255), np.float32(1e-6))
    od = np.log(rgb) / np.float32(_LOG_ADJUST)
    conc = np.maximum(od @ HED_FROM_RGB[:, k].astype(np.float32), 0)
    log_rgb = -(conc[..., None] * np.float32(-_LOG_ADJUST)) * RGB_FROM_HED[k].astype(np.float32)
    out: np.ndarray = np.clip(np.exp(log_rgb), 0, 1)
    return out


def point_ops(pixels: np.ndarray, f: Filters) -> np.ndarray:
    """Steps 1-3 (stain, contrast/brightness, gamma): (h, w, 3) uint8 → uint8."""
    if f.stain:
        v = single_stain(pixels, f.stain)
    elif f.contrast == 1.0 and f.brightness == 0.0 and f.gamma == (1.0, 1.0, 1.0):
        return pixels
    else:
        v = pixels.astype(np.float32) / np.float32(255)
    if f.contrast != 1.0 or f.brightness != 0.0:
        v = (v - np.float32(0.5)) * np.float32(f.contrast) + np.float32(0.5 + f.brightness)
    np.clip(v, 0, 1, out=v)
    if f.gamma != (1.0, 1.0, 1.0):
        np.power(v, np.asarray([1.0 / g for g in f.gamma], np.float32), out=v)
    return (v * np.float32(255) + np.float32(0.5)).astype(np.uint8)


def grey(pixels: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 → (h, w) uint8 grey level (rgb2gray weights, rounded)."""
    g = pixels.astype(np.float32) @ GREY
    out: np.ndarray = np.clip(g + np.float32(0.5), 0, 255).astype(np.uint8)
    return out


def otsu(values: np.ndarray) -> int:
    """Otsu's threshold of uint8 values, as scikit-image's ``threshold_otsu`` computes it."""
    counts = np.bincount(values.reshape(-1), minlength=256).astype(np.float64)
    nz = np.nonzero(counts)[0]
    if len(nz) == 0:
        return 0
    lo, hi = int(nz[0]), int(nz[-1])
    if lo == hi:
        return lo
    counts = counts[lo:hi + 1]
    centers = np.arange(lo, hi + 1, dtype=np.float64)
    w1 = np.cumsum(counts)
    w2 = np.cumsum(counts[::-1])[::-1]
    m1 = np.cumsum(counts * centers) / w1
    m2 = (np.cumsum((counts * centers)[::-1]) / w2[::-1])[::-1]
    var = w1[:-1] * w2[1:] * (m1[:-1] - m2[1:]) ** 2
    return int(centers[int(np.argmax(var))])


def sobel(g: np.ndarray) -> np.ndarray:
    """Sobel magnitude of (h, w) grey values 0-1 with a 1-pixel margin already around them.

    Returns (h - 2, w - 2): scikit-image's ``filters.sobel`` on the interior
    (kernels [1, 2, 1] / 4 by [1, 0, -1], magnitude sqrt((gx² + gy²) / 2)).
    """
    s = (g[:-2] + 2 * g[1:-1] + g[2:]) / 4  # smooth along y
    gx = s[:, 2:] - s[:, :-2]
    t = (g[:, :-2] + 2 * g[:, 1:-1] + g[:, 2:]) / 4  # smooth along x
    gy = t[2:] - t[:-2]
    out: np.ndarray = np.sqrt((gx * gx + gy * gy) / 2)
    return out


def finish(pixels: np.ndarray, f: Filters, otsu_level: int | None, margin: int) -> np.ndarray:
    """Steps 4-5 on point-processed pixels; crops ``margin`` pixels (kept for the edge filter)."""
    if f.threshold is None and not f.edge:
        return pixels[margin:pixels.shape[0] - margin, margin:pixels.shape[1] - margin]
    g = grey(pixels)
    if f.threshold is not None:
        level = otsu_level if f.threshold < 0 else f.threshold
        g = np.where(g > (level if level is not None else 0), 255, 0).astype(np.uint8)
    if f.edge:
        if margin == 0:
            g = np.pad(g, 1, mode="edge")  # scipy's "reflect" for a 1-pixel pad
        mag = sobel(g.astype(np.float32) / np.float32(255))
        g = (np.clip(mag, 0, 1) * np.float32(255) + np.float32(0.5)).astype(np.uint8)
        margin = max(0, margin - 1)
    if margin:
        g = g[margin:g.shape[0] - margin, margin:g.shape[1] - margin]
    return np.repeat(g[..., None], 3, axis=2)
