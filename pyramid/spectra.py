"""Mass spectra kept beside a pyramid (imzML conversions): ``<image>/spectra/``.

A zarr group whose attributes say the mode and the grid:

- continuous (one m/z axis for all pixels): ``mz`` (n,) float64 and
  ``intensity`` (height * width, n) float32, chunked (64 pixels, 4096 m/z) so
  a pixel's spectrum and an m/z slab of all pixels both read few chunks;
- processed (an m/z axis per pixel): ``index`` (height, width, 2) int64 =
  (offset, length) into the flat ``mz`` float64 and ``intensity`` float32.

``present`` (height, width) bool marks pixels that have a spectrum.
Readers here are plain functions (blocking: call them in an executor).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidRequest, NotFound

GROUP = "spectra"
PIXEL_CHUNK = 64
MZ_CHUNK = 4096
FLAT_CHUNK = 1 << 20
#: Largest ion image rendered on demand (pixels).
MAX_ION_PIXELS = 4096 * 4096


#: Opened spectra groups, keyed by (folder, modification time of its
#: metadata): a spectrum request then costs one chunk read, not a reopen.
_OPEN: OrderedDict[tuple[str, int], Any] = OrderedDict()
_OPEN_MAX = 16
_OPEN_LOCK = threading.Lock()


def _open(root: Path) -> Any:
    import zarr

    path = root / GROUP
    try:
        mtime = (path / "zarr.json").stat().st_mtime_ns
    except FileNotFoundError:
        raise NotFound("this image has no spectra (not a mass spectrometry image)") from None
    key = (str(path), mtime)
    with _OPEN_LOCK:
        group = _OPEN.get(key)
        if group is not None:
            _OPEN.move_to_end(key)
            return group
    group = zarr.open_group(str(path), mode="r")
    with _OPEN_LOCK:
        _OPEN[key] = group
        while len(_OPEN) > _OPEN_MAX:
            _OPEN.popitem(last=False)
    return group


def attributes(root: Path) -> dict[str, Any]:
    return dict(_open(root).attrs)


def spectrum(root: Path, x: int, y: int) -> dict[str, Any]:
    """The spectrum of pixel (x, y), level-0 pixel coordinates."""
    g = _open(root)
    width, height = g.attrs["width"], g.attrs["height"]
    if not (0 <= x < width and 0 <= y < height):
        raise InvalidRequest(f"pixel ({x}, {y}) is outside the image ({width} x {height})")
    if not bool(g["present"][y, x]):
        return {"x": x, "y": y, "mz": [], "intensity": []}
    if g.attrs["mode"] == "continuous":
        mz = np.asarray(g["mz"][:])
        inten = np.asarray(g["intensity"][y * width + x, :])
    else:
        off, n = (int(v) for v in g["index"][y, x])
        mz = np.asarray(g["mz"][off:off + n])
        inten = np.asarray(g["intensity"][off:off + n])
    return {"x": x, "y": y, "mz": mz.tolist(), "intensity": inten.astype(float).tolist()}


def ion_image(root: Path, mz: float, tol: float) -> np.ndarray:
    """(height, width) float64: per pixel, the summed intensity of m/z in
    [mz - tol, mz + tol]."""
    if not (np.isfinite(mz) and np.isfinite(tol)) or tol < 0 or mz <= 0:
        raise InvalidRequest("mz must be positive and tol non-negative")
    g = _open(root)
    width, height = g.attrs["width"], g.attrs["height"]
    if width * height > MAX_ION_PIXELS:
        raise InvalidRequest("image too large for an on-demand ion image")
    if g.attrs["mode"] == "continuous":
        axis = np.asarray(g["mz"][:])
        i0, i1 = np.searchsorted(axis, [mz - tol, mz + tol], side="left")
        i1 = np.searchsorted(axis, mz + tol, side="right")
        if i1 <= i0:
            return np.zeros((height, width))
        slab = np.asarray(g["intensity"][:, i0:i1], dtype=np.float64)
        return slab.sum(axis=1).reshape(height, width)  # type: ignore[no-any-return]
    index = np.asarray(g["index"][:])
    mzs = np.asarray(g["mz"][:])
    inten = np.asarray(g["intensity"][:], dtype=np.float64)
    out = np.zeros((height, width))
    for yy, xx in zip(*np.nonzero(index[..., 1] > 0), strict=True):
        off, n = index[yy, xx]
        seg = mzs[off:off + n]
        a, b = np.searchsorted(seg, [mz - tol, mz + tol], side="left")
        b = np.searchsorted(seg, mz + tol, side="right")
        out[yy, xx] = inten[off + a:off + b].sum()
    return out


def ion_image_default_tol(root: Path, mz: float, tol: float | None) -> np.ndarray:
    """`ion_image` with the tolerance chosen at conversion when ``tol`` is None."""
    if tol is None:
        tol = float(attributes(root).get("tolerance", 0.0))
    return ion_image(root, mz, tol)


class SpectraWriter:
    """Writes the group in pixel blocks (continuous) or appends (processed)."""

    def __init__(self, root: Path, mode: str, width: int, height: int,
                 mz_axis: np.ndarray | None, total_points: int, attrs: dict[str, Any]) -> None:
        import zarr

        self.mode, self.width, self.height = mode, width, height
        self.group = zarr.open_group(str(root / GROUP), mode="w", zarr_format=3)
        self.group.attrs.update({"mode": mode, "width": width, "height": height, **attrs})
        self.present = np.zeros((height, width), bool)
        if mode == "continuous":
            assert mz_axis is not None
            n = len(mz_axis)
            self.group.create_array("mz", data=np.asarray(mz_axis, np.float64),
                                    chunks=(max(1, n),))
            self.intensity = self.group.create_array(
                "intensity", shape=(width * height, max(1, n)), dtype="float32",
                chunks=(PIXEL_CHUNK, MZ_CHUNK), fill_value=0)
        else:
            self.index = np.zeros((height, width, 2), np.int64)
            size = max(1, total_points)
            self.mz = self.group.create_array("mz", shape=(size,), dtype="float64",
                                              chunks=(FLAT_CHUNK,), fill_value=0)
            self.flat = self.group.create_array("intensity", shape=(size,), dtype="float32",
                                                chunks=(FLAT_CHUNK,), fill_value=0)
            self._at = 0

    def write_block(self, first_pixel: int, block: np.ndarray, present: np.ndarray) -> None:
        """Continuous: rows [first_pixel, first_pixel + len(block)) of the intensities."""
        self.intensity[first_pixel:first_pixel + len(block)] = block
        flat = self.present.reshape(-1)
        flat[first_pixel:first_pixel + len(block)] = present

    def append(self, x: int, y: int, mz: np.ndarray, inten: np.ndarray) -> None:
        """Processed: one pixel's arrays (written in pixel order by the caller)."""
        n = len(mz)
        self.mz[self._at:self._at + n] = mz
        self.flat[self._at:self._at + n] = inten
        self.index[y, x] = (self._at, n)
        self.present[y, x] = True
        self._at += n

    def finish(self) -> None:
        self.group.create_array("present", data=self.present,
                                chunks=self.present.shape or (1,))
        if self.mode == "processed":
            self.group.create_array("index", data=self.index,
                                    chunks=(min(self.height, 1024), min(self.width, 1024), 2))
