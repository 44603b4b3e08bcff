"""Stain grid: mean hematoxylin and eosin density in square cells over a region.

A deliberately small, complete app to copy: a descriptor with a parameter
schema, a `run(ctx)` that reads pixels through ``ctx.raster`` (level-0
coordinates, any level), reports progress, honours cancellation and returns
`Feature`s with measurements.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from shapely.geometry import box

from microtome.analysis import AppDescriptor, Feature, RunContext
from microtome.analysis.raster import coarsest_level_at_least

__all__ = ["StainGrid"]


class StainGrid:
    descriptor = AppDescriptor(
        name="stain_grid", version="0.1.0", title="Stain density grid",
        description="Splits the region into square cells and measures the mean "
                    "hematoxylin and eosin optical density of each (colour deconvolution).",
        params_schema={
            "type": "object", "additionalProperties": False,
            "properties": {
                "cell": {"type": "integer", "minimum": 16, "maximum": 8192, "default": 512,
                         "title": "Cell side (full-resolution pixels)"},
                "min_hematoxylin": {"type": "number", "minimum": 0, "default": 0.0,
                                    "title": "Only keep cells at least this dense"},
            },
        },
        inputs=("image", "region"), timeout=600)

    def run(self, ctx: RunContext) -> list[Feature]:
        from skimage.color import rgb2hed

        cell, r = ctx.params["cell"], ctx.region
        # Read at a level where one cell is still >= 16 pixels: cheap and sufficient.
        level = coarsest_level_at_least(ctx.raster, max(64, math.ceil(
            max(ctx.raster.width, ctx.raster.height) * 16 / cell)))
        ds = ctx.raster.levels[level].downsample
        rows = list(range(r.y, r.y + r.h, cell))
        out: list[Feature] = []
        for n, y in enumerate(rows, start=1):
            ctx.check()  # stop promptly when the run is cancelled
            for x in range(r.x, r.x + r.w, cell):
                w, h = min(cell, r.x + r.w - x), min(cell, r.y + r.h - y)
                out += self._cell(ctx, rgb2hed, level, ds, x, y, w, h)
            ctx.progress(n / len(rows))
        return out

    def _cell(self, ctx: RunContext, rgb2hed: Any, level: int, ds: float, x: int, y: int,
              w: int, h: int) -> list[Feature]:
        lv = ctx.raster.levels[level]
        lx, ly = int(x // ds), int(y // ds)
        lw = max(1, min(lv.width - lx, round(w / ds)))
        lh = max(1, min(lv.height - ly, round(h / ds)))
        hed = np.clip(rgb2hed(ctx.raster.read(level, lx, ly, lw, lh)), 0, None)
        hema, eosin = float(hed[..., 0].mean()), float(hed[..., 1].mean())
        if hema < ctx.params["min_hematoxylin"]:
            return []
        return [Feature(box(x, y, x + w, y + h), "Stain cell", (120, 60, 160),
                        {"Hematoxylin OD mean": hema, "Eosin OD mean": eosin}, "detection")]
