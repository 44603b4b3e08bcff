"""Alignment of two images for side-by-side viewing: read, save, reset.

``/api/images/{image_id}/alignments/{other_id}`` is the transform that maps
the other image's level-0 pixels onto this one's (catalog/alignment.py).
Reading needs read access to both images; saving or resetting needs
contributor rights on both (an alignment changes what everybody sees).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web
from jsonschema import Draft202012Validator

from microtome.catalog.access import require_image_role
from microtome.catalog.alignment import Transform
from microtome.catalog.db import DB_POOL
from microtome.catalog.jsonio import load_json, path_id
from microtome.catalog.openapi_alignments import SCHEMAS
from microtome.core.http import json_response
from microtome.pyramid import errors

_BODY = Draft202012Validator(SCHEMAS["AlignmentUpdate"])


def _pair(request: web.Request) -> tuple[int, int]:
    a, b = path_id(request, "image_id"), path_id(request, "other_id")
    if a == b:
        raise errors.InvalidRequest("an image is aligned with itself",
                                    {"field": "other_id"})
    return a, b


def _doc(a: int, b: int, t: Transform, row: asyncpg.Record | None) -> dict[str, Any]:
    return {"image_id": a, "other_id": b, "tx": t.tx, "ty": t.ty, "rotation": t.rotation,
            "scale": t.scale, "saved": row is not None,
            "updated_by": row["updated_by"] if row else None,
            "updated_at": row["updated_at"].isoformat() if row else None}


async def _read(pool: asyncpg.Pool, a: int, b: int) -> dict[str, Any]:
    lo, hi = min(a, b), max(a, b)
    row = await pool.fetchrow(
        "SELECT tx, ty, rotation, scale, updated_by, updated_at FROM image_alignments"
        " WHERE image_a = $1 AND image_b = $2", lo, hi)
    t = Transform(row["tx"], row["ty"], row["rotation"], row["scale"]) if row else Transform()
    # Stored as (lo ← hi); asked the other way round: invert.
    return _doc(a, b, t if a == lo else t.inverse(), row)


async def get_alignment(request: web.Request) -> web.Response:
    a, b = _pair(request)
    await require_image_role(request, a, "viewer")
    await require_image_role(request, b, "viewer")
    return json_response(await _read(request.app[DB_POOL], a, b))


async def put_alignment(request: web.Request) -> web.Response:
    a, b = _pair(request)
    body = await load_json(request, 4096)
    err = next(iter(_BODY.iter_errors(body)), None)
    if err is not None:
        where = "/".join(str(p) for p in err.absolute_path) or "body"
        raise errors.InvalidRequest(f"{where}: {err.message}", {"field": where})
    principal = await require_image_role(request, a, "contributor")
    await require_image_role(request, b, "contributor")
    t = Transform(float(body.get("tx", 0)), float(body.get("ty", 0)),
                  float(body.get("rotation", 0)), float(body.get("scale", 1)))
    lo, hi = min(a, b), max(a, b)
    stored = t if a == lo else t.inverse()
    await request.app[DB_POOL].execute(
        """INSERT INTO image_alignments (image_a, image_b, tx, ty, rotation, scale, updated_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (image_a, image_b) DO UPDATE SET tx = $3, ty = $4, rotation = $5,
             scale = $6, updated_by = $7, updated_at = now()""",
        lo, hi, *stored, principal.user_id)
    return json_response(await _read(request.app[DB_POOL], a, b))


async def delete_alignment(request: web.Request) -> web.Response:
    a, b = _pair(request)
    await require_image_role(request, a, "contributor")
    await require_image_role(request, b, "contributor")
    await request.app[DB_POOL].execute(
        "DELETE FROM image_alignments WHERE image_a = $1 AND image_b = $2", min(a, b), max(a, b))
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    path = "/api/images/{image_id}/alignments/{other_id}"
    return [web.get(path, get_alignment), web.put(path, put_alignment),
            web.delete(path, delete_alignment)]
