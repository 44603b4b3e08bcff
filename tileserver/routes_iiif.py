"""IIIF Image API 3.0 (``/iiif/3/...``) and 2.1 (``/iiif/2/...``), level 2.

Rendering parameters (tileserver/renderparams.py) may be given in the query or
as one path segment after the identifier: ``/iiif/3/{id}/channels=1&z=2/...``.
An info.json asked for with rendering parameters puts that segment in its
``id``, because IIIF viewers build every image URL from the ``id`` alone: the
choice then holds on every tile.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web

from microtome.pyramid.errors import NotFound
from microtome.pyramid.layout import ImageMeta

from .iiif_params import FORMATS, QUALITIES, Limits, canonical, parse_request
from .keys import RESOLVER, SERVICE
from .metrics import instrumented
from .pipeline import serve
from .renderparams import RENDER_KEYS, RGB, parse_render, parse_segment, render_segment
from .responses import CORS, cache_control, public_origin
from .tilerequest import TileRequest

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


def base_uri(request: web.Request, version: str, render: bool = True) -> str:
    """The image's IIIF base URI as the client spelled it: identifier, and the render
    segment if there is one and ``render``."""
    parts = request.raw_path.split("?", 1)[0].split("/")
    base = f"{public_origin(request)}/iiif/{version}/{parts[3]}"
    return base + f"/{parts[4]}" if render and "render" in request.match_info else base


def _render_query(request: web.Request) -> Mapping[str, str]:
    """The rendering parameters: the path segment's, overridden by the query's."""
    if "render" not in request.match_info:
        return request.query
    raw = request.raw_path.split("?", 1)[0].split("/")[4]
    params = parse_segment(raw)
    query = request.query
    params.update((k, query[k]) for k in RENDER_KEYS if k in query)
    return params


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
            "extraQualities": [q for q in QUALITIES if q != "default"],
            "extraFeatures": EXTRA_FEATURES,
        }
    return {
        "@context": CONTEXT["2"], "@id": base, "protocol": "http://iiif.io/api/image",
        "width": meta.width, "height": meta.height,
        "sizes": _sizes(meta, limits), "tiles": tiles,
        "profile": [PROFILE["2"], {
            "formats": list(FORMATS), "qualities": list(QUALITIES),
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
    base = base_uri(request, version, render=False)
    query = _render_query(request)
    params = parse_render(pyr.meta, query)  # 400 for bad rendering parameters, on every image
    # RGB slides carry the segment only when filters change their pixels.
    if (pyr.meta.kind != "rgb" or params != RGB) and (segment := render_segment(query)):
        base += f"/{segment}"
    doc = info_document(pyr.meta, base, version, svc.limits)
    headers = {"Content-Type": _info_content_type(request, version), "Vary": "Accept",
               CORS: "*", "Cache-Control": cache_control(request, ref, svc.settings.max_age),
               "Link": f'<{PROFILE[version]}>;rel="profile"'}
    return web.Response(body=orjson.dumps(doc), headers=headers)


@instrumented("iiif_base")
async def base_handler(request: web.Request) -> web.StreamResponse:
    version = _version(request)
    await request.app[RESOLVER].resolve(request, request.match_info["id"])
    _render_query(request)  # 404 for a segment that is no rendering parameters
    location = base_uri(request, version) + "/info.json"
    return web.Response(status=303, headers={"Location": location, CORS: "*"})


@instrumented("iiif_image")
async def image_handler(request: web.Request) -> web.StreamResponse:
    version = _version(request)
    limits = request.app[SERVICE].limits
    mi = request.match_info
    query = _render_query(request)

    def parse(meta: ImageMeta) -> TileRequest:
        req = parse_request(mi["region"], mi["size"], mi["rotation"], mi["tail"], meta, version,
                            limits)
        # After the path (the spec's order of checks), before any pixel is read.
        params = parse_render(meta, query)
        return req if params is req.render else req._replace(render=params)

    def link(req: TileRequest, meta: ImageMeta) -> dict[str, str]:
        tail = canonical(req, version, meta.width, meta.height, limits)
        return {"Link": f'<{base_uri(request, version)}/{tail}>;rel="canonical",'
                        f'<{PROFILE[version]}>;rel="profile"',
                "Access-Control-Expose-Headers": "Link, ETag"}

    return await serve(request, mi["id"], parse, link)


def add_routes(app: web.Application) -> None:
    # info.json before the render-segment base URI, which would match it too.
    for render in ("", "/{render}"):
        app.router.add_get(f"/iiif/{{version}}/{{id}}{render}/info.json", info_handler)
    for render in ("", "/{render}"):
        app.router.add_get(f"/iiif/{{version}}/{{id}}{render}", base_handler)
        app.router.add_get(f"/iiif/{{version}}/{{id}}{render}/{{region}}/{{size}}/{{rotation}}"
                           "/{tail}", image_handler)
