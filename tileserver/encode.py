"""Pixel post-processing and encoding (CPU work: always called in the executor)."""

from __future__ import annotations

import imagecodecs
import numpy as np
from PIL import Image

CONTENT_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png",
                 "webp": "image/webp"}
#: Output quality of re-encoded JPEG/WebP tiles (stored chunks are sent as they are).
JPEG_QUALITY = 85
WEBP_QUALITY = 80


def resample(pixels: np.ndarray, out_w: int, out_h: int,
             box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """Resize (h, w, 3) uint8 to (out_h, out_w, 3), optionally from a fractional box.

    ``box`` is (x, y, w, h) inside ``pixels`` in pixels; Pillow's resampler
    releases the GIL.
    """
    h, w = pixels.shape[:2]
    if box is None:
        box = (0.0, 0.0, float(w), float(h))
    bx, by, bw, bh = box
    if (out_w, out_h) == (w, h) and (bx, by, bw, bh) == (0.0, 0.0, float(w), float(h)):
        return pixels
    img = Image.fromarray(pixels)
    # Shrinking: area average (what a pyramid level holds, so tiles agree across
    # levels); enlarging: bilinear.
    shrink = min(bw / out_w, bh / out_h)
    flt = Image.Resampling.BOX if shrink > 1 else Image.Resampling.BILINEAR
    out = img.resize((out_w, out_h), flt, box=(bx, by, bx + bw, by + bh))
    return np.asarray(out)


def apply_quality(pixels: np.ndarray, quality: str) -> np.ndarray:
    """default/color keep RGB; gray → (h, w) luma; bitonal → (h, w) of 0/255."""
    if quality in ("default", "color"):
        return pixels
    # ITU-R 601 luma, integer arithmetic (weights sum to 1000).
    luma = (pixels[..., 0].astype(np.uint32) * 299 + pixels[..., 1].astype(np.uint32) * 587
            + pixels[..., 2].astype(np.uint32) * 114) // 1000
    gray = luma.astype(np.uint8)
    if quality == "gray":
        return gray
    return np.where(gray > 127, 255, 0).astype(np.uint8)


def rotate(pixels: np.ndarray, mirror: bool, degrees: int) -> np.ndarray:
    """IIIF order: mirror (horizontally) first, then rotate clockwise."""
    if mirror:
        pixels = pixels[:, ::-1]
    if degrees:
        pixels = np.rot90(pixels, k=-(degrees // 90))
    return pixels


def encode(pixels: np.ndarray, fmt: str, jpeg_quality: int | None = None) -> bytes:
    """Encode (h, w, 3) or (h, w) uint8 pixels as jpg/png/webp.

    JPEG: ``jpeg_quality`` (the image's stored quality, so re-encoded tiles
    look like passed-through ones) else JPEG_QUALITY; 4:2:0 chroma like the
    stored chunks and every peer server (4:4:4 doubles bytes and encode time).
    """
    # numpy calls an array with a length-1 axis contiguous whatever that axis'
    # stride is (rot90 / mirror of a 1-pixel-high region leave negative or odd
    # ones) and ascontiguousarray keeps it; the codecs refuse it: copy.
    want = np.cumprod((pixels.itemsize, *pixels.shape[:0:-1]))[::-1]
    if pixels.strides != tuple(int(v) for v in want):
        pixels = pixels.copy(order="C")
    if fmt in ("jpg", "jpeg"):
        level = jpeg_quality or JPEG_QUALITY
        if pixels.ndim == 2:
            return bytes(imagecodecs.jpeg8_encode(pixels, level=level))
        return bytes(imagecodecs.jpeg8_encode(pixels, level=level, subsampling="420"))
    if fmt == "png":
        return bytes(imagecodecs.png_encode(pixels, level=1))
    if fmt == "webp":
        if pixels.ndim == 2:  # libwebp wants colour input
            pixels = np.ascontiguousarray(np.repeat(pixels[..., None], 3, axis=2))
        return bytes(imagecodecs.webp_encode(pixels, level=WEBP_QUALITY, lossless=False))
    raise ValueError(f"unsupported format {fmt}")
