"""The one tile pipeline every protocol hands its request to.

A handler parses its URL into a `TileRequest` (given the image's metadata)
and calls `serve`, which does the same for every protocol: resolve the image
→ open it (cached) → parse → canonical key and ETag → 304 → tile cache →
produce (pass-through decided once) → respond.  The image is opened and the
request parsed exactly once, on a 304 too.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from microtome.pyramid.layout import ImageMeta

from .keys import RESOLVER, SERVICE
from .responses import cache_control, not_modified, not_modified_response, tile_response
from .service import etag_for
from .tilerequest import TileRequest

#: Image metadata → the validated request (raises InvalidRequest, NotFound, ...).
Parse = Callable[[ImageMeta], TileRequest]
#: Protocol-specific response headers (IIIF: Link), given the parsed request.
ExtraHeaders = Callable[[TileRequest, ImageMeta], dict[str, str]]


async def serve(request: web.Request, image_id: str, parse: Parse,
                headers: ExtraHeaders | None = None) -> web.StreamResponse:
    """Answer ``request`` with the pixels ``parse`` asks for from image ``image_id``."""
    svc = request.app[SERVICE]
    ref = await request.app[RESOLVER].resolve(request, image_id)
    pyr = await svc.open(ref)
    req = parse(pyr.meta)
    pixels = req.key()
    etag = etag_for(ref, pixels)
    cache = cache_control(request, ref, svc.settings.max_age)
    extra = headers(req, pyr.meta) if headers is not None else None
    if not_modified(request, etag):
        svc.metrics.not_modified += 1
        return not_modified_response(etag, cache, extra)
    tile = await svc.tile((ref.path, ref.version, pixels), pyr, req)
    return tile_response(request, tile, etag, cache, extra)
