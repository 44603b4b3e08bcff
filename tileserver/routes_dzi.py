"""Deep Zoom: ``/dzi/{id}.dzi`` and ``/dzi/{id}_files/{level}/{col}_{row}.{fmt}``."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from microtome.core.http import json_response
from microtome.pyramid.errors import InvalidRequest
from microtome.pyramid.layout import ImageMeta

from .encode import CONTENT_TYPES
from .keys import RESOLVER, SERVICE
from .metrics import instrumented
from .pipeline import serve
from .renderparams import parse_render
from .responses import CORS, cache_control, public_origin
from .tilemath import dzi_tile
from .tilerequest import TileRequest

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


@instrumented("dzi_tile")
async def dzi_tile_handler(request: web.Request) -> web.StreamResponse:
    mi = request.match_info
    image_id = mi["id"]
    # The URL names everything the parse reads (the query too, raw: parsed only on a miss).
    memo = ("dzi", image_id, mi["level"], mi["col_row"], mi["fmt"],
            request.raw_path.partition("?")[2])
    if memo not in request.app[SERVICE].tiles.parsed:
        _parse_tile(mi)  # a malformed tile URL is a 400 before the image is looked up

    def parse(meta: ImageMeta) -> TileRequest:
        level, col, row, fmt = _parse_tile(mi)
        return dzi_tile(meta, level, col, row, fmt, parse_render(meta, request.query))

    return await serve(request, image_id, parse, memo=memo)


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
    # Tiles first: the router tries a prefix's routes in order, and tiles are the
    # hot path (neither URL can match the other's pattern).
    app.router.add_get("/dzi/{id}_files/{level}/{col_row}.{fmt}", dzi_tile_handler)
    app.router.add_get("/dzi/{id}.dzi", dzi_descriptor_handler)
