"""Running one app on one raster: parameters checked, region clipped, progress out."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import AnalysisError
from .features import Feature
from .raster import Raster
from .registry import App


@dataclass(frozen=True)
class Region:
    """A level-0 rectangle; clipped to the image by `run_app`."""

    x: int
    y: int
    w: int
    h: int

    @classmethod
    def parse(cls, text: str) -> Region:
        try:
            x, y, w, h = (int(v) for v in text.split(","))
        except ValueError:
            raise AnalysisError(f"region {text!r}: expected X,Y,W,H integers") from None
        return cls(x, y, w, h)


def _no_models(ref: Any) -> bytes:
    raise AnalysisError(f"model {ref!r}: no model can be read here")


class Cancelled(AnalysisError):
    """The run was cancelled between two steps (``RunContext.check``)."""


@dataclass
class RunContext:
    raster: Raster
    params: dict[str, Any]
    region: Region
    #: fraction 0..1 → reported to the user (CLI bar, worker heart-beat).
    on_progress: Callable[[float], None] = lambda f: None
    on_log: Callable[[str], None] = lambda s: None
    #: returns True when the run should stop (user cancelled, timeout).
    should_stop: Callable[[], bool] = lambda: False
    #: Threads an app may use for independent pieces (tiles); 1 = sequential.
    workers: int = 1
    #: The annotations people drew on the image (`training.Drawn`), for apps that
    #: learn from them; fetched only when an app asks.
    annotations: Callable[[], list[Any]] = lambda: []
    #: A model the app trained (bytes, e.g. `classifier_model.dumps`): kept by the
    #: caller (the worker uploads it as the analysis' model, the CLI writes a file).
    on_model: Callable[[bytes], None] = lambda data: None
    #: The bytes of an earlier model named by a parameter (an analysis id on a
    #: server, a file path locally); raises `AnalysisError` when there is none.
    load_model: Callable[[Any], bytes] = field(default=lambda ref: _no_models(ref))
    #: The terms (`training.TermRef`) of the project the results go to: how the
    #: classes of a re-applied model find their terms there.
    terms: Callable[[], list[Any]] = lambda: []
    #: Where the run comes from (image_id, analysis_id, project_id or file): a
    #: trained model's provenance.
    source: dict[str, Any] = field(default_factory=dict)
    #: A dask.distributed Client whose workers take the tiles (`tiles.iter_tiles`);
    #: None = local threads.
    dask: Any = None
    log_lines: list[str] = field(default_factory=list)

    def progress(self, fraction: float) -> None:
        self.on_progress(min(1.0, max(0.0, fraction)))

    def log(self, line: str) -> None:
        self.log_lines.append(line)
        self.on_log(line)

    def check(self) -> None:
        if self.should_stop():
            raise Cancelled("analysis cancelled")


def clip_region(raster: Raster, region: Region | None) -> Region:
    if region is None:
        return Region(0, 0, raster.width, raster.height)
    x0, y0 = max(0, region.x), max(0, region.y)
    x1, y1 = min(raster.width, region.x + region.w), min(raster.height, region.y + region.h)
    if region.w <= 0 or region.h <= 0 or x1 <= x0 or y1 <= y0:
        raise AnalysisError(f"region {region.x},{region.y},{region.w},{region.h} is outside "
                            f"the image ({raster.width}x{raster.height})")
    return Region(x0, y0, x1 - x0, y1 - y0)


def run_app(app: App, raster: Raster, params: Mapping[str, Any], region: Region | None = None,
            **callbacks: Any) -> tuple[list[Feature], dict[str, Any]]:
    """Run ``app`` with already-validated ``params``; returns (features, provenance)."""
    ctx = RunContext(raster, dict(params), clip_region(raster, region), **callbacks)
    started = time.time()
    features = list(app.run(ctx))
    ctx.progress(1.0)
    d = app.descriptor
    provenance = {"app": d.name, "version": d.version, "params": dict(params),
                  "region": [ctx.region.x, ctx.region.y, ctx.region.w, ctx.region.h],
                  "count": len(features), "seconds": round(time.time() - started, 3)}
    return features, provenance


#: Objects handed to a sink at once by `stream_app` (a nucleus is ~17 KB as
#: GeoJSON with its measurements: 2,000 make a ~35 MB import request).
BATCH_SIZE = 2000


def stream_app(app: App, raster: Raster, params: Mapping[str, Any],
               sink: Callable[[list[Feature]], None], region: Region | None = None,
               batch_size: int = BATCH_SIZE, **callbacks: Any) -> dict[str, Any]:
    """Run ``app`` and hand its objects to ``sink`` in lists of at most
    ``batch_size`` as they come (an app whose ``run`` is a generator, like
    nucleus detection, yields them tile by tile), so that the objects held here
    do not grow with the size of the slide; returns the provenance (its
    ``count`` is what went to the sink). A run that raises has sent its earlier
    batches already: the caller removes them (the worker tags them with the
    attempt and fails it; the server deletes them).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    ctx = RunContext(raster, dict(params), clip_region(raster, region), **callbacks)
    started = time.time()
    batch: list[Feature] = []
    count = 0
    for feature in app.run(ctx):
        batch.append(feature)
        if len(batch) >= batch_size:
            sink(batch)
            count += len(batch)
            batch = []
    if batch:
        sink(batch)
        count += len(batch)
    del batch
    ctx.progress(1.0)
    d = app.descriptor
    return {"app": d.name, "version": d.version, "params": dict(params),
            "region": [ctx.region.x, ctx.region.y, ctx.region.w, ctx.region.h],
            "count": count, "seconds": round(time.time() - started, 3)}


def um2_per_px2(raster: Raster) -> float | None:
    return raster.mpp ** 2 if raster.mpp else None


def area_in_px2(area: float, raster: Raster) -> float:
    """A parameter given in µm² as level-0 pixels² (taken as px² when the
    pixel size is unknown, which the app descriptions say)."""
    return area / raster.mpp ** 2 if raster.mpp else area


def length_in_px(length: float, raster: Raster) -> float:
    return length / raster.mpp if raster.mpp else length


def finite(v: float) -> float:
    return v if math.isfinite(v) else 0.0
