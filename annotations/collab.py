"""Annotation properties (user key-value pairs) and annotation actions in the activity store.

Properties live in the annotation's ``properties`` (the same object imports
fill and exports write), under the same key rules as image properties.
Contributors of the annotation's project (or of the image, outside projects)
set them; viewers read them.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from microtome.catalog import access, properties
from microtome.catalog.activity_store import ACTIVITY
from microtome.catalog.db import DB_POOL
from microtome.catalog.jsonio import load_json, path_id
from microtome.core.http import Handler, json_response
from microtome.pyramid import errors


async def _row(request: web.Request) -> asyncpg.Record:
    row = await request.app[DB_POOL].fetchrow(
        "SELECT id, image_id, project_id, user_id, properties FROM annotations WHERE id = $1",
        path_id(request, "annotation_id"))
    if row is None:
        raise errors.NotFound("annotation not found")
    return row


def _json(props: dict[str, Any]) -> dict[str, Any]:
    return {"properties": props}


async def get_properties(request: web.Request) -> web.Response:
    row = await _row(request)
    await access.require_image_access(request, row["image_id"])
    return json_response(_json(row["properties"] or {}))


async def patch_properties(request: web.Request) -> web.Response:
    row = await _row(request)
    principal = await access.require_image_access(request, row["image_id"])
    if row["project_id"] is not None:
        role = await access.project_role(request, row["project_id"])
    else:
        _, role = await access.image_role(request.app[DB_POOL], principal, row["image_id"])
    if principal.user_id is None or not access.role_at_least(role, "contributor"):
        raise errors.Forbidden("setting annotation properties needs the contributor role")
    changes = properties.check_changes(await load_json(request))
    keep = {k: v for k, v in changes.items() if v is not None}
    drop = [k for k, v in changes.items() if v is None]
    props = await request.app[DB_POOL].fetchval(
        """UPDATE annotations SET properties = (properties || $2::jsonb) - $3::text[],
               updated_at = now() WHERE id = $1 RETURNING properties""",
        row["id"], keep, drop)
    _record(request, "annotation.properties", principal.user_id, row["image_id"],
            {"annotation_id": row["id"]})
    return json_response(_json(props or {}))


def _record(request: web.Request, kind: str, user_id: int | None, image_id: int | None,
            detail: dict[str, Any]) -> None:
    writer = request.app.get(ACTIVITY)
    if writer is not None:
        writer.add(kind, user_id=user_id, image_id=image_id, detail=detail)


#: Annotation routes whose success is an action worth recording, by (method, route).
_ACTIONS = {
    ("POST", "/api/images/{image_id}/annotations"): "annotation.create",
    ("POST", "/api/images/{image_id}/annotations/batch"): "annotation.create_batch",
    ("POST", "/api/images/{image_id}/annotations/delete"): "annotation.delete_batch",
    ("POST", "/api/images/{image_id}/annotations/import"): "annotation.import",
    ("PATCH", "/api/annotations/{annotation_id}"): "annotation.update",
    ("DELETE", "/api/annotations/{annotation_id}"): "annotation.delete",
}


@web.middleware
async def record_actions(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every successful annotation write goes to the activity store (after the fact,
    without waiting: the batch writer takes it)."""
    info = request.match_info.route.resource
    kind = _ACTIONS.get((request.method, info.canonical)) if info is not None else None
    if kind is None:
        return await handler(request)
    image_id = None
    ann = request.match_info.get("annotation_id")
    if ann is not None and ann.isdigit() and len(ann) <= 18:
        # Looked up first: after a delete the row is gone.
        image_id = await request.app[DB_POOL].fetchval(
            "SELECT image_id FROM annotations WHERE id = $1", int(ann))
    elif request.match_info.get("image_id", "").isdigit():
        image_id = int(request.match_info["image_id"])
    response = await handler(request)
    if response.status < 300:
        principal = await access.get_principal(request)
        _record(request, kind, principal.user_id if principal else None,
                image_id, {"annotation_id": int(ann)} if ann and ann.isdigit() else {})
    return response


def setup(app: web.Application) -> None:
    one = "/api/annotations/{annotation_id}/properties"
    app.router.add_get(one, get_properties)
    app.router.add_patch(one, patch_properties)
    app.middlewares.append(record_actions)
