"""How apps read pixels: one small protocol, a local OME-Zarr implementation.

Coordinates are always level-0 pixels (x right, y down, origin top-left),
whatever level is read; `read` returns (h, w, 3) uint8 RGB of one level.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class LevelInfo:
    width: int
    height: int
    #: Level-0 pixels per pixel of this level (1, 2, 4, ...).
    downsample: float


class Raster(Protocol):
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def levels(self) -> tuple[LevelInfo, ...]: ...
    @property
    def mpp(self) -> float | None:
        """Micrometres per level-0 pixel (mean of x and y); None when unknown."""
    def read(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """RGB uint8 (h, w, 3) of ``level``; x, y, w, h in that level's pixels."""


def coarsest_level_at_least(raster: Raster, min_side: int) -> int:
    """The coarsest level whose longer side is still >= ``min_side`` (0 if none)."""
    best = 0
    for i, lv in enumerate(raster.levels):
        if max(lv.width, lv.height) >= min_side:
            best = i
    return best


class LevelsRaster:
    """The `Raster` properties derived from a levels tuple and a pixel size
    (subclasses set ``_levels`` and ``_mpp`` and implement ``read``)."""

    _levels: tuple[LevelInfo, ...]
    _mpp: float | None

    @property
    def width(self) -> int:
        return self._levels[0].width

    @property
    def height(self) -> int:
        return self._levels[0].height

    @property
    def levels(self) -> tuple[LevelInfo, ...]:
        return self._levels

    @property
    def mpp(self) -> float | None:
        return self._mpp


class PyramidRaster(LevelsRaster):
    """An OME-Zarr written by Microtome (or any NGFF pyramid ``open_pyramid`` reads)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from microtome.pyramid.reader import open_pyramid

        self._path = os.fspath(path)
        self._p = open_pyramid(path)
        meta = self._p.meta
        if meta.kind != "rgb":
            # Fluorescence and 16-bit images need their own apps; the built-in
            # ones are brightfield (H&E, IHC) algorithms.
            from .errors import AnalysisError
            raise AnalysisError(
                f"{path}: not an RGB brightfield image ({meta.dtype}, {meta.size_c} channels)")
        self._levels = tuple(LevelInfo(lv.width, lv.height, float(lv.downsample))
                             for lv in meta.levels)
        ps = meta.pixel_size_um
        self._mpp = (ps[0] + ps[1]) / 2 if ps else None

    def read(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        return np.ascontiguousarray(self._p.read_region(level, x, y, w, h)[..., :3])

    def __reduce__(self) -> tuple[object, tuple[str]]:
        # Pickled as its path (a dask cluster worker opens the store itself and
        # reads its own pixels), once per process.
        return (open_pyramid_raster, (self._path,))


@functools.lru_cache(maxsize=8)
def open_pyramid_raster(path: str) -> PyramidRaster:
    """The `PyramidRaster` of ``path``, opened once per process."""
    return PyramidRaster(path)


class ArrayRaster(LevelsRaster):
    """An in-memory RGB image (tests, small pictures), with 2x-downsampled levels."""

    def __init__(self, rgb: np.ndarray, mpp: float | None = None, min_side: int = 64) -> None:
        if rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.dtype != np.uint8:
            raise ValueError("expected an (h, w, 3) uint8 array")
        self._arrays = [np.ascontiguousarray(rgb[..., :3])]
        while max(self._arrays[-1].shape[:2]) > min_side:
            a = self._arrays[-1]
            h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
            if h == 0 or w == 0:
                break
            a = a[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
            self._arrays.append(a.round().astype(np.uint8))
        self._levels = tuple(LevelInfo(a.shape[1], a.shape[0], float(2 ** i))
                             for i, a in enumerate(self._arrays))
        self._mpp = mpp

    def read(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        a = self._arrays[level]
        if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > a.shape[1] or y + h > a.shape[0]:
            raise ValueError("region outside level")
        return a[y:y + h, x:x + w].copy()
