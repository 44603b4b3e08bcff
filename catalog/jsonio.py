"""Request parsing: JSON bodies validated against the OpenAPI schemas, query params."""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from aiohttp import web
from jsonschema import Draft202012Validator

from catalog.openapi import SPEC
from core.http import body_chunks
from pyramid import errors

#: JSON bodies of the catalog API are small; anything bigger is not ours.
MAX_BODY = 256 * 1024


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


async def read_json(request: web.Request, schema: str) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise errors.TooLarge("request body too large", {"limit": MAX_BODY})
    parts: list[bytes] = []
    size = 0
    # Read to the end (a body may arrive in several pieces), but never keep more
    # than the limit in memory.
    async for chunk in body_chunks(request, 1 << 16):
        size += len(chunk)
        if size > MAX_BODY:
            raise errors.TooLarge("request body too large", {"limit": MAX_BODY})
        parts.append(chunk)
    raw = b"".join(parts)
    if not raw.strip():
        value: Any = {}
    else:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise errors.InvalidRequest("malformed JSON body") from None
    if _has_nul(value):
        # PostgreSQL text cannot hold NUL; refuse it here rather than fail in SQL.
        raise errors.InvalidRequest("strings must not contain NUL characters")
    check(schema, value)
    return value  # type: ignore[no-any-return]


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
