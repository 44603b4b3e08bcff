"""Handlers: properties of images and projects, descriptions, image tags, CSV import.

Viewers read; managers (of the image's home project, or of the project) write.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from microtome.catalog import csv_props, describe, properties
from microtome.catalog.access import (
    image_access,
    require_image_role,
    require_project_role,
)
from microtome.catalog.db import DB_POOL
from microtome.catalog.jsonio import load_json, path_id, read_body
from microtome.core.http import json_response
from microtome.pyramid import errors


def _props_json(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"items": rows, "properties": {r["key"]: r["value"] for r in rows}}


async def _apply_changes(request: web.Request, kind: str, owner_id: int,
                         user_id: int | None) -> web.Response:
    """Validate the body's changes, write them in one transaction, answer the new set."""
    changes = properties.check_changes(await load_json(request))
    pool = request.app[DB_POOL]
    async with pool.acquire() as conn, conn.transaction():
        await properties.write(conn, kind, owner_id, changes, user_id=user_id)
    return json_response(_props_json(await properties.read(pool, kind, owner_id)))


async def image_properties(request: web.Request) -> web.Response:
    image_id = path_id(request, "image_id")
    await require_image_role(request, image_id, "viewer")
    return json_response(_props_json(await properties.read(request.app[DB_POOL], "image",
                                                           image_id)))


async def patch_image_properties(request: web.Request) -> web.Response:
    image_id = path_id(request, "image_id")
    principal = await require_image_role(request, image_id, "manager")
    return await _apply_changes(request, "image", image_id, principal.user_id)


async def project_properties(request: web.Request) -> web.Response:
    project_id = path_id(request, "project_id")
    await require_project_role(request, project_id, "viewer")
    return json_response(_props_json(await properties.read(request.app[DB_POOL], "project",
                                                           project_id)))


async def patch_project_properties(request: web.Request) -> web.Response:
    project_id = path_id(request, "project_id")
    principal = await require_project_role(request, project_id, "manager")
    return await _apply_changes(request, "project", project_id, principal.user_id)


async def project_property_keys(request: web.Request) -> web.Response:
    project_id = path_id(request, "project_id")
    await require_project_role(request, project_id, "viewer")
    return json_response({"items": await properties.project_keys(request.app[DB_POOL],
                                                                 project_id)})


# -- description and tags --------------------------------------------------------------
def _description(value: Any) -> str:
    if not isinstance(value, str) or len(value) > describe.MAX_DESCRIPTION:
        raise errors.InvalidRequest(
            f"description must be text of at most {describe.MAX_DESCRIPTION} characters",
            {"field": "description"})
    return value


async def _about(request: web.Request, image_id: int) -> dict[str, Any]:
    row = await request.app[DB_POOL].fetchrow(
        "SELECT description, tags FROM images WHERE id = $1", image_id)
    if row is None:
        raise errors.NotFound("image not found")
    html = await asyncio.to_thread(describe.render, row["description"])
    return {"description": row["description"], "description_html": html,
            "tags": list(row["tags"])}


async def get_about(request: web.Request) -> web.Response:
    image_id = path_id(request, "image_id")
    await require_image_role(request, image_id, "viewer")
    return json_response(await _about(request, image_id))


async def patch_about(request: web.Request) -> web.Response:
    image_id = path_id(request, "image_id")
    await require_image_role(request, image_id, "manager")
    body = await load_json(request)
    if not isinstance(body, dict) or not body or set(body) - {"description", "tags"}:
        raise errors.InvalidRequest("the body may hold 'description' and 'tags'")
    desc = _description(body["description"]) if body.get("description") is not None else None
    tags = properties.check_tags(body["tags"]) if "tags" in body else None
    await request.app[DB_POOL].execute(
        """UPDATE images SET description = coalesce($2, description),
               tags = coalesce($3, tags), updated_at = now() WHERE id = $1""",
        image_id, desc, tags)
    return json_response(await _about(request, image_id))


async def _project_about(request: web.Request, project_id: int) -> dict[str, Any]:
    desc = await request.app[DB_POOL].fetchval(
        "SELECT description FROM projects WHERE id = $1", project_id)
    if desc is None:
        raise errors.NotFound("project not found")
    return {"description": desc,
            "description_html": await asyncio.to_thread(describe.render, desc)}


async def get_project_about(request: web.Request) -> web.Response:
    project_id = path_id(request, "project_id")
    await require_project_role(request, project_id, "viewer")
    return json_response(await _project_about(request, project_id))


async def patch_project_about(request: web.Request) -> web.Response:
    """The project's Markdown description (the same column PATCH /projects/{id} sets)."""
    project_id = path_id(request, "project_id")
    await require_project_role(request, project_id, "manager")
    body = await load_json(request)
    if not isinstance(body, dict) or set(body) != {"description"}:
        raise errors.InvalidRequest("the body must be {\"description\": Markdown text}",
                                    {"field": "description"})
    desc = _description(body["description"])
    await request.app[DB_POOL].execute(
        "UPDATE projects SET description = $2, updated_at = now() WHERE id = $1",
        project_id, desc)
    return json_response(await _project_about(request, project_id))


# -- CSV import ------------------------------------------------------------------------
async def import_csv(request: web.Request) -> web.Response:
    """All rows or none: a per-row report either way (422 when any row is wrong)."""
    project_id = path_id(request, "project_id")
    principal = await require_project_role(request, project_id, "manager")
    if request.content_type not in ("text/csv", "text/plain", "application/csv"):
        raise errors.UnsupportedMediaType("the body must be a CSV file (Content-Type: text/csv)",
                                          {"content_type": request.content_type})
    dry_run = request.query.get("dry_run", "") in ("1", "true")
    raw = await read_body(request, csv_props.MAX_BYTES)
    parsed = await asyncio.to_thread(lambda: csv_props.parse(csv_props.decode(raw)))
    pool = request.app[DB_POOL]
    names = await pool.fetch(
        """SELECT i.id, lower(i.source_filename) AS f, lower(i.name) AS n, i.home_project_id
           FROM images i JOIN project_images pi ON pi.image_id = i.id
           WHERE pi.project_id = $1""", project_id)
    index: dict[str, list[int]] = {}
    for r in names:
        for name in {r["f"], r["n"]} - {""}:
            index.setdefault(name, []).append(r["id"])
    csv_props.match(parsed.rows, index)
    # Writing an image's properties needs its home project's manager role; a project
    # the image was only linked into cannot change it.
    home = {r["id"]: r["home_project_id"] == project_id for r in names}
    for row in parsed.rows:
        if row.image_id is not None and not home[row.image_id]:
            acc = await image_access(pool, principal, row.image_id)
            if acc.role != "manager":
                row.error = "the image belongs to another project; ask its managers"
    report = [r.as_json() for r in parsed.rows]
    if any(r.error for r in parsed.rows):
        raise errors.Unprocessable("some rows are wrong; nothing was applied",
                                   {"applied": False, "rows": report})
    if not dry_run:
        async with pool.acquire() as conn, conn.transaction():
            for row in parsed.rows:
                assert row.image_id is not None
                if row.properties:
                    await properties.write(conn, "image", row.image_id, row.properties,
                                           user_id=principal.user_id, source="csv")
    return json_response({"applied": not dry_run, "rows": report,
                          "images": len(parsed.rows),
                          "properties": sum(len(r.properties) for r in parsed.rows)})


def routes() -> list[web.RouteDef]:
    img, proj = "/api/images/{image_id}", "/api/projects/{project_id}"
    return [
        web.get(img + "/properties", image_properties),
        web.patch(img + "/properties", patch_image_properties),
        web.get(img + "/about", get_about),
        web.patch(img + "/about", patch_about),
        web.get(proj + "/about", get_project_about),
        web.patch(proj + "/about", patch_project_about),
        web.get(proj + "/properties", project_properties),
        web.patch(proj + "/properties", patch_project_properties),
        web.get(proj + "/property-keys", project_property_keys),
        web.post(proj + "/properties/import", import_csv),
    ]
