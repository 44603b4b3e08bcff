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

Any other level can be asked for (`compute(pyr, level)`): it is read in
bands of at most `SAMPLE_PIXELS` pixels (bounded memory whatever its size)
and stored beside the default document as ``metadata/histogram-level<N>.json``
once computed.

Bins: 8-bit data has one bin per value (0..255).  Other dtypes have
`BINS` equal bins between the channel's minimum and maximum in the sample
(``bin_width`` gives the width; values are in stored units).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidRequest
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
        return _from_u8_counts(np.bincount(flat, minlength=256)[:256])
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
    return _doc(n, lo, hi, mean, std, start, width, counts)


def _doc(n: int, lo: float, hi: float, mean: float, std: float, start: float, width: float,
         counts: np.ndarray) -> dict[str, Any]:
    return {
        "count": n, "min": lo, "max": hi, "mean": mean, "std": std,
        "bin_start": start, "bin_width": width,
        "counts": [int(c) for c in counts],
        "percentiles": _percentiles(counts, start, width),
    }


def _from_u8_counts(counts: np.ndarray) -> dict[str, Any]:
    """Exact statistics of 8-bit data from its 256 counts: no float copy of the pixels."""
    n = int(counts.sum())
    v = np.arange(256, dtype=np.float64)
    seen = np.nonzero(counts)[0]
    lo, hi = (float(seen[0]), float(seen[-1])) if len(seen) else (0.0, 0.0)
    mean = float(counts @ v) / n if n else 0.0
    std = float(np.sqrt(max(0.0, float(counts @ (v - mean) ** 2) / n))) if n else 0.0
    return _doc(n, lo, hi, mean, std, 0.0, 1.0, counts)


def _bands(pyr: Pyramid, level: int) -> Iterator[np.ndarray]:
    """The level's pixels (y, x, c) of the default plane, in bands of at most
    `SAMPLE_PIXELS` pixels (at least one row)."""
    meta = pyr.meta
    lv = meta.levels[level]
    rows = max(1, SAMPLE_PIXELS // max(1, lv.width))
    for y in range(0, lv.height, rows):
        yield pyr.read_region(level, 0, y, lv.width, min(rows, lv.height - y), t=0,
                              z=meta.size_z // 2,
                              channels=None if meta.kind == "rgb" else list(range(meta.size_c)))


def _streamed(pyr: Pyramid, level: int, dtype: np.dtype[Any]) -> list[dict[str, Any]]:
    """Per-channel documents of a level too large to read at once: 8-bit data in one
    pass (counts add up), other types in two (range and mean first, then the bins)."""
    if dtype == np.uint8:
        total: np.ndarray | None = None
        for band in _bands(pyr, level):
            counts = np.stack([np.bincount(band[..., c].reshape(-1), minlength=256)[:256]
                               for c in range(band.shape[2])])
            total = counts if total is None else total + counts
        assert total is not None
        return [_from_u8_counts(c) for c in total]
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    total_sum: np.ndarray | None = None
    n: np.ndarray | None = None
    for band in _bands(pyr, level):
        data = band.reshape(-1, band.shape[2]).astype(np.float64)
        ok = np.isfinite(data)
        b_lo = np.where(ok, data, np.inf).min(axis=0)
        b_hi = np.where(ok, data, -np.inf).max(axis=0)
        b_sum, b_n = np.where(ok, data, 0.0).sum(axis=0), ok.sum(axis=0)
        lo = b_lo if lo is None else np.minimum(lo, b_lo)
        hi = b_hi if hi is None else np.maximum(hi, b_hi)
        total_sum = b_sum if total_sum is None else total_sum + b_sum
        n = b_n if n is None else n + b_n
    assert lo is not None and hi is not None and total_sum is not None and n is not None
    chans = len(lo)
    mean = np.where(n > 0, total_sum / np.maximum(n, 1), 0.0)
    lo, hi = np.where(n > 0, lo, 0.0), np.where(n > 0, hi, 0.0)
    width = np.where(hi > lo, (hi - lo) / BINS, 1.0)
    counts = np.zeros((chans, BINS), np.int64)
    squares = np.zeros(chans)
    for band in _bands(pyr, level):
        data = band.reshape(-1, chans).astype(np.float64)
        for c in range(chans):
            v = data[:, c][np.isfinite(data[:, c])]
            counts[c] += np.histogram(v, bins=BINS, range=(lo[c], lo[c] + width[c] * BINS))[0]
            squares[c] += float(((v - mean[c]) ** 2).sum())
    return [_doc(int(n[c]), float(lo[c]), float(hi[c]), float(mean[c]),
                 float(np.sqrt(squares[c] / n[c])) if n[c] else 0.0, float(lo[c]),
                 float(width[c]), counts[c]) for c in range(chans)]


def check_level(pyr: Pyramid, level: int) -> None:
    if not 0 <= level < len(pyr.meta.levels):
        raise InvalidRequest(f"level must be between 0 and {len(pyr.meta.levels) - 1}",
                             {"field": "level"})


def compute(pyr: Pyramid, level: int | None = None) -> dict[str, Any]:
    """The histogram document of an opened pyramid, from `level` (default: the sample
    level). CPU and I/O: run it off the event loop."""
    meta = pyr.meta
    if level is None:
        level = sample_level(pyr)
    check_level(pyr, level)
    lv = meta.levels[level]
    t, z = 0, meta.size_z // 2
    dtype = np.dtype(meta.dtype)
    if lv.width * lv.height <= SAMPLE_PIXELS:
        pixels = pyr.read_region(level, 0, 0, lv.width, lv.height, t=t, z=z,
                                 channels=None if meta.kind == "rgb"
                                 else list(range(meta.size_c)))
        docs = [channel_histogram(pixels[..., i], dtype) for i in range(pixels.shape[2])]
    else:
        docs = _streamed(pyr, level, dtype)
    labels = ["R", "G", "B"] if meta.kind == "rgb" else [
        meta.channels[i].label if i < len(meta.channels) else f"C{i}"
        for i in range(len(docs))]
    channels = [{"index": i, "label": labels[i], **doc} for i, doc in enumerate(docs)]
    return {
        "schema": SCHEMA, "version": meta.version, "kind": meta.kind, "dtype": meta.dtype,
        "sample": {"level": level, "width": lv.width, "height": lv.height,
                   "downsample": lv.downsample, "t": t, "z": z},
        "channels": channels,
    }


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


def relpath(pyr: Pyramid, level: int | None = None) -> str:
    """Where the document of `level` is kept (the sample level's is `RELPATH`)."""
    if level is None or level == sample_level(pyr):
        return RELPATH
    return f"metadata/histogram-level{level}.json"


def read_stored(root: Path, version: str, rel: str = RELPATH) -> bytes | None:
    """The stored document's bytes when it exists and matches ``version``, else None."""
    try:
        raw = (Path(root) / rel).read_bytes()
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


def store(root: Path, data: bytes, rel: str = RELPATH) -> bool:
    """Write the document atomically beside the pyramid; False when storage is read-only."""
    target = Path(root) / rel
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


def load_or_compute(pyr: Pyramid, level: int | None = None) -> bytes:
    """Stored bytes, else computed now and stored (images converted before histograms,
    levels other than the sample level on first request)."""
    if level is not None:
        check_level(pyr, level)
    rel = relpath(pyr, level)
    if pyr.store.remote:
        # Object storage: written at conversion; an older image's document is
        # computed but not written back (images there are published whole).
        try:
            raw: bytes | None = _checked(pyr.store.get(rel), pyr.meta.version)
        except KeyError:
            raw = None
        return raw if raw is not None else encode(compute(pyr, level))
    raw = read_stored(Path(pyr.root), pyr.meta.version, rel)
    if raw is not None:
        return raw
    data = encode(compute(pyr, level))
    store(Path(pyr.root), data, rel)  # read-only storage: served from the caller's cache
    return data
