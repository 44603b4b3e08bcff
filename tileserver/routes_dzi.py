"""Deep Zoom: ``/dzi/{id}.dzi`` and ``/dzi/{id}_files/{level}/{col}_{row}.{fmt}``."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from core.http import json_response
from pyramid.errors import InvalidRequest

from . import produce
from .cache import Tile
from .encode import CONTENT_TYPES
from .keys import RESOLVER, SERVICE
from .metrics import instrumented
from .render import RENDER_KEYS, parse_render
from .resolver import ImageRef
from .responses import (
    CORS,
    cache_control,
    not_modified,
    not_modified_response,
    public_origin,
    tile_response,
)
from .service import TileService, etag_for
from .tilemath import dzi_tile

DZI_NS = "http://schemas.microsoft.com/deepzoom/2008"


def _int(raw: str, what: str) -> int:
    # Rejects '-1', '1.5', '', huge numbers and non-ASCII digits ('²' passes isdigit()).
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise InvalidRequest(f"{what} must be a non-negative integer")
    return int(raw)


def _parse_tile(mi: Mapping[str, str]) -> tuple[int, int, int, str]:
    """URL parts → (level, col, row, format); 400 for anything malformed."""
    level = _int(mi["level"], "level")
    col_s, sep, row_s = mi["col_row"].partition("_")
    if not sep:
        raise InvalidRequest("tile name must be {col}_{row}.{format}")
    fmt = mi["fmt"]
    if fmt not in CONTENT_TYPES:
        raise InvalidRequest("format must be jpg, jpeg, png or webp")
    return level, _int(col_s, "column"), _int(row_s, "row"), fmt


async def _produce(svc: TileService, ref: ImageRef, key: tuple[object, ...], level: int,
                   col: int, row: int, fmt: str, query: Mapping[str, str]) -> Tile:
    pyr = await svc.open(ref)
    dt = dzi_tile(pyr.meta, level, col, row)  # NotFound outside the pyramid
    params = parse_render(pyr.meta, query)
    io = produce.dzi_chunk(pyr, dt, col, row, fmt, params) is not None
    return await svc.produce(key, produce.dzi_tile, pyr, dt, col, row, fmt, params, io=io)


@instrumented("dzi_tile")
async def dzi_tile_handler(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICE]
    level, col, row, fmt = _parse_tile(request.match_info)
    ref = await request.app[RESOLVER].resolve(request, request.match_info["id"])
    q = request.query
    rkey = "&".join(f"{k}={q[k]}" for k in RENDER_KEYS if k in q)
    key = (ref.path, ref.version, "dzi", level, col, row, fmt, rkey)
    cache = cache_control(request, ref, svc.settings.max_age)
    etag = etag_for(ref, f"dzi/{level}/{col}_{row}.{fmt}?{rkey}")
    # Cache hit: this exact request succeeded before, so a matching ETag is current.
    tile = svc.cached(key)
    if tile is None and not_modified(request, etag):
        pyr = await svc.open(ref)  # validate before answering 304 for an uncached tile
        dzi_tile(pyr.meta, level, col, row)
        parse_render(pyr.meta, q)
    if not_modified(request, etag):
        svc.metrics.not_modified += 1
        return not_modified_response(etag, cache)
    if tile is None:
        tile = await _produce(svc, ref, key, level, col, row, fmt, q)
    return tile_response(request, tile, etag, cache)


def _dzi_doc(fmt: str, tile_size: int, width: int, height: int, url: str) -> dict[str, object]:
    return {"Image": {"xmlns": DZI_NS, "Url": url, "Format": fmt, "Overlap": "0",
                      "TileSize": str(tile_size),
                      "Size": {"Width": str(width), "Height": str(height)}}}


@instrumented("dzi_descriptor")
async def dzi_descriptor_handler(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICE]
    ref = await request.app[RESOLVER].resolve(request, request.match_info["id"])
    pyr = await svc.open(ref)
    meta = pyr.meta
    parse_render(meta, request.query)  # reject bad rendering parameters up front
    fmt = request.query.get("tile_format", "jpeg")
    if fmt not in CONTENT_TYPES:
        raise InvalidRequest("tile_format must be jpeg, png or webp")
    cache = cache_control(request, ref, svc.settings.max_age)
    headers = {"Cache-Control": cache, CORS: "*"}
    if request.query.get("format") == "json":
        url = public_origin(request) + request.raw_path.split("?", 1)[0].removesuffix(".dzi") \
            + "_files/"
        doc = _dzi_doc(fmt, meta.tile_size, meta.width, meta.height, url)
        return json_response(doc, headers=headers)
    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Image xmlns="{DZI_NS}" Format="{fmt}" '
           f'Overlap="0" TileSize="{meta.tile_size}"><Size Width="{meta.width}" '
           f'Height="{meta.height}"/></Image>\n')
    return web.Response(text=xml, content_type="application/xml", headers=headers)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/dzi/{id}.dzi", dzi_descriptor_handler)
    app.router.add_get("/dzi/{id}_files/{level}/{col_row}.{fmt}", dzi_tile_handler)
