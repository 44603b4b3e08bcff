"""Handlers for /api/trash: list, restore, purge, and what a delete would take."""

from __future__ import annotations

from aiohttp import web

from microtome.catalog import trash
from microtome.catalog.access import require_image_access, require_project_role, require_user
from microtome.catalog.db import DB_POOL
from microtome.catalog.jsonio import int_param, page, page_params, path_id, read_no_body
from microtome.catalog.state import CATALOG
from microtome.core.http import json_response
from microtome.pyramid import errors

KINDS = ("project", "image", "annotations")


async def list_trash(request: web.Request) -> web.Response:
    principal = await require_user(request)
    kind = request.query.get("kind")
    if kind is not None and kind not in KINDS:
        raise errors.InvalidRequest(f"kind must be one of {', '.join(KINDS)}")
    limit, offset = page_params(request)
    items, total = await trash.list_items(request.app[DB_POOL], principal, kind, limit, offset)
    return json_response(page(items, total, limit, offset))


async def restore(request: web.Request) -> web.Response:
    principal = await require_user(request)
    trash_id = path_id(request, "trash_id")
    force = request.query.get("force", "false").lower() in ("1", "true", "yes")
    await read_no_body(request)
    async with request.app[DB_POOL].acquire() as conn, conn.transaction():
        item = await trash.locked_item(conn, principal, trash_id)
        result = await trash.restore(conn, item, force)
    _forget(request, item["kind"], list(item["root_ids"]), item["image_id"])
    return json_response(result)


async def purge(request: web.Request) -> web.Response:
    principal = await require_user(request)
    trash_id = path_id(request, "trash_id")
    async with request.app[DB_POOL].acquire() as conn, conn.transaction():
        item = await trash.locked_item(conn, principal, trash_id)
        image_ids = await trash.purge(conn, item)
    settings = request.app[CATALOG].settings
    remote = settings.storage.url if settings.storage else None
    await trash.remove_files(settings.images_dir, settings.uploads_dir, image_ids,
                             list(item["files"]), remote)
    return web.Response(status=204)


def _forget(request: web.Request, kind: str, ids: list[int], image_id: int | None) -> None:
    """Cached decisions made while the item was gone (404s) end everywhere."""
    state = request.app[CATALOG]
    for i in ids if kind == "image" else ([image_id] if image_id is not None else []):
        state.forget_image(i)
    state.forget_access()


async def preview(request: web.Request) -> web.Response:
    """What deleting a project or an image takes with it (the confirmation dialog)."""
    pool = request.app[DB_POOL]
    if "project_id" in request.query:
        project_id = int_param(request, "project_id", 0, 1, 2**63 - 1)
        await require_project_role(request, project_id, "manager")
        summary = await trash.project_summary(pool, project_id)
    elif "image_id" in request.query:
        image_id = int_param(request, "image_id", 0, 1, 2**63 - 1)
        await require_image_access(request, image_id, write=True)
        summary = await trash.image_summary(pool, image_id)
    else:
        raise errors.InvalidRequest("give project_id or image_id")
    days = request.app[CATALOG].settings.trash_days
    return json_response({**summary, "trash_days": days})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/trash", list_trash),
        web.get("/api/trash/preview", preview),
        web.post("/api/trash/{trash_id}/restore", restore),
        web.delete("/api/trash/{trash_id}", purge),
    ]
