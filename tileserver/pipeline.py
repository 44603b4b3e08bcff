"""The one tile pipeline every protocol hands its request to.

A handler parses its URL into a `TileRequest` (given the image's metadata)
and calls `serve`, which does the same for every protocol: resolve the image
→ open it (cached) → parse → canonical key and ETag → 304 → tile cache →
produce (pass-through decided once) → respond.  The image is opened and the
request parsed at most once, on a 304 too.

The warm path (a tile viewers ask for again and again) is kept cheap: the
resolver and the opened-image cache are asked synchronously first (no
coroutine when they hold the answer), and a handler that names its URL
(``memo``) has the parse, tile key, ETag and response headers remembered per
image version (`cache.Parsed`), so a warm tile is a few dictionary lookups.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from aiohttp import web
from multidict import CIMultiDict

from microtome.pyramid.layout import ImageMeta

from .cache import Parsed
from .keys import RESOLVER, SERVICE
from .responses import CORS, cache_control, not_modified, not_modified_response
from .service import etag_for
from .tilerequest import TileRequest

#: Image metadata → the validated request (raises InvalidRequest, NotFound, ...).
Parse = Callable[[ImageMeta], TileRequest]
#: Protocol-specific response headers (IIIF: Link), given the parsed request.
ExtraHeaders = Callable[[TileRequest, ImageMeta], dict[str, str]]


async def serve(request: web.Request, image_id: str, parse: Parse,
                headers: ExtraHeaders | None = None,
                memo: Hashable | None = None) -> web.StreamResponse:
    """Answer ``request`` with the pixels ``parse`` asks for from image ``image_id``.

    ``memo``: the request's URL in a hashable form that determines everything
    ``parse`` and ``headers`` read (route, path parts, raw query); given, their
    results are remembered for the image version (see the module docstring).
    """
    app = request.app
    svc = app[SERVICE]
    resolver = app[RESOLVER]
    peek = getattr(resolver, "peek", None)
    ref = peek(request, image_id) if peek is not None else None
    if ref is None:
        ref = await resolver.resolve(request, image_id)
    image = ref.key
    tiles = svc.tiles
    hit = tiles.parsed.get(memo) if memo is not None else None
    if hit is None or hit.image != image:
        pyr = await svc.open(ref)
        req = parse(pyr.meta)
        pixels = req.key()
        hit = Parsed(image, req, (*image, pixels), etag_for(ref, pixels),
                     headers(req, pyr.meta) if headers is not None else None, {})
        if memo is not None:
            tiles.remember(memo, hit)
    cache = cache_control(request, ref, svc.settings.max_age)
    etag = hit.etag
    if not_modified(request, etag):
        svc.metrics.not_modified += 1
        return not_modified_response(etag, cache, hit.extra)
    tile = svc.cached(hit.tile_key)
    if tile is None:
        tile = await svc.tile(hit.tile_key, await svc.open(ref), hit.req)
    template = hit.headers.get(cache)
    if template is None:  # built once per (URL, image version, caching)
        template = CIMultiDict({"Content-Type": tile.content_type, "ETag": etag,
                                "Cache-Control": cache, CORS: "*"})
        if hit.extra:
            template.update(hit.extra)
        hit.headers[cache] = template
    # The template is copied by the Response (aiohttp adds Content-Length, Date...).
    return web.Response(body=tile.body, headers=template)
