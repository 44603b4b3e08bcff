"""Per-channel histograms of a stored image: computed once, kept beside the pyramid.

The histogram is taken from one level-appropriate sample: the largest stored
level with at most `SAMPLE_PIXELS` pixels (a whole slide's overview level,
or level 0 of a small image).  Every pixel of that level counts, so the
statistics describe the whole image, not one region.  For multi-channel
("nd") images the sample is the default plane (t = 0, middle z), the plane
the viewer opens on.

The document is written at conversion as ``metadata/histogram.json`` and,
for images converted before histograms existed, computed on first request
and stored then (`load_or_compute`).  It names the pyramid version it was
computed from, so a re-converted image never answers with stale numbers.

Bins: 8-bit data has one bin per value (0..255).  Other dtypes have
`BINS` equal bins between the channel's minimum and maximum in the sample
(``bin_width`` gives the width; values are in stored units).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .reader import Pyramid

#: Largest sample level read (pixels): bounded time and memory per image.
SAMPLE_PIXELS = 4 * 1024 * 1024
BINS = 256
#: Where the document lives inside the pyramid folder.
RELPATH = "metadata/histogram.json"
#: Percentiles given per channel (auto-contrast clips at 0.5 / 99.5 by default).
PERCENTILES = (0.1, 0.5, 1.0, 2.0, 98.0, 99.0, 99.5, 99.9)
SCHEMA = 1


def sample_level(pyr: Pyramid) -> int:
    """The largest level with at most `SAMPLE_PIXELS` pixels (the last level otherwise)."""
    levels = pyr.meta.levels
    for i, lv in enumerate(levels):
        if lv.width * lv.height <= SAMPLE_PIXELS:
            return i
    return len(levels) - 1


def _percentiles(counts: np.ndarray, start: float, width: float) -> dict[str, float]:
    """Percentiles from bin counts: the lower edge of the bin holding each rank."""
    cum = np.cumsum(counts)
    total = int(cum[-1]) if len(cum) else 0
    out: dict[str, float] = {}
    for p in PERCENTILES:
        i = int(np.searchsorted(cum, total * p / 100.0, side="left")) if total else 0
        out[f"{p:g}"] = float(start + min(i, len(counts) - 1) * width)
    return out


def channel_histogram(values: np.ndarray, dtype: np.dtype[Any]) -> dict[str, Any]:
    """The histogram document of one channel's sample values (any shape)."""
    flat = np.ascontiguousarray(values).reshape(-1)
    n = int(flat.size)
    if dtype == np.uint8:
        counts = np.bincount(flat, minlength=256)[:256]
        start, width = 0.0, 1.0
        # Exact statistics from the counts: no float copy of the sample.
        v = np.arange(256, dtype=np.float64)
        seen = np.nonzero(counts)[0]
        lo, hi = (float(seen[0]), float(seen[-1])) if len(seen) else (0.0, 0.0)
        mean = float(counts @ v) / n if n else 0.0
        std = float(np.sqrt(max(0.0, float(counts @ (v - mean) ** 2) / n))) if n else 0.0
    else:
        data = flat.astype(np.float64)
        data = data[np.isfinite(data)]
        lo = float(data.min()) if data.size else 0.0
        hi = float(data.max()) if data.size else 0.0
        width = (hi - lo) / BINS if hi > lo else 1.0
        counts, _ = np.histogram(data, bins=BINS, range=(lo, lo + width * BINS))
        start = lo
        mean = float(data.mean()) if data.size else 0.0
        std = float(data.std()) if data.size else 0.0
    return {
        "count": n, "min": lo, "max": hi, "mean": mean, "std": std,
        "bin_start": start, "bin_width": width,
        "counts": [int(c) for c in counts],
        "percentiles": _percentiles(counts, start, width),
    }


def compute(pyr: Pyramid) -> dict[str, Any]:
    """The histogram document of an opened pyramid (CPU and I/O: run it off the event loop)."""
    meta = pyr.meta
    level = sample_level(pyr)
    lv = meta.levels[level]
    t, z = 0, meta.size_z // 2
    pixels = pyr.read_region(level, 0, 0, lv.width, lv.height, t=t, z=z,
                             channels=None if meta.kind == "rgb" else list(range(meta.size_c)))
    dtype = np.dtype(meta.dtype)
    labels = ["R", "G", "B"] if meta.kind == "rgb" else [
        meta.channels[i].label if i < len(meta.channels) else f"C{i}"
        for i in range(pixels.shape[2])]
    channels = []
    for i in range(pixels.shape[2]):
        doc = channel_histogram(pixels[..., i], dtype)
        channels.append({"index": i, "label": labels[i], **doc})
    return {
        "schema": SCHEMA, "version": meta.version, "kind": meta.kind, "dtype": meta.dtype,
        "sample": {"level": level, "width": lv.width, "height": lv.height,
                   "downsample": lv.downsample, "t": t, "z": z},
        "channels": channels,
    }


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


def read_stored(root: Path, version: str) -> bytes | None:
    """The stored document's bytes when it exists and matches ``version``, else None."""
    try:
        raw = (Path(root) / RELPATH).read_bytes()
    except OSError:
        return None
    return _checked(raw, version)


def _checked(raw: bytes, version: str) -> bytes | None:
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or doc.get("version") != version:
        return None
    return raw


def store(root: Path, data: bytes) -> bool:
    """Write the document atomically beside the pyramid; False when storage is read-only."""
    target = Path(root) / RELPATH
    try:
        target.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".histogram.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        return False
    return True


def load_or_compute(pyr: Pyramid) -> bytes:
    """Stored bytes, else computed now and stored (images converted before histograms)."""
    if pyr.store.remote:
        # Object storage: written at conversion; an older image's document is
        # computed but not written back (images there are published whole).
        try:
            raw: bytes | None = _checked(pyr.store.get(RELPATH), pyr.meta.version)
        except KeyError:
            raw = None
        return raw if raw is not None else encode(compute(pyr))
    raw = read_stored(Path(pyr.root), pyr.meta.version)
    if raw is not None:
        return raw
    data = encode(compute(pyr))
    store(Path(pyr.root), data)  # read-only storage: served from the caller's cache instead
    return data
