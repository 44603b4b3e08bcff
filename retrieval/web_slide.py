"""POST /api/retrieval/slide-search: where on a slide the tissue looks like an example.

Thin handler over `retrieval.slidesearch`: the example is an annotation or a region
(as for /similar), the target a slide the caller may read (default: the example's).
Rows of windows are scored a few at a time on the tile server's threads, so the
event loop stays free; the answer is the score grid (the web UI draws it as a
heat-map layer) and the best non-overlapping windows as candidate annotations.
"""

from __future__ import annotations

import numpy as np
import shapely
from aiohttp import web

from microtome.annotations import store
from microtome.catalog import access
from microtome.catalog.db import DB_POOL
from microtome.core.http import json_response

from . import service, slidesearch
from .descriptors import FAMILY
from .web import _body, _int, _pixels, _query, _require_enabled

#: Rows of windows scored per executor call.
ROWS_PER_CALL = 4


def _polygon(box: tuple[float, float, float, float]) -> dict[str, object]:
    x0, y0, x1, y1 = (round(v, 1) for v in box)
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1],
                                                [x0, y0]]]}


async def slide_search(request: web.Request) -> web.Response:
    _require_enabled(request)
    body = await _body(request, frozenset({"target_image_id", "top"}))
    top = _int(body, "top", 1, 50, 10)
    q = await _query(request, 10, body)
    target = _int(body, "target_image_id", 1, 2**63 - 1, q.image_id)
    if target != q.image_id:
        await access.require_image_access(request, target)
    pool = request.app[DB_POOL]
    px = _pixels(request)
    vec = await service.query_vector(pool, px, annotation=q.annotation, image_id=q.image_id,
                                     geom=q.geom, pixel_size_um=q.pixel_size_um)
    frame = await store.image_frame(pool, target)
    pyr = await px.open(target)
    geom = q.geom if q.geom is not None else shapely.from_wkb(q.annotation["geom"])  # type: ignore[index]
    x0, y0, x1, y1 = geom.bounds
    side = max(x1 - x0, y1 - y0)
    if q.pixel_size_um and frame.pixel_size_um:  # the same tissue size on the target
        side *= q.pixel_size_um / frame.pixel_size_um
    grid = slidesearch.plan(pyr.meta.width, pyr.meta.height, frame.pixel_size_um, side)
    parts = [await px.run(slidesearch.score_rows, pyr, grid, vec,
                          range(r, min(r + ROWS_PER_CALL, grid.rows)))
             for r in range(0, grid.rows, ROWS_PER_CALL)]
    scores = np.concatenate(parts)
    best = slidesearch.top_windows(scores, grid, top)
    f = grid.factor
    return json_response({
        "image_id": target, "descriptor": FAMILY,
        "grid": {"window": round(grid.win * f, 2), "step": round(grid.step * f, 2),
                 "cols": grid.cols, "rows": grid.rows},
        "scores": [round(float(v), 4) for v in scores.ravel()],
        "top": [{"geometry": _polygon(box), "score": round(score, 6)} for box, score in best],
    })


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/retrieval/slide-search", slide_search)
