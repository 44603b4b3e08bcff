"""``/images/{id}/histogram``: per-channel histograms of an image (JSON).

Answered from the document stored beside the pyramid (pyramid/histogram.py),
then from the tile cache; an image converted before histograms existed gets
its document computed once, in the executor, and stored.  `?level=N` answers
for any level (computed once in bands, stored beside the pyramid).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from microtome.pyramid import histogram
from microtome.pyramid.errors import InvalidRequest
from microtome.pyramid.reader import Pyramid

from .cache import Tile
from .keys import RESOLVER, SERVICE
from .metrics import instrumented
from .responses import cache_control, not_modified, not_modified_response, tile_response
from .service import etag_for


def _document(pyr: Pyramid, level: int | None) -> Tile:
    return Tile(histogram.load_or_compute(pyr, level), "application/json")


def _level(request: web.Request, pyr: Pyramid) -> int | None:
    """`?level=N`: the histogram of level N (0 = full resolution); default the sample level."""
    raw = request.query.get("level")
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 4:
        raise InvalidRequest("level must be a level number (0 = full resolution)",
                             {"field": "level"})
    level = int(raw)
    histogram.check_level(pyr, level)
    return level


@instrumented("histogram")
async def histogram_handler(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICE]
    ref = await request.app[RESOLVER].resolve(request, request.match_info["id"])
    pyr = await svc.open(ref)
    level = _level(request, pyr)
    etag = etag_for(ref, "histogram" if level is None else f"histogram-level{level}")
    cache = cache_control(request, ref, svc.settings.max_age)
    if not_modified(request, etag):
        return not_modified_response(etag, cache)
    key = (Path(ref.path), ref.version, "histogram", level)
    tile = await svc.produce(key, _document, pyr, level)
    return tile_response(request, tile, etag, cache)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/images/{id}/histogram", histogram_handler)
