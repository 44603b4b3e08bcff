"""Positive cell detection for IHC (hematoxylin + DAB), with an H-score.

Colour deconvolution (``rgb2hed``) separates hematoxylin from DAB. Nuclei are
found on their summed optical density (a strongly DAB-stained nucleus has
little hematoxylin left), with the nucleus app's watershed and tile-border
ownership; each nucleus is then graded by its mean DAB optical density
against three thresholds: negative, 1+, 2+, 3+. The run's region gets one
summary object with the counts, the positive percentage and the H-score
(1 × %1+ + 2 × %2+ + 3 × %3+, from 0 to 300).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from shapely import affinity
from shapely.geometry import box

from ..descriptor import AppDescriptor
from ..errors import InvalidParams
from ..features import Feature
from ..raster import Raster, coarsest_level_at_least
from ..runner import Region, RunContext
from .nuclei import SCHEMA as NUCLEUS_SCHEMA
from .nuclei import cells_in_tile, read_window, run_tiles

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "threshold": {"type": ["number", "null"], "minimum": 0, "maximum": 3, "default": None,
                      "title": "Nucleus threshold (hematoxylin + DAB optical density)",
                      "description": "empty: chosen by Otsu on the region"},
        "dab_1": {"type": "number", "minimum": 0, "maximum": 3, "default": 0.2,
                  "title": "DAB OD for 1+ (weak)"},
        "dab_2": {"type": "number", "minimum": 0, "maximum": 3, "default": 0.4,
                  "title": "DAB OD for 2+ (moderate)"},
        "dab_3": {"type": "number", "minimum": 0, "maximum": 3, "default": 0.6,
                  "title": "DAB OD for 3+ (strong)"},
        # Segmentation and tiling: the nucleus app's parameters.
        **{k: NUCLEUS_SCHEMA["properties"][k] for k in (
            "min_area", "max_area", "split_distance", "max_diameter", "tile_size")},
    },
}

GRADES = (("Negative", (60, 90, 220)), ("Positive 1+", (250, 210, 50)),
          ("Positive 2+", (240, 130, 30)), ("Positive 3+", (200, 30, 30)))
REGION_CLASS = "H-score region"


#: scikit-image's stain units are natural-log densities divided by -ln(1e-6);
#: times this they are decadic optical densities (the scale QuPath's DAB
#: thresholds 0.2 / 0.4 / 0.6 use, and a pathologist knows).
OD_SCALE = float(-np.log(1e-6) / np.log(10))


def stains(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hematoxylin, DAB) optical densities (decadic, >= 0) of an RGB uint8 window."""
    from skimage.color import rgb2hed

    hed = rgb2hed(rgb) * OD_SCALE
    return np.clip(hed[..., 0], 0, None), np.clip(hed[..., 2], 0, None)


def interior(mask: np.ndarray) -> np.ndarray:
    """The mask one pixel in from its outline (all of it if that leaves nothing):
    the outline is found on a smoothed density, so its rim pixels are partly
    background and would dilute the stain of small nuclei."""
    from scipy import ndimage as ndi

    inner = ndi.binary_erosion(mask)
    return inner if inner.any() else mask


def grade(dab_mean: float, cuts: tuple[float, float, float]) -> int:
    """0 negative, 1-3 the positive grade."""
    return sum(dab_mean >= c for c in cuts)


def h_score(counts: list[int]) -> float:
    """1 × %1+ + 2 × %2+ + 3 × %3+ (0..300) from the counts per grade."""
    total = sum(counts)
    return 0.0 if total == 0 else 100.0 * sum(g * n for g, n in enumerate(counts)) / total


def auto_threshold(raster: Raster, region: Region) -> float:
    """Otsu on the summed stain density of a low-resolution view of the region."""
    from skimage.filters import threshold_otsu

    level = coarsest_level_at_least(raster, 1024)
    d = raster.levels[level].downsample
    x, y = int(region.x / d), int(region.y / d)
    w = max(1, min(raster.levels[level].width - x, math.ceil(region.w / d)))
    h = max(1, min(raster.levels[level].height - y, math.ceil(region.h / d)))
    hem, dab = stains(raster.read(level, x, y, w, h))
    values = np.clip((hem + dab).ravel(), 0, None)
    values = np.clip(values, 0, np.percentile(values, 99.5))
    if float(values.max() - values.min()) < 1e-6:
        return float(values.max()) + 1.0
    return float(threshold_otsu(values))


def detect_in_tile(raster: Raster, core: Region, margin: int, p: dict[str, Any],
                   threshold: float) -> list[Feature]:
    """Graded nuclei whose centroid lies in ``core`` (read with ``margin``)."""
    rgb, win = read_window(raster, core, margin)
    hem, dab = stains(rgb)
    tile = cells_in_tile(raster, core, p, threshold, hem + dab, win.x, win.y)
    cuts = (p["dab_1"], p["dab_2"], p["dab_3"])
    mpp = raster.mpp
    out = []
    for i, poly, cx, cy in tile.cells:
        sel = interior(tile.labels == i)
        dab_mean = float(dab[sel].mean())
        g = grade(dab_mean, cuts)
        m = {"DAB OD mean": dab_mean, "Hematoxylin OD mean": float(hem[sel].mean()),
             "DAB OD max": float(dab[sel].max()), "Grade": float(g),
             "Area px^2": poly.area, "Centroid X px": cx, "Centroid Y px": cy}
        if mpp:
            m["Area µm^2"] = poly.area * mpp * mpp
        name, color = GRADES[g]
        out.append(Feature(affinity.translate(poly, win.x, win.y), name, color, m, "detection"))
    return out


def region_summary(region: Region, cells: list[Feature]) -> Feature:
    counts = [0, 0, 0, 0]
    for f in cells:
        counts[int(f.measurements["Grade"])] += 1
    total = sum(counts)
    m = {"Num nuclei": float(total), "Num negative": float(counts[0]),
         "Num 1+": float(counts[1]), "Num 2+": float(counts[2]), "Num 3+": float(counts[3]),
         "Positive %": 100.0 * (total - counts[0]) / total if total else 0.0,
         "H-score": h_score(counts)}
    geom = box(region.x, region.y, region.x + region.w, region.y + region.h)
    return Feature(geom, REGION_CLASS, (120, 120, 120), m, "annotation")


class PositiveCellDetection:
    descriptor = AppDescriptor(
        name="positive_cell_detection", version="1.0.0", title="Positive cell detection (IHC)",
        description="Finds nuclei on hematoxylin/DAB slides and grades each by its mean DAB "
                    "optical density (negative, 1+, 2+, 3+); the region gets the counts, "
                    "the positive percentage and the H-score.",
        params_schema=SCHEMA, inputs=("image", "region"), timeout=3600)

    def run(self, ctx: RunContext) -> list[Feature]:
        p = ctx.params
        if not p["dab_1"] < p["dab_2"] < p["dab_3"]:
            raise InvalidParams({"dab_2": "the DAB thresholds must increase: 1+ < 2+ < 3+"})
        cells, _ = run_tiles(ctx, "positive cell detection", auto_threshold, detect_in_tile)
        summary = region_summary(ctx.region, cells)
        ctx.log(f"{len(cells)} nuclei, {summary.measurements['Positive %']:.1f}% positive, "
                f"H-score {summary.measurements['H-score']:.1f}")
        return [summary, *cells]
