"""The one place where domain errors become HTTP responses.

Every JSON error body is ``{"error": message, "detail": ...}``; messages never
contain filesystem paths.  Unexpected exceptions are logged and become a
generic 500 so that nothing internal leaks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Any, TypedDict

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware
from multidict import CIMultiDict

from microtome.pyramid import errors

log = logging.getLogger("microtome.core.http")

# Request-size limits, kept together.  aiohttp's parser refuses request lines
# and header fields over 8190 bytes with its own plain-text 400 before any
# middleware runs; the servers we start raise those hard limits (see
# `parser_limits`) so that merely long requests reach `error_middleware` and
# get our JSON error.  Past the hard limits aiohttp still answers by itself.
#: Hard limit on the request line (method, target, version), bytes.
MAX_REQUEST_LINE_BYTES = 64 * 1024
#: Hard limit on one header field (name + value), bytes.
MAX_HEADER_FIELD_BYTES = 16 * 1024
#: Longest query string we accept (raw, still percent-encoded), bytes.  Tile
#: and API requests need a few hundred; this bounds the work of parsing one.
MAX_QUERY_BYTES = 8 * 1024


#: Longest silence (seconds) while a handler waits for request body bytes;
#: the application sets it from settings.body_timeout_s.
BODY_TIMEOUT: web.AppKey[float] = web.AppKey("body_timeout_s", float)
DEFAULT_BODY_TIMEOUT_S = 60.0


async def body_chunks(request: web.Request, size: int) -> AsyncIterator[bytes]:
    """The request body in chunks of at most `size` bytes; a client that stops
    sending for longer than the body timeout gets RequestTimeout (408) instead of
    holding the handler (and its socket) forever."""
    timeout = request.app.get(BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT_S)
    while True:
        try:
            async with asyncio.timeout(timeout):
                chunk = await request.content.read(size)
        except TimeoutError:
            raise errors.RequestTimeout("the request body stopped arriving",
                                        {"timeout_s": timeout}) from None
        if not chunk:
            return
        yield chunk


class ParserLimits(TypedDict):
    max_line_size: int
    max_field_size: int


def parser_limits() -> ParserLimits:
    """Keyword arguments for `web.run_app` / `web.AppRunner` (passed on to the HTTP parser)."""
    return {"max_line_size": MAX_REQUEST_LINE_BYTES, "max_field_size": MAX_HEADER_FIELD_BYTES}


STATUS: dict[type[errors.MicrotomeError], int] = {
    errors.InvalidRequest: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.TooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.RangeNotSatisfiable: 416,
    errors.Unprocessable: 422,
    errors.TooManyRequests: 429,
    errors.SourceError: 422,
    errors.NotImplementedFeature: 501,
    errors.Unavailable: 503,
    # Damaged stored data is permanent, not a temporary outage: a 4xx the
    # client should not retry (issue 4 lists it among the bad inputs).
    errors.StorageError: 422,
    errors.InsufficientStorage: 507,
    errors.RequestTimeout: 408,
}


def status_for(exc: errors.MicrotomeError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    return 400


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None,
                  content_type: str = "application/json") -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, headers=headers,
                        content_type=content_type)


def error_response(status: int, message: str, detail: Any = None) -> web.Response:
    resp = json_response({"error": message, "detail": detail}, status=status)
    # Third-party viewers must be able to read our errors too.
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _check_query_length(request: web.Request) -> None:
    # raw_path is the request target as received: measure before anything decodes it.
    query = request.raw_path.partition("?")[2]
    if len(query) > MAX_QUERY_BYTES:
        raise errors.InvalidRequest("query string too long",
                                    {"limit": MAX_QUERY_BYTES, "length": len(query)})


_FORWARDED = ("X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-For", "Forwarded")
#: Answers whose body names the host the client used (IIIF ids, DZI URLs).
_HOST_DEPENDENT = ("/info.json", ".dzi")


def _peer_trusted(peer: str | None, networks: Sequence[IPv4Network | IPv6Network]) -> bool:
    try:
        address = ip_address(peer or "")
    except ValueError:
        return False
    return any(address in net for net in networks)


def forwarded_middleware(trusted: Sequence[str]) -> Middleware:
    """X-Forwarded-Host/-Proto/-For are believed only from the proxies in `trusted`
    (IPs or CIDR networks, MICROTOME_TRUSTED_PROXIES); from anyone else they are
    dropped before any handler sees them.  Host-dependent answers get a Vary."""
    networks = [ip_network(t, strict=False) for t in trusted]
    vary = "Host, X-Forwarded-Host, X-Forwarded-Proto" if networks else "Host"

    @web.middleware
    async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        headers = request.headers
        # Spelled out (no generator): this runs on every request, tiles included.
        if ("X-Forwarded-Host" in headers or "X-Forwarded-Proto" in headers
                or "X-Forwarded-For" in headers or "Forwarded" in headers):
            changes: dict[str, Any] = {}
            if _peer_trusted(request.remote, networks):
                proto = headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
                host = headers.get("X-Forwarded-Host", "").split(",")[0].strip()
                peer = headers.get("X-Forwarded-For", "").split(",")[-1].strip()
                if proto in ("http", "https"):
                    changes["scheme"] = proto
                if host and not any(c in host for c in "/\\ @<>\"'"):
                    changes["host"] = host
                if peer:
                    changes["remote"] = peer
            clean = CIMultiDict((k, v) for k, v in headers.items() if k not in _FORWARDED)
            request = request.clone(headers=clean, **changes)
        response = await handler(request)
        if request.path.endswith(_HOST_DEPENDENT):
            existing = response.headers.get("Vary")
            response.headers["Vary"] = f"{existing}, {vary}" if existing else vary
        return response

    return forwarded


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        _check_query_length(request)
        return await handler(request)
    except errors.MicrotomeError as exc:
        resp = error_response(status_for(exc), exc.message, exc.detail)
        if isinstance(exc, errors.TooManyRequests | errors.Unavailable):
            resp.headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, errors.RequestTimeout):
            resp.force_close()  # the rest of that body is never coming: hang up
        return resp
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = exc.reason or "error"
        if exc.status == 404:
            reason = "not found"
        elif exc.status == 405:
            reason = "method not allowed"
        return error_response(exc.status, reason, exc.text if exc.status == 413 else None)
    except Exception:
        log.exception("unhandled error for %s %s", request.method, request.rel_url)
        return error_response(500, "internal error")
