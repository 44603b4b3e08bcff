"""HTTP response helpers shared by the tile handlers: CORS, ETag/304, caching."""

from __future__ import annotations

from aiohttp import web

from .cache import Tile
from .resolver import ImageRef

CORS = "Access-Control-Allow-Origin"


def cache_control(request: web.Request, ref: ImageRef, max_age: int) -> str:
    """Immutable when the URL names the image version (``?v=``), else a bounded max-age.

    Responses granted by a credential (the resolver says so, or the request
    carries a cookie or an Authorization header) concern a private image:
    shared caches must not keep them, or a revoked share link would live on.
    """
    headers = request.headers
    private = ref.private or "Cookie" in headers or "Authorization" in headers
    scope = "private" if private else "public"
    # The query is parsed only when it can hold a v (the raw target is at hand).
    if "v=" in request.raw_path and request.query.get("v") == ref.version:
        return f"{scope}, max-age=31536000, immutable"
    return f"{scope}, max-age={max_age}"


def public_origin(request: web.Request) -> str:
    """scheme://host the client used; behind a reverse proxy from X-Forwarded-Proto/-Host.

    IIIF info.json ids and DZI URLs must send clients back through the proxy.
    """
    headers = request.headers
    scheme = headers.get("X-Forwarded-Proto", "").split(",")[0].strip()
    host = headers.get("X-Forwarded-Host", "").split(",")[0].strip()
    if scheme not in ("http", "https"):
        scheme = request.scheme
    if not host or any(c in host for c in "/\\ @<>\"'"):
        host = request.host
    return f"{scheme}://{host}"


def not_modified(request: web.Request, etag: str) -> bool:
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def tile_response(request: web.Request, tile: Tile, etag: str, cache: str,
                  extra: dict[str, str] | None = None) -> web.Response:
    headers = {"ETag": etag, "Cache-Control": cache, CORS: "*"}
    if extra:
        headers.update(extra)
    return web.Response(body=tile.body, headers=headers, content_type=tile.content_type)


def not_modified_response(etag: str, cache: str,
                          extra: dict[str, str] | None = None) -> web.Response:
    headers = {"ETag": etag, "Cache-Control": cache, CORS: "*"}
    if extra:
        headers.update(extra)
    return web.Response(status=304, headers=headers)


async def preflight(request: web.Request) -> web.Response:
    """CORS preflight for every tile URL: reads only, any origin, no credentials."""
    headers = {
        CORS: "*",
        "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
        "Access-Control-Allow-Headers":
            request.headers.get("Access-Control-Request-Headers", "*")[:1024],
        "Access-Control-Max-Age": "86400",
        "Access-Control-Expose-Headers": "ETag, Link, Content-Length",
    }
    return web.Response(status=204, headers=headers)
