"""Request parsing: JSON bodies validated against the OpenAPI schemas, query params."""

from __future__ import annotations

import asyncio
import re
import threading
from functools import cache
from typing import Any

import numpy as np
import orjson
from aiohttp import web
from jsonschema import Draft202012Validator

from microtome.catalog.openapi import SPEC
from microtome.core.http import body_chunks
from microtome.pyramid import errors

#: JSON bodies of the catalog API are small; anything bigger is not ours.
MAX_BODY = 64 * 1024
#: Login and first-run setup: a name and a password.
CREDENTIALS_BODY = 4 * 1024
#: Bodies up to this size are parsed on the event loop (well under a millisecond);
#: bigger ones in a worker thread.
INLINE_PARSE = 64 * 1024
#: Deepest nesting of arrays/objects we accept; GeoJSON needs 6 or so.  Deeper
#: documents would only exercise recursion in the validators downstream.
MAX_DEPTH = 32


@cache  # bounded: one entry per component schema name
def validator(name: str) -> Draft202012Validator:
    if name not in SPEC["components"]["schemas"]:
        raise KeyError(name)
    schema = {"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]}
    return Draft202012Validator(schema)


def check(name: str, value: Any) -> None:
    """Raise InvalidRequest naming the first problem of `value` against schema `name`."""
    error = next(iter(validator(name).iter_errors(value)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "body"
        msg = error.message if len(error.message) < 200 else error.message[:200] + "…"
        raise errors.InvalidRequest(f"invalid request body: {where}: {msg}")


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = bytes(range(256)).translate(None, b"[]{}")


def _too_deep(raw: bytes, limit: int) -> bool:
    """Nesting deeper than `limit`, measured on the bytes (before any parser recurses):
    drop strings, keep brackets, and take the running depth's maximum (in C, numpy)."""
    brackets = _STRING.sub(b"", raw).translate(None, _BRACKETS)
    if len(brackets) <= limit:
        return False
    arr = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((arr == ord("[")) | (arr == ord("{")), 1, -1).astype(np.int32)
    return bool(np.cumsum(steps).max() > limit)


def parse_json(raw: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Bytes → value; malformed, too deep or NUL-carrying documents are InvalidRequest."""
    if not raw.strip():
        return {}
    if _too_deep(raw, max_depth):
        raise errors.InvalidRequest("JSON body nested too deeply", {"max_depth": max_depth})
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise errors.InvalidRequest("malformed JSON body") from None
    # JSON can only carry NUL escaped; walk the value only when the escape is there.
    if b"\\u0000" in raw and _has_nul(value):
        # PostgreSQL text cannot hold NUL; refuse it here rather than fail in SQL.
        raise errors.InvalidRequest("strings must not contain NUL characters")
    return value


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refused (413) as soon as it passes `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise errors.TooLarge("request body too large", {"limit": limit})
    parts: list[bytes] = []
    size = 0
    # Read to the end (a body may arrive in several pieces), but never keep more
    # than the limit in memory.
    async for chunk in body_chunks(request, 1 << 16):
        size += len(chunk)
        if size > limit:
            raise errors.TooLarge("request body too large", {"limit": limit})
        parts.append(chunk)
    return b"".join(parts)


def is_json_type(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json"))


async def load_json(request: web.Request, limit: int = MAX_BODY,
                    max_depth: int = MAX_DEPTH) -> Any:
    """A JSON body of at most `limit` bytes, parsed off the event loop when large.

    The body must be declared JSON: an HTML form (urlencoded, multipart,
    text/plain) from another site can then never pass as an API call."""
    if request.body_exists and not is_json_type(request.content_type):
        raise errors.UnsupportedMediaType(
            "the body must be JSON (Content-Type: application/json)",
            {"content_type": request.content_type})
    raw = await read_body(request, limit)
    if len(raw) <= INLINE_PARSE:
        return parse_json(raw, max_depth)
    return await asyncio.to_thread(_parse_serialised, raw, max_depth)


#: orjson holds the GIL while it parses: one big parse at a time, so the event
#: loop gets the GIL back between two of them instead of waiting through a chain.
_PARSE_LOCK = threading.Lock()


def _parse_serialised(raw: bytes, max_depth: int) -> Any:
    with _PARSE_LOCK:
        return parse_json(raw, max_depth)


async def read_json(request: web.Request, schema: str,
                    limit: int = MAX_BODY) -> dict[str, Any]:
    value = await load_json(request, limit)
    check(schema, value)
    return value  # type: ignore[no-any-return]


async def read_no_body(request: web.Request) -> None:
    """For operations that take no body: none, or an empty JSON object; anything
    else is refused (a body silently ignored would hide a client's mistake)."""
    if not request.body_exists:
        return
    value = await load_json(request, 1024)
    if value not in ({}, None):
        raise errors.InvalidRequest("this operation takes no request body (or {})")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise errors.InvalidRequest(f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise errors.InvalidRequest(f"{name} must be between {lo} and {hi}")
    return value


def path_id(request: web.Request, name: str) -> int:
    """A bigint id from the URL path; anything else is a 404 (not a 500)."""
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise errors.NotFound(f"{name.removesuffix('_id')} not found")
    return int(raw)


def page_params(request: web.Request) -> tuple[int, int]:
    return (int_param(request, "limit", 50, 1, 500),
            int_param(request, "offset", 0, 0, 10**9))


def page(items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": limit, "offset": offset}
