"""Who may do what with annotations, on top of the catalog's project roles.

- Reading (viewport, search, export, stats, crops) needs read access to the image.
- Creating needs 'contributor' on the project the annotation is made in (the
  `project_id` given, else the first project of the image where the caller
  is at least contributor; an image owner outside any project may annotate
  without a project, but then without terms).
- Changing or deleting: managers of the annotation's project change anything,
  contributors only what they authored.
- Terms: viewers list them, contributors add them, managers change and delete.
  A share link reads (only reads) the terms of the projects holding what it
  shares, so shared views draw annotations in their terms' colours.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from microtome.catalog import access
from microtome.catalog.access import Principal
from microtome.catalog.db import DB_POOL
from microtome.pyramid.errors import Forbidden, NotFound, Unprocessable


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
    # A contributor of any project holding the image annotates in that project
    # (the image's own rights stay with its home project).
    for (pid,) in await pool.fetch(
            "SELECT project_id FROM project_images WHERE image_id = $1 ORDER BY project_id",
            image_id):
        if access.role_at_least(await access.project_role(request, pid), "contributor"):
            principal = await access.require_image_access(request, image_id)
            if principal.user_id is not None:
                return principal, pid
    principal = await access.require_image_access(request, image_id, write=True)
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
    if role in ("contributor", "reviewer") and row["user_id"] == principal.user_id:
        return principal
    if role is None:
        raise NotFound("annotation not found")
    raise Forbidden("only the author or a project manager may change this annotation")


async def share_reads_terms(request: web.Request, project_id: int) -> bool:
    """May the caller's share link list this project's terms?

    Yes for the projects of the shared image, the shared project itself, and
    the projects that hold any of its images: the annotations a share link
    shows are filed under those projects.  Term names and colours are no more
    than the GeoJSON export of a shared image already carries.
    """
    principal = await access.get_principal(request)
    share = principal.share if principal is not None else None
    if share is None:
        return False
    if share.project_id == project_id:
        return True
    return bool(await request.app[DB_POOL].fetchval(
        """SELECT 1 FROM project_images pi WHERE pi.project_id = $1
             AND (pi.image_id = $2 OR pi.image_id IN (
                  SELECT s.image_id FROM project_images s WHERE s.project_id = $3))
           LIMIT 1""", project_id, share.image_id, share.project_id))
