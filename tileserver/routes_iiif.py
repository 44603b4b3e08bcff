"""IIIF Image API 3.0 (``/iiif/3/...``) and 2.1 (``/iiif/2/...``), level 2."""

from __future__ import annotations

import orjson
from aiohttp import web

from pyramid.errors import NotFound
from pyramid.layout import ImageMeta

from . import produce
from .iiif_params import FORMATS, Limits, parse_request
from .keys import RESOLVER, SERVICE
from .metrics import instrumented
from .render import parse_render
from .responses import (
    CORS,
    cache_control,
    not_modified,
    not_modified_response,
    public_origin,
    tile_response,
)
from .service import etag_for

CONTEXT = {"3": "http://iiif.io/api/image/3/context.json",
           "2": "http://iiif.io/api/image/2/context.json"}
PROFILE = {"3": "http://iiif.io/api/image/3/level2.json",
           "2": "http://iiif.io/api/image/2/level2.json"}
EXTRA_FEATURES = ["mirroring", "sizeUpscaling", "canonicalLinkHeader", "profileLinkHeader"]


def _version(request: web.Request) -> str:
    v = request.match_info["version"]
    if v not in CONTEXT:
        raise NotFound("unknown IIIF version")
    return v


def base_uri(request: web.Request, version: str) -> str:
    """The image's IIIF base URI, with the identifier exactly as the client encoded it."""
    raw_id = request.raw_path.split("?", 1)[0].split("/")[3]
    return f"{public_origin(request)}/iiif/{version}/{raw_id}"


def _sizes(meta: ImageMeta, limits: Limits) -> list[dict[str, int]]:
    return [{"width": lv.width, "height": lv.height} for lv in reversed(meta.levels)
            if lv.width <= limits.max_width and lv.height <= limits.max_height
            and lv.width * lv.height <= limits.max_area]


def info_document(meta: ImageMeta, base: str, version: str, limits: Limits) -> dict[str, object]:
    tiles = [{"width": meta.tile_size, "height": meta.tile_size,
              "scaleFactors": [lv.downsample for lv in meta.levels]}]
    if version == "3":
        return {
            "@context": CONTEXT["3"], "id": base, "type": "ImageService3",
            "protocol": "http://iiif.io/api/image", "profile": "level2",
            "width": meta.width, "height": meta.height,
            "maxWidth": limits.max_width, "maxHeight": limits.max_height,
            "maxArea": limits.max_area,
            "sizes": _sizes(meta, limits), "tiles": tiles,
            "preferredFormats": ["jpg"], "extraFormats": ["webp"],
            "extraQualities": ["bitonal"],  # color and gray are part of level 2
            "extraFeatures": EXTRA_FEATURES,
        }
    return {
        "@context": CONTEXT["2"], "@id": base, "protocol": "http://iiif.io/api/image",
        "width": meta.width, "height": meta.height,
        "sizes": _sizes(meta, limits), "tiles": tiles,
        "profile": [PROFILE["2"], {
            "formats": list(FORMATS), "qualities": ["default", "color", "gray", "bitonal"],
            "supports": ["canonicalLinkHeader", "profileLinkHeader", "mirroring",
                         "sizeAboveFull", "regionSquare", "cors", "jsonldMediaType",
                         "baseUriRedirect"],
            "maxWidth": limits.max_width, "maxHeight": limits.max_height,
            "maxArea": limits.max_area,
        }],
    }


def _info_content_type(request: web.Request, version: str) -> str:
    accept = request.headers.get("Accept", "")
    ld = f'application/ld+json;profile="{CONTEXT[version]}"'
    if "application/ld+json" in accept:
        return ld
    if "application/json" in accept or version == "2":
        return "application/json"
    return ld


@instrumented("iiif_info")
async def info_handler(request: web.Request) -> web.StreamResponse:
    version = _version(request)
    svc = request.app[SERVICE]
    ref = await request.app[RESOLVER].resolve(request, request.match_info["id"])
    pyr = await svc.open(ref)
    doc = info_document(pyr.meta, base_uri(request, version), version, svc.limits)
    headers = {"Content-Type": _info_content_type(request, version), "Vary": "Accept",
               CORS: "*", "Cache-Control": cache_control(request, ref, svc.settings.max_age),
               "Link": f'<{PROFILE[version]}>;rel="profile"'}
    return web.Response(body=orjson.dumps(doc), headers=headers)


@instrumented("iiif_base")
async def base_handler(request: web.Request) -> web.StreamResponse:
    version = _version(request)
    await request.app[RESOLVER].resolve(request, request.match_info["id"])
    location = base_uri(request, version) + "/info.json"
    return web.Response(status=303, headers={"Location": location, CORS: "*"})


@instrumented("iiif_image")
async def image_handler(request: web.Request) -> web.StreamResponse:
    version = _version(request)
    svc = request.app[SERVICE]
    mi = request.match_info
    ref = await request.app[RESOLVER].resolve(request, mi["id"])
    pyr = await svc.open(ref)
    meta = pyr.meta
    req = parse_request(mi["region"], mi["size"], mi["rotation"], mi["tail"], meta.width,
                        meta.height, version, svc.limits)
    params = parse_render(meta, request.query)
    rkey = params.key()
    canonical = req.canonical(version, meta.width, meta.height)
    pixel_key = req.canonical("3", meta.width, meta.height)  # same pixels for 2 and 3
    etag = etag_for(ref, f"iiif/{pixel_key}?{rkey}")
    cache = cache_control(request, ref, svc.settings.max_age)
    link = (f'<{base_uri(request, version)}/{canonical}>;rel="canonical",'
            f'<{PROFILE[version]}>;rel="profile"')
    extra = {"Link": link, "Access-Control-Expose-Headers": "Link, ETag"}
    if not_modified(request, etag):
        svc.metrics.not_modified += 1
        return not_modified_response(etag, cache, extra)
    key = (ref.path, ref.version, "iiif", pixel_key, rkey)
    io = produce.iiif_chunk(pyr, req, params) is not None
    tile = await svc.produce(key, produce.iiif_image, pyr, req, params, io=io)
    return tile_response(request, tile, etag, cache, extra)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/iiif/{version}/{id}", base_handler)
    app.router.add_get("/iiif/{version}/{id}/info.json", info_handler)
    app.router.add_get("/iiif/{version}/{id}/{region}/{size}/{rotation}/{tail}", image_handler)
