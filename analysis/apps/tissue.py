"""Tissue detection: where on the slide is there tissue (vs glass / background).

Works on one low-resolution level: Otsu threshold on saturation (stained
tissue is coloured, glass is grey-white) or optical density (tissue absorbs
light), morphological clean-up, then one polygon per piece of tissue with
its holes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..descriptor import AppDescriptor
from ..features import Feature
from ..raster import coarsest_level_at_least
from ..runner import RunContext, area_in_px2
from ..vectorize import clip_to, label_polygons, to_level0

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "method": {"type": "string", "enum": ["saturation", "optical_density"],
                   "default": "saturation", "title": "Threshold on",
                   "description": "saturation suits stained (H&E, IHC) slides; optical "
                                  "density also finds faint or unstained tissue"},
        "work_size": {"type": "integer", "minimum": 256, "maximum": 4096, "default": 1024,
                      "title": "Working resolution",
                      "description": "the coarsest level whose longer side is at least "
                                     "this many pixels is analysed"},
        "smoothing": {"type": "integer", "minimum": 0, "maximum": 20, "default": 2,
                      "title": "Smoothing radius (working pixels)"},
        "min_area": {"type": "number", "minimum": 0, "default": 10000.0,
                     "title": "Minimum tissue area (µm², or pixels² when the pixel size "
                              "is unknown)"},
        "min_hole_area": {"type": "number", "minimum": 0, "default": 5000.0,
                          "title": "Holes smaller than this are filled (µm²)"},
    },
}

GREEN = (0, 160, 0)


def tissue_score(rgb: np.ndarray, method: str) -> np.ndarray:
    """Per-pixel evidence of tissue, larger = more tissue."""
    x = rgb.astype(np.float32) / 255.0
    if method == "optical_density":
        return -np.log(np.clip(x, 1 / 255, 1.0)).mean(axis=2)
    mx, mn = x.max(axis=2), x.min(axis=2)
    return np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0.0)


def tissue_mask(rgb: np.ndarray, method: str, smoothing: int, min_area_px: float,
                min_hole_px: float) -> np.ndarray:
    """Boolean tissue mask of one working-resolution image (areas in its pixels)."""
    from skimage import morphology
    from skimage.filters import threshold_otsu

    score = tissue_score(rgb, method)
    if float(score.max() - score.min()) < 1e-3:  # uniform: nothing to separate
        return np.zeros(score.shape, bool)
    mask = score > threshold_otsu(score)
    if smoothing:
        fp = morphology.disk(smoothing)
        mask = morphology.opening(morphology.closing(mask, fp), fp)
    if min_hole_px >= 1:
        mask = morphology.remove_small_holes(mask, max_size=int(min_hole_px))
    if min_area_px >= 1:
        mask = morphology.remove_small_objects(mask, max_size=int(min_area_px))
    return mask


def _measure(poly: Any, mpp: float | None) -> dict[str, float]:
    m = {"Area px^2": poly.area, "Perimeter px": poly.length,
         "Holes": float(len(poly.interiors))}
    if mpp:
        m |= {"Area µm^2": poly.area * mpp * mpp, "Perimeter µm": poly.length * mpp}
    return m


class TissueDetection:
    descriptor = AppDescriptor(
        name="tissue_detection", version="1.0.0", title="Tissue detection",
        description="Outlines the tissue on a slide at low resolution (Otsu threshold on "
                    "saturation or optical density, morphological clean-up); one polygon "
                    "with holes per piece of tissue, with its area.",
        params_schema=SCHEMA, inputs=("image", "region"), timeout=600)

    def run(self, ctx: RunContext) -> list[Feature]:
        from skimage.measure import label

        p, r, raster = ctx.params, ctx.region, ctx.raster
        level = coarsest_level_at_least(raster, p["work_size"])
        ds = raster.levels[level].downsample
        lv = raster.levels[level]
        x0, y0 = int(r.x // ds), int(r.y // ds)
        x1 = min(lv.width, max(x0 + 1, int(np.ceil((r.x + r.w) / ds))))
        y1 = min(lv.height, max(y0 + 1, int(np.ceil((r.y + r.h) / ds))))
        ctx.log(f"tissue detection on level {level} (1/{ds:g}), {x1 - x0}x{y1 - y0} pixels")
        rgb = raster.read(level, x0, y0, x1 - x0, y1 - y0)
        ctx.progress(0.3)
        px_per_work_px2 = ds * ds
        mask = tissue_mask(rgb, p["method"], p["smoothing"],
                           area_in_px2(p["min_area"], raster) / px_per_work_px2,
                           area_in_px2(p["min_hole_area"], raster) / px_per_work_px2)
        ctx.progress(0.7)
        features = []
        mpp = raster.mpp
        for _, work_poly in label_polygons(label(mask, connectivity=1), simplify=0.5):
            for poly in clip_to(to_level0(work_poly, ds, x0 * ds, y0 * ds), r):
                features.append(Feature(poly, "Tissue", GREEN, _measure(poly, mpp), "annotation"))
        ctx.log(f"{len(features)} tissue pieces")
        return features
