"""Who may do what with annotations, on top of the catalog's project roles.

- Reading (viewport, search, export, stats, crops) needs read access to the image.
- Creating needs 'contributor' on the project the annotation is made in (the
  `project_id` given, else the first project of the image where the caller
  is at least contributor; an image owner outside any project may annotate
  without a project, but then without terms).
- Changing or deleting: managers of the annotation's project change anything,
  contributors only what they authored.
- Terms: viewers list them, contributors add them, managers change and delete.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from catalog import access
from catalog.access import Principal
from catalog.db import DB_POOL
from pyramid.errors import Forbidden, NotFound, Unprocessable


async def write_project(request: web.Request, image_id: int, project_id: int | None
                        ) -> tuple[Principal, int | None]:
    """(caller, project) for new annotations on an image; raises if not allowed."""
    pool: asyncpg.Pool = request.app[DB_POOL]
    if project_id is not None:
        principal = await access.require_project_role(request, project_id, "contributor")
        linked = await pool.fetchval(
            "SELECT 1 FROM project_images WHERE project_id = $1 AND image_id = $2",
            project_id, image_id)
        if not linked:
            # Could the caller see the image at all?  Do not reveal it otherwise.
            await access.require_image_access(request, image_id)
            raise Unprocessable("the image is not in this project")
        return principal, project_id
    principal = await access.require_image_access(request, image_id, write=True)
    for (pid,) in await pool.fetch(
            "SELECT project_id FROM project_images WHERE image_id = $1 ORDER BY project_id",
            image_id):
        if access.role_at_least(await access.project_role(request, pid), "contributor"):
            return principal, pid
    return principal, None


async def check_edit(request: web.Request, row: asyncpg.Record | dict[str, Any]) -> Principal:
    """The caller, if allowed to change or delete this annotation."""
    principal = await access.require_image_access(request, row["image_id"])
    if principal.user_id is None:
        raise Forbidden("a share link only allows viewing")
    if row["project_id"] is not None:
        role = await access.project_role(request, row["project_id"])
    else:
        _exists, role = await access.image_role(request.app[DB_POOL], principal, row["image_id"])
    if role == "manager":
        return principal
    if role == "contributor" and row["user_id"] == principal.user_id:
        return principal
    if role is None:
        raise NotFound("annotation not found")
    raise Forbidden("only the author or a project manager may change this annotation")
