"""Pixel classifier: supervised semantic segmentation learnt from the person's
own annotations.

Polygons drawn on the image with two or more terms are the training data. At
one working resolution (a pyramid level), every pixel gets multi-scale colour
and texture features (Gaussian-smoothed intensity, gradient magnitude and
Hessian eigenvalues of each RGB channel at sigmas 1, 2, 4, ... up to
``sigma_max``: scikit-image's ``multiscale_basic_features``); a random forest
(scikit-learn) learns the terms from the pixels inside the drawn polygons and
then classifies every pixel of the chosen region, tile by tile. Each tile is
read with a margin wider than the largest filter, so the tiled result equals
the untiled one. The classes come back as polygons (with holes) per term.

A run that trains hands its forest to ``ctx.on_model`` (the worker stores it
as the analysis' model, ``microtome analyse --save-model`` as a file; format in
classifier_model.py). With the ``model`` parameter a run learns nothing: it
loads that model (an earlier run's id on a server, a file locally) and applies
it with the model's own resolution and feature scales. Its classes find their
terms in the project the results go to by this rule: the term with the
class's id if that project has it (the same term, even renamed), else the term
of the same name (case-insensitive), else a new term of the class's name and
colour is created there by the results import.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from shapely import contains_xy

from ..classifier_model import FORMAT, FORMAT_VERSION, PixelModel, dumps, from_forest, loads
from ..descriptor import AppDescriptor
from ..errors import AnalysisError, InvalidParams
from ..features import Feature
from ..raster import Raster
from ..runner import Region, RunContext, area_in_px2
from ..tiles import map_tiles, tile_grid, window
from ..training import Drawn, TermRef
from ..vectorize import clip_to, label_polygons, to_level0

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "terms": {"type": "array", "items": {"type": "integer", "minimum": 1, "format": "term"},
                  "uniqueItems": True, "default": [], "title": "Classes to learn",
                  "description": "the terms of your drawn annotations to learn (two or "
                                 "more); empty: every term they carry"},
        "resolution": {"type": "number", "exclusiveMinimum": 0, "maximum": 256, "default": 2.0,
                       "title": "Working pixel size (µm; level-0 pixels without pixel size)",
                       "description": "classification runs on the coarsest pyramid level "
                                      "at least this fine"},
        "sigma_max": {"type": "number", "minimum": 1, "maximum": 32, "default": 8.0,
                      "title": "Largest feature scale (working pixels)"},
        "trees": {"type": "integer", "minimum": 5, "maximum": 500, "default": 50,
                  "title": "Trees in the random forest"},
        "max_samples": {"type": "integer", "minimum": 100, "maximum": 1_000_000,
                        "default": 20_000, "title": "Training pixels per class (at most)"},
        "min_area": {"type": "number", "minimum": 0, "default": 0.0,
                     "title": "Smallest region kept (µm², or pixels² without pixel size)"},
        "tile_size": {"type": "integer", "minimum": 128, "maximum": 4096, "default": 512,
                      "title": "Tile side (working pixels)"},
        "model": {"type": ["integer", "string", "null"], "minimum": 1, "minLength": 1,
                  "maxLength": 4096, "default": None, "format": "analysis-model",
                  "title": "Trained model (instead of learning)",
                  "description": "apply the model an earlier pixel-classifier run trained "
                                 "(its analysis id; a model file with microtome analyse) "
                                 "instead of learning from this image's annotations; its "
                                 "classes, resolution and feature scales are used and the "
                                 "training parameters above are ignored"},
    },
}

#: Training windows larger than this (working pixels per side) are cut around the
#: polygon's centre: a huge outline does not need all its pixels read.
MAX_TRAIN_SIDE = 2048


def working_level(raster: Raster, resolution: float) -> int:
    """The coarsest level whose pixel is at most ``resolution`` µm (or level-0 px)."""
    best = 0
    for i, lv in enumerate(raster.levels):
        size = lv.downsample * (raster.mpp or 1.0)
        if size <= resolution * (1 + 1e-6):
            best = i
    return best


def pixel_features(rgb: np.ndarray, sigma_max: float) -> np.ndarray:
    """(h, w, n) float32 multi-scale features of an RGB uint8 window."""
    from skimage.feature import multiscale_basic_features

    img = rgb.astype(np.float32) / np.float32(255)
    f = multiscale_basic_features(img, intensity=True, edges=True, texture=True,
                                  sigma_min=1.0, sigma_max=sigma_max, channel_axis=-1)
    return np.asarray(f, dtype=np.float32)


def margin_for(sigma_max: float) -> int:
    """Working pixels around a tile that make its features equal the untiled ones
    (Gaussian truncated at 4 sigma, plus the derivative stencils)."""
    return math.ceil(4 * sigma_max) + 3


def _hex_rgb(color: str) -> tuple[int, int, int]:
    try:
        return (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16))
    except (ValueError, IndexError):
        return (128, 128, 128)


def choose_classes(drawn: list[Drawn], wanted: list[int]) -> list[TermRef]:
    """The classes to learn, in a stable order (by name); each drawn annotation
    teaches the first of its terms that is a class."""
    found: dict[str, TermRef] = {}
    for d in drawn:
        for t in d.terms:
            if not wanted or t.id in wanted:
                found.setdefault(t.name, t)
    if wanted:
        missing = set(wanted) - {t.id for t in found.values()}
        if missing:
            raise InvalidParams({"terms": f"no drawn annotation carries the terms "
                                          f"{sorted(missing)}"})
    classes = [found[n] for n in sorted(found)]
    if len(classes) < 2:
        raise AnalysisError(
            "the pixel classifier needs drawn annotations (polygons) of at least two "
            f"terms on this image; found {len(classes)}"
            + (f" ({classes[0].name})" if classes else ""))
    return classes


class _Level:
    """Reading one pyramid level with features, in that level's pixels."""

    def __init__(self, raster: Raster, level: int, sigma_max: float) -> None:
        self.raster, self.level, self.sigma = raster, level, sigma_max
        lv = raster.levels[level]
        self.width, self.height, self.ds = lv.width, lv.height, lv.downsample
        self.margin = margin_for(sigma_max)

    def features(self, core: Region) -> tuple[np.ndarray, Region]:
        """Features of ``core`` (cropped from a window read with the margin)."""
        win = window(core, self.margin, self.width, self.height)
        feats = pixel_features(self.raster.read(self.level, win.x, win.y, win.w, win.h),
                               self.sigma)
        dy, dx = core.y - win.y, core.x - win.x
        return feats[dy:dy + core.h, dx:dx + core.w], core

    def box(self, x0: float, y0: float, x1: float, y1: float) -> Region | None:
        """Level-0 bounds → a clipped rectangle of this level's pixels."""
        lx0, ly0 = max(0, math.floor(x0 / self.ds)), max(0, math.floor(y0 / self.ds))
        lx1 = min(self.width, math.ceil(x1 / self.ds))
        ly1 = min(self.height, math.ceil(y1 / self.ds))
        return Region(lx0, ly0, lx1 - lx0, ly1 - ly0) if lx1 > lx0 and ly1 > ly0 else None


def training_pixels(lvl: _Level, drawn: list[Drawn], classes: list[TermRef],
                    max_samples: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(features, class index) of pixels whose centre lies in a drawn polygon,
    at most ``max_samples`` per class (drawn at random, reproducibly)."""
    index = {t.name: i for i, t in enumerate(classes)}
    per_class: list[list[np.ndarray]] = [[] for _ in classes]
    for d in drawn:
        k = next((index[t.name] for t in d.terms if t.name in index), None)
        if k is None:
            continue
        core = lvl.box(*d.geometry.bounds)
        if core is None:
            continue
        if core.w > MAX_TRAIN_SIDE or core.h > MAX_TRAIN_SIDE:
            c = d.geometry.representative_point()
            cx, cy = int(c.x / lvl.ds), int(c.y / lvl.ds)
            half = MAX_TRAIN_SIDE // 2
            core = lvl.box((cx - half) * lvl.ds, (cy - half) * lvl.ds,
                           (cx + half) * lvl.ds, (cy + half) * lvl.ds) or core
        # Pixel centres of this level, in level-0 coordinates.
        ys, xs = np.mgrid[core.y:core.y + core.h, core.x:core.x + core.w]
        inside = contains_xy(d.geometry, (xs + 0.5) * lvl.ds, (ys + 0.5) * lvl.ds)
        if not inside.any():
            continue
        feats, _ = lvl.features(core)
        per_class[k].append(feats[inside])
    xs_out, ys_out = [], []
    for k, parts in enumerate(per_class):
        if not parts:
            raise AnalysisError(f"the annotations of {classes[k].name!r} cover no pixel "
                                "of the working resolution (draw larger polygons or "
                                "lower the resolution parameter)")
        x = np.concatenate(parts)
        if len(x) > max_samples:
            x = x[rng.choice(len(x), max_samples, replace=False)]
        xs_out.append(x)
        ys_out.append(np.full(len(x), k, np.int32))
    return np.concatenate(xs_out), np.concatenate(ys_out)


def classify(ctx: RunContext, lvl: _Level, model: PixelModel, area: Region, tile: int
             ) -> np.ndarray:
    """(h, w) uint8 class index + 1 of every pixel of ``area`` (level pixels)."""
    tiles = list(tile_grid(area, tile))

    def one(core: Region) -> np.ndarray:
        feats, _ = lvl.features(core)
        pred = model.predict(feats.reshape(-1, feats.shape[-1]))  # a PixelModel
        return (pred.astype(np.uint8) + 1).reshape(core.h, core.w)

    labels = np.zeros((area.h, area.w), np.uint8)
    for core, lab in zip(tiles, map_tiles(ctx, tiles, one), strict=True):
        labels[core.y - area.y:core.y + core.h - area.y,
               core.x - area.x:core.x + core.w - area.x] = lab
    return labels


def regions_of(labels: np.ndarray, classes: list[TermRef], lvl: _Level, area: Region,
               region: Region, min_area_px: float, mpp: float | None) -> list[Feature]:
    """One polygon (with holes) per connected piece of each class, in level-0 pixels."""
    from scipy import ndimage as ndi

    out = []
    for k, term in enumerate(classes):
        pieces, _ = ndi.label(labels == k + 1)
        for _, poly in label_polygons(pieces):
            poly0 = to_level0(poly, lvl.ds, area.x * lvl.ds, area.y * lvl.ds)
            for part in clip_to(poly0, region):
                if part.area < max(min_area_px, 1e-9):
                    continue
                m = {"Area px^2": part.area, "Perimeter px": part.length}
                if mpp:
                    m |= {"Area µm^2": part.area * mpp * mpp, "Perimeter µm": part.length * mpp}
                out.append(Feature(part, term.name, _hex_rgb(term.color), m, "annotation"))
    return out


def model_meta(classes: list[TermRef], lvl: _Level, raster: Raster, p: dict[str, Any],
               n_features: int, drawn: list[Drawn], counts: list[int],
               source: dict[str, Any]) -> dict[str, Any]:
    """What a saved model carries besides its trees: how to compute its features,
    its classes and where it was learnt."""
    import datetime as dt

    import sklearn

    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "app": PixelClassifier.descriptor.name, "app_version": PixelClassifier.descriptor.version,
        "features": {"kind": "rgb", "channels": 3, "sigma_min": 1.0,
                     "sigma_max": float(p["sigma_max"]), "intensity": True, "edges": True,
                     "texture": True, "n_features": int(n_features)},
        "resolution": float(p["resolution"]),
        "pixel_size": lvl.ds * raster.mpp if raster.mpp else None,
        "level_downsample": float(lvl.ds),
        "classes": [{"id": t.id, "name": t.name, "color": t.color} for t in classes],
        "training": {
            "images": [source.get("image_id") or source.get("file")],
            "analysis_id": source.get("analysis_id"), "project_id": source.get("project_id"),
            "annotations": sum(1 for d in drawn
                               if any(t.name in {c.name for c in classes} for t in d.terms)),
            "pixels": int(sum(counts)), "per_class": [int(n) for n in counts],
            "trees": int(p["trees"]), "max_samples": int(p["max_samples"]),
            "sklearn": sklearn.__version__,
            "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}}


def target_terms(model: PixelModel, terms: list[TermRef]) -> list[tuple[TermRef, str]]:
    """The term each class of ``model`` becomes in the results' project (see the
    module's rule), with how it was found: "id", "name" or "new"."""
    by_id = {t.id: t for t in terms if t.id is not None}
    by_name = {t.name.strip().lower(): t for t in terms}
    out = []
    for c in model.classes:
        if c.get("id") is not None and c["id"] in by_id:
            out.append((by_id[c["id"]], "id"))
        elif c["name"].strip().lower() in by_name:
            out.append((by_name[c["name"].strip().lower()], "name"))
        else:
            out.append((TermRef(None, c["name"], c.get("color") or "#808080"), "new"))
    return out


class PixelClassifier:
    descriptor = AppDescriptor(
        name="pixel_classifier", version="1.0.0", title="Pixel classifier",
        description="Learns from the polygons you drew with two or more terms (random "
                    "forest on multi-scale colour and texture features) and classifies "
                    "every pixel of the region; one polygon per piece of each term. "
                    "The trained model is saved with the run and can be applied to other "
                    "images (parameter model).",
        params_schema=SCHEMA, inputs=("image", "region", "terms"), timeout=3600)

    def run(self, ctx: RunContext) -> list[Feature]:
        p, raster = ctx.params, ctx.raster
        if p.get("model") is not None:
            model = loads(ctx.load_model(p["model"]))
            if model.meta.get("app") != self.descriptor.name:
                raise AnalysisError(f"model {p['model']}: made by {model.meta.get('app')!r}, "
                                    f"not by {self.descriptor.name}")
            f = model.meta["features"]
            lvl = _Level(raster, working_level(raster, model.meta["resolution"]),
                         f["sigma_max"])
            mapped = target_terms(model, list(ctx.terms()))
            classes = [t for t, _ in mapped]
            tr = model.meta.get("training") or {}
            ctx.log(f"pixel classifier: model {p['model']} (trained on image(s) "
                    f"{tr.get('images')}, {tr.get('annotations')} annotations), "
                    f"{len(classes)} classes, level {lvl.level} (1/{lvl.ds:g})")
            for c, (t, how) in zip(model.classes, mapped, strict=True):
                ctx.log(f"  class {c['name']!r} -> " + (
                    f"term {t.id} {t.name!r} (same {how})" if how != "new"
                    else f"a new term {t.name!r}"))
            self._check_scale(ctx, model, lvl)
        else:
            model, classes, lvl = self._train(ctx)
        ctx.check()
        region = ctx.region
        area = lvl.box(region.x, region.y, region.x + region.w, region.y + region.h)
        if area is None:
            return []
        labels = classify(ctx, lvl, model, area, p["tile_size"])
        out = regions_of(labels, classes, lvl, area, region,
                         area_in_px2(p["min_area"], raster), raster.mpp)
        counts = np.bincount(labels.ravel(), minlength=len(classes) + 1)[1:]
        total = max(1, int(counts.sum()))
        ctx.log("; ".join(f"{t.name} {100 * n / total:.1f}%"
                          for t, n in zip(classes, counts, strict=True)))
        return out

    def _train(self, ctx: RunContext) -> tuple[PixelModel, list[TermRef], _Level]:
        from sklearn.ensemble import RandomForestClassifier

        p, raster = ctx.params, ctx.raster
        drawn = ctx.annotations()
        classes = choose_classes(drawn, list(p["terms"]))
        lvl = _Level(raster, working_level(raster, p["resolution"]), p["sigma_max"])
        ctx.log(f"pixel classifier: {len(classes)} classes "
                f"({', '.join(t.name for t in classes)}), level {lvl.level} "
                f"(1/{lvl.ds:g}), {len(drawn)} drawn annotations")
        ctx.check()
        x, y = training_pixels(lvl, drawn, classes, p["max_samples"],
                               np.random.default_rng(0))
        forest = RandomForestClassifier(n_estimators=p["trees"], n_jobs=max(1, ctx.workers),
                                        random_state=0)
        forest.fit(x, y)
        ctx.log(f"trained on {len(y)} pixels, {x.shape[1]} features")
        meta = model_meta(classes, lvl, raster, p, x.shape[1], drawn,
                          np.bincount(y, minlength=len(classes)).tolist(), ctx.source)
        # What is applied here is what was saved: the artifact, loaded back.
        data = dumps(from_forest(forest, meta))
        model = loads(data)
        ctx.on_model(data)
        ctx.log(f"model saved ({len(data) / 1e6:.2f} MB, {len(model.trees)} trees)")
        return model, classes, lvl

    @staticmethod
    def _check_scale(ctx: RunContext, model: PixelModel, lvl: _Level) -> None:
        was = model.meta.get("pixel_size")
        now = lvl.ds * ctx.raster.mpp if ctx.raster.mpp else None
        if (was is None) != (now is None):
            ctx.log("warning: the pixel size is known for only one of the training and "
                    "this image: the model's resolution is read as "
                    + ("level-0 pixels here" if now is None else "µm here"))
        elif was and now and not 1 / 1.5 <= now / was <= 1.5:
            ctx.log(f"warning: working pixels of {now:.3g} µm here, {was:.3g} µm in "
                    "training: the results may suffer")
