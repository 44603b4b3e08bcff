"""Nucleus detection for H&E and hematoxylin/DAB slides.

Colour deconvolution (scikit-image ``rgb2hed``) gives the hematoxylin optical
density; a threshold on it finds nuclear pixels, a distance-transform
watershed splits touching nuclei, and every nucleus becomes a polygon with its
measurements. The slide is processed tile by tile at full resolution; each
tile is read with an overlap margin wider than a nucleus, and a nucleus
belongs to the one tile whose core (the tile without its margin) contains its
centroid, so a nucleus cut by a tile border is found exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from shapely import affinity

from ..descriptor import AppDescriptor
from ..errors import InvalidParams
from ..features import Feature
from ..raster import Raster, coarsest_level_at_least
from ..runner import Region, RunContext, area_in_px2, length_in_px
from ..tiles import iter_tiles, owns, tile_grid, window
from ..vectorize import label_polygons
from .tissue import tissue_score

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "threshold": {"type": ["number", "null"], "minimum": 0, "maximum": 3, "default": None,
                      "title": "Hematoxylin threshold (optical density)",
                      "description": "empty: chosen by Otsu on the slide's tissue"},
        "min_area": {"type": "number", "minimum": 0, "default": 10.0,
                     "title": "Minimum nucleus area (µm², or pixels² without pixel size)"},
        "max_area": {"type": "number", "exclusiveMinimum": 0, "default": 400.0,
                     "title": "Maximum nucleus area (µm²)"},
        "split_distance": {"type": "number", "exclusiveMinimum": 0, "default": 2.5,
                           "title": "Minimum distance between two nucleus centres "
                                    "when splitting touching nuclei (µm)"},
        "max_diameter": {"type": "number", "exclusiveMinimum": 0, "default": 25.0,
                         "title": "Largest nucleus diameter (µm); the tile overlap"},
        "tile_size": {"type": "integer", "minimum": 256, "maximum": 4096, "default": 1024,
                      "title": "Tile side (pixels)"},
    },
}

BLUE = (30, 60, 200)


def hematoxylin(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(h, w) hematoxylin optical density (>= 0) and the eosin one, from RGB uint8."""
    from skimage.color import rgb2hed

    hed = rgb2hed(rgb)
    return np.clip(hed[..., 0], 0, None), np.clip(hed[..., 1], 0, None)


def auto_threshold(raster: Raster, region: Region) -> float:
    """Otsu on the hematoxylin of the tissue pixels of a low-resolution view.

    One threshold for the whole run (not one per tile) so that a nucleus cut by
    a tile border is segmented the same way in both tiles.
    """
    from skimage.filters import threshold_otsu

    level = coarsest_level_at_least(raster, 1024)
    ds = raster.levels[level].downsample
    lv = raster.levels[level]
    x0, y0 = int(region.x // ds), int(region.y // ds)
    x1 = min(lv.width, max(x0 + 1, math.ceil((region.x + region.w) / ds)))
    y1 = min(lv.height, max(y0 + 1, math.ceil((region.y + region.h) / ds)))
    rgb = raster.read(level, x0, y0, x1 - x0, y1 - y0)
    h, _ = hematoxylin(rgb)
    sat = tissue_score(rgb, "saturation")
    # Glass vs tissue: Otsu on saturation, capped so that a view that is all
    # tissue (Otsu would then split stroma from nuclei) keeps all of it.
    tissue = sat > min(threshold_otsu(sat), 0.15) if float(sat.max() - sat.min()) > 1e-3 \
        else np.ones(sat.shape, bool)
    values = h[tissue]
    if values.size < 16:
        values = h.ravel()
    # Saturated dark pixels give huge densities; they must not drag Otsu up.
    values = np.clip(values, 0, np.percentile(values, 99.5))
    if float(values.max() - values.min()) < 1e-6:
        return float(values.max()) + 1.0  # nothing to separate: no nuclei
    return float(threshold_otsu(values))


def segment(h: np.ndarray, threshold: float, min_area_px: float, max_area_px: float,
            split_px: float) -> np.ndarray:
    """Label image of nuclei in one window (hematoxylin density → labels)."""
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.morphology import remove_small_objects
    from skimage.segmentation import watershed

    mask = ndi.gaussian_filter(h, 1.0) > threshold
    mask = ndi.binary_fill_holes(mask)
    if min_area_px >= 1:
        mask = remove_small_objects(mask, max_size=int(min_area_px))
    if not mask.any():
        return np.zeros(h.shape, np.int32)
    dist = ndi.gaussian_filter(ndi.distance_transform_edt(mask), 1.0)
    regions, _ = ndi.label(mask)
    peaks = peak_local_max(dist, min_distance=max(1, round(split_px)), labels=regions,
                           exclude_border=False)
    markers = np.zeros(h.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-dist, markers, mask=mask)
    # Fragments below the minimum (watershed slivers) and blobs above the maximum
    # (clumps, folds) are not nuclei.
    sizes = np.bincount(labels.ravel())
    bad = (sizes < max(1.0, min_area_px)) | (sizes > max_area_px)
    bad[0] = False
    labels[bad[labels]] = 0
    return labels.astype(np.int32)


def _measure(poly: Any, h: np.ndarray, e: np.ndarray, lab: np.ndarray, i: int,
             mpp: float | None) -> dict[str, float]:
    sel = lab == i
    m = {"Area px^2": poly.area, "Perimeter px": poly.length,
         "Circularity": 4 * math.pi * poly.area / poly.length ** 2 if poly.length else 0.0,
         "Hematoxylin OD mean": float(h[sel].mean()), "Eosin OD mean": float(e[sel].mean())}
    if mpp:
        m |= {"Area µm^2": poly.area * mpp * mpp, "Perimeter µm": poly.length * mpp}
    return m


@dataclass
class TileCells:
    """Nuclei segmented in one tile's window; ``cells`` are those the tile owns."""

    x0: int
    y0: int
    labels: np.ndarray
    #: (label, polygon in window pixels, centroid x, centroid y in level-0 pixels)
    cells: list[tuple[int, Any, float, float]]


def cells_in_tile(raster: Raster, core: Region, p: dict[str, Any], threshold: float,
                  density: np.ndarray, x0: int, y0: int) -> TileCells:
    """Segment ``density`` (of the window read at x0, y0 around ``core``) and keep
    the nuclei whose centroid lies in ``core``."""
    lab = segment(density, threshold, area_in_px2(p["min_area"], raster),
                  area_in_px2(p["max_area"], raster), length_in_px(p["split_distance"], raster))
    cells = []
    for i, poly in label_polygons(lab, simplify=0.3):
        c = poly.centroid
        cx, cy = c.x + x0, c.y + y0
        if owns(core, cx, cy):
            cells.append((i, poly, cx, cy))
    return TileCells(x0, y0, lab, cells)


def read_window(raster: Raster, core: Region, margin: int) -> tuple[np.ndarray, Region]:
    """Level-0 RGB of ``core`` grown by ``margin`` (clipped), and that window."""
    win = window(core, margin, raster.width, raster.height)
    return raster.read(0, win.x, win.y, win.w, win.h), win


def detect_in_tile(raster: Raster, core: Region, margin: int, params: dict[str, Any],
                   threshold: float) -> list[Feature]:
    """Nuclei whose centroid lies in ``core`` (read with ``margin`` around it)."""
    rgb, win = read_window(raster, core, margin)
    h, e = hematoxylin(rgb)
    tile = cells_in_tile(raster, core, params, threshold, h, win.x, win.y)
    out = []
    for i, poly, cx, cy in tile.cells:
        m = _measure(poly, h, e, tile.labels, i, raster.mpp)
        m |= {"Centroid X px": cx, "Centroid Y px": cy}
        out.append(Feature(affinity.translate(poly, win.x, win.y), "Nucleus", BLUE, m,
                           "detection"))
    return out


@dataclass(frozen=True)
class TileJob:
    """One tile's work, picklable (module-level function, the raster as its
    locator, plain parameters): what a dask cluster worker receives."""

    detect: Callable[..., list[Feature]]
    raster: Raster
    margin: int
    params: dict[str, Any]
    threshold: float

    def __call__(self, core: Region) -> list[Feature]:
        return self.detect(self.raster, core, self.margin, self.params, self.threshold)


def tile_results(ctx: RunContext, name: str, auto: Callable[[Raster, Region], float],
                 detect: Callable[..., list[Feature]]
                 ) -> tuple[Iterator[list[Feature]], float]:
    """The tile loop of the nucleus apps: parameters checked, the threshold (given or
    ``auto`` on the region), the grid with a nucleus-wide overlap, ``detect`` per
    tile; the tiles' objects come one tile at a time, in tile order (`iter_tiles`)."""
    p, raster = ctx.params, ctx.raster
    if p["min_area"] >= p["max_area"]:
        raise InvalidParams({"max_area": "must be larger than min_area"})
    threshold = p["threshold"]
    if threshold is None:
        threshold = auto(raster, ctx.region)
    margin = max(1, math.ceil(length_in_px(p["max_diameter"], raster)))
    tiles = list(tile_grid(ctx.region, p["tile_size"]))
    ctx.log(f"{name}: threshold {threshold:.3f}, {len(tiles)} tiles, overlap {margin} px")
    return iter_tiles(ctx, tiles, TileJob(detect, raster, margin, dict(p), threshold)), threshold


def run_tiles(ctx: RunContext, name: str, auto: Callable[[Raster, Region], float],
              detect: Callable[..., list[Feature]]) -> tuple[list[Feature], float]:
    """`tile_results` gathered into one list (apps that summarise every object)."""
    per_tile, threshold = tile_results(ctx, name, auto, detect)
    return [f for tile_features in per_tile for f in tile_features], threshold


class NucleusDetection:
    descriptor = AppDescriptor(
        name="nucleus_detection", version="1.0.0", title="Nucleus detection",
        description="Finds cell nuclei on H&E or hematoxylin/DAB slides at full resolution: "
                    "colour deconvolution, hematoxylin threshold, watershed to split "
                    "touching nuclei; one polygon per nucleus with area, perimeter, "
                    "circularity and mean stain densities.",
        params_schema=SCHEMA, inputs=("image", "region"), timeout=3600)

    def run(self, ctx: RunContext) -> Iterator[Feature]:
        """The nuclei tile by tile (a generator: `runner.stream_app` writes them in
        batches as they come; `run_app` gathers them)."""
        per_tile, _ = tile_results(ctx, "nucleus detection", auto_threshold, detect_in_tile)
        n = 0
        for tile_features in per_tile:
            n += len(tile_features)
            yield from tile_features
        ctx.log(f"{n} nuclei")
