"""Handlers for /api/projects: CRUD, members and roles, the images of a project."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from microtome.catalog import images, trash, upload_files
from microtome.catalog.access import (
    Principal,
    ShareScope,
    get_principal,
    project_role,
    require_image_link,
    require_project_role,
    require_user,
)
from microtome.catalog.db import DB_POOL
from microtome.catalog.jsonio import page, page_params, path_id, read_json
from microtome.catalog.properties import grid_query
from microtome.catalog.ratelimit import MEMBER_LOOKUPS, too_many
from microtome.catalog.state import CATALOG
from microtome.core.http import json_response
from microtome.pyramid import errors

PROJECT_SELECT = """SELECT p.id, p.name, p.description, p.public, p.created_at, p.updated_at,
    (SELECT count(*) FROM project_images pi WHERE pi.project_id = p.id) AS image_count
 FROM projects p"""


def _project(row: asyncpg.Record, role: str | None) -> dict[str, Any]:
    out = {k: row[k] for k in ("id", "name", "description", "public", "created_at",
                               "updated_at", "image_count")}
    out["role"] = role
    return out


async def _fetch_project(request: web.Request, project_id: int) -> dict[str, Any]:
    row = await request.app[DB_POOL].fetchrow(PROJECT_SELECT + " WHERE p.id = $1", project_id)
    if row is None:
        raise errors.NotFound("project not found")
    return _project(row, await project_role(request, project_id))


async def list_projects(request: web.Request) -> web.Response:
    principal = await get_principal(request)
    limit, offset = page_params(request)
    args: list[Any] = []
    # The caller's role comes out of the same query (no query per project).
    role = "'viewer'"
    if principal is not None and principal.is_admin:
        cond, role = "TRUE", "'manager'"
    elif principal is not None and principal.share is not None:
        args.append(principal.share.project_id)
        cond = "p.id = $1"
    elif principal is not None:
        args.append(principal.user_id)
        member = ("(SELECT m.role FROM project_members m"
                  " WHERE m.project_id = p.id AND m.user_id = $1)")
        cond = f"(p.public OR {member} IS NOT NULL)"
        role = f"COALESCE({member}, 'viewer')"
    else:
        cond = "p.public"
    pool = request.app[DB_POOL]
    select = PROJECT_SELECT.replace(" FROM projects p", f", {role} AS role FROM projects p")
    rows = await pool.fetch(f"{select} WHERE {cond} ORDER BY lower(p.name), p.id"
                            f" LIMIT {limit} OFFSET {offset}", *args)
    total = await pool.fetchval(f"SELECT count(*) FROM projects p WHERE {cond}", *args)
    items = [_project(r, r["role"]) for r in rows]
    return json_response(page(items, total, limit, offset))


async def create_project(request: web.Request) -> web.Response:
    principal = await require_user(request)
    body = await read_json(request, "ProjectCreate")
    pool = request.app[DB_POOL]
    try:
        async with pool.acquire() as conn, conn.transaction():
            project_id = await conn.fetchval(
                """INSERT INTO projects (name, description, public, created_by)
                   VALUES ($1, $2, $3, $4) RETURNING id""",
                body["name"], body.get("description", ""), bool(body.get("public", False)),
                principal.user_id)
            await conn.execute(
                "INSERT INTO project_members (project_id, user_id, role)"
                " VALUES ($1, $2, 'manager')", project_id, principal.user_id)
    except asyncpg.UniqueViolationError:
        raise errors.Conflict("a project with this name already exists") from None
    return json_response(await _fetch_project(request, project_id), status=201)


async def get_project(request: web.Request) -> web.Response:
    project_id = path_id(request, "project_id")
    await require_project_role(request, project_id, "viewer")
    return json_response(await _fetch_project(request, project_id))


async def update_project(request: web.Request) -> web.Response:
    project_id = path_id(request, "project_id")
    await require_project_role(request, project_id, "manager")
    body = await read_json(request, "ProjectUpdate")
    sets, args = [], [project_id]
    for column in ("name", "description", "public"):
        if column in body:
            args.append(body[column])
            sets.append(f"{column} = ${len(args)}")
    try:
        await request.app[DB_POOL].execute(
            f"UPDATE projects SET {', '.join(sets)}, updated_at = now() WHERE id = $1", *args)
    except asyncpg.UniqueViolationError:
        raise errors.Conflict("a project with this name already exists") from None
    request.app[CATALOG].forget_access()
    return json_response(await _fetch_project(request, project_id))


async def delete_project(request: web.Request) -> web.Response:
    project_id = path_id(request, "project_id")
    principal = await require_project_role(request, project_id, "manager")
    pool = request.app[DB_POOL]
    settings = request.app[CATALOG].settings
    async with pool.acquire() as conn, conn.transaction():
        # Unfinished uploads end now (their bytes are half a file); the rest of the
        # project, annotations and members included, goes to the trash.
        partial = await conn.fetch("DELETE FROM uploads WHERE project_id = $1"
                                   " AND completed_at IS NULL RETURNING id", project_id)
        trash_id = await trash.move_project(conn, project_id, principal.user_id,
                                            settings.trash_days)
    await upload_files.remove_files(settings.uploads_dir, [r["id"] for r in partial])
    await images.log_activity(pool, "project.delete", user_id=principal.user_id,
                              project_id=project_id, detail={"trash_id": trash_id})
    request.app[CATALOG].forget_access()
    return web.Response(status=204)


async def list_members(request: web.Request) -> web.Response:
    """Members (and admins) only: a public project shows its images, not its people."""
    project_id = path_id(request, "project_id")
    principal = await require_project_role(request, project_id, "viewer")
    if not principal.is_admin and not await request.app[DB_POOL].fetchval(
            "SELECT 1 FROM project_members WHERE project_id = $1 AND user_id = $2",
            project_id, principal.user_id):
        if principal.user_id is None and principal.share is None:
            raise errors.Unauthenticated("login required")
        raise errors.Forbidden("only members see who else is a member")
    limit, offset = page_params(request)
    pool = request.app[DB_POOL]
    rows = await pool.fetch(
        """SELECT m.user_id, u.username, m.role, m.added_at FROM project_members m
           JOIN users u ON u.id = m.user_id WHERE m.project_id = $1
           ORDER BY lower(u.username) LIMIT $2 OFFSET $3""", project_id, limit, offset)
    total = await pool.fetchval("SELECT count(*) FROM project_members WHERE project_id = $1",
                                project_id)
    return json_response(page([dict(r) for r in rows], total, limit, offset))


async def _lock_members(conn: asyncpg.Connection, project_id: int) -> None:
    """Serialise membership changes of one project (the 'keep a manager' check must
    see the other transaction's demotion): lock the project row."""
    await conn.execute("SELECT 1 FROM projects WHERE id = $1 FOR UPDATE", project_id)


async def _set_member(conn: asyncpg.Connection, project_id: int, user_id: int,
                      role: str) -> tuple[dict[str, Any], bool, list[str]]:
    """Upsert one membership (keeping a manager); (member row, newly added?, ids of
    unfinished uploads that ended: a viewer adds no images)."""
    await _lock_members(conn, project_id)
    had = await _managers(conn, project_id)
    row = await conn.fetchrow(
        """INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, $3)
           ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role
           RETURNING user_id, role, added_at, (xmax = 0) AS inserted""",
        project_id, user_id, role)
    assert row is not None
    await _keep_a_manager(conn, project_id, had)
    username = await conn.fetchval("SELECT username FROM users WHERE id = $1", user_id)
    member = {"user_id": row["user_id"], "username": username, "role": row["role"],
              "added_at": row["added_at"]}
    ended = (await upload_files.drop_unfinished(conn, project_id, user_id)
             if role == "viewer" else [])
    return member, bool(row["inserted"]), ended


async def put_member(request: web.Request) -> web.Response:
    project_id = path_id(request, "project_id")
    user_id = path_id(request, "user_id")
    await require_project_role(request, project_id, "manager")
    body = await read_json(request, "MemberPut")
    pool = request.app[DB_POOL]
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT 1 FROM users WHERE id = $1", user_id):
            raise errors.NotFound("user not found")
        member, _, ended = await _set_member(conn, project_id, user_id, body["role"])
    await upload_files.remove_files(request.app[CATALOG].settings.uploads_dir, ended)
    request.app[CATALOG].forget_access()
    return json_response(member)


async def add_member_by_name(request: web.Request) -> web.Response:
    """Managers add people by their exact user name (case-insensitive, like login).

    The user list stays admin-only: the answer reveals only whether that one
    name exists, which a manager inviting a colleague needs to know anyway.
    """
    project_id = path_id(request, "project_id")
    principal = await require_project_role(request, project_id, "manager")
    body = await read_json(request, "MemberAdd")
    # Misses are counted per manager: probing many names for existence gets a 429.
    throttle, pool = request.app[MEMBER_LOOKUPS], request.app[DB_POOL]
    waits = await throttle.retry_after(pool, principal.user_id)
    if waits is not None:
        raise too_many("unknown names", waits)
    async with pool.acquire() as conn, conn.transaction():
        user_id = await conn.fetchval(
            "SELECT id FROM users WHERE lower(username) = lower($1)", body["username"])
        if user_id is None:
            await throttle.add(pool, principal.user_id)
            raise errors.NotFound("no user with this name", {"username": body["username"]})
        member, added, ended = await _set_member(conn, project_id, user_id, body["role"])
    await upload_files.remove_files(request.app[CATALOG].settings.uploads_dir, ended)
    request.app[CATALOG].forget_access()
    return json_response(member, status=201 if added else 200)


async def _managers(conn: asyncpg.Connection, project_id: int) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM project_members WHERE project_id = $1"
                                   " AND role = 'manager'", project_id))


async def _keep_a_manager(conn: asyncpg.Connection, project_id: int, had: int) -> None:
    """A change may not take away the last manager.  A project that has none (made by
    `microtome import` without --owner) may get any first member from an admin."""
    if had and not await _managers(conn, project_id):
        raise errors.Conflict("a project must keep at least one manager")


async def delete_member(request: web.Request) -> web.Response:
    project_id = path_id(request, "project_id")
    user_id = path_id(request, "user_id")
    await require_project_role(request, project_id, "manager")
    pool = request.app[DB_POOL]
    async with pool.acquire() as conn, conn.transaction():
        await _lock_members(conn, project_id)
        had = await _managers(conn, project_id)
        status = await conn.execute(
            "DELETE FROM project_members WHERE project_id = $1 AND user_id = $2",
            project_id, user_id)
        if status.endswith(" 0"):
            raise errors.NotFound("member not found")
        await _keep_a_manager(conn, project_id, had)
        # A removed member's unfinished uploads can no longer complete into it.
        ended = await upload_files.drop_unfinished(conn, project_id, user_id)
    await upload_files.remove_files(request.app[CATALOG].settings.uploads_dir, ended)
    request.app[CATALOG].forget_access()
    return web.Response(status=204)


async def list_project_images(request: web.Request) -> web.Response:
    project_id = path_id(request, "project_id")
    await require_project_role(request, project_id, "viewer")
    limit, offset = page_params(request)
    # Membership was just checked: list every image of the project (as a
    # project share link would see them), without the per-image test.
    scope = Principal(None, None, False, "share", share=ShareScope(0, None, project_id))
    items, total = await images.list_images(
        request.app[DB_POOL], scope, project_id=project_id,
        limit=limit, offset=offset, sort=request.query.get("sort"), q=request.query.get("q"),
        status=request.query.get("status"), checksum=request.query.get("checksum"),
        grid=grid_query(request.query, request.query.get("sort")))
    return json_response(page(items, total, limit, offset))


async def add_project_image(request: web.Request) -> web.Response:
    project_id = path_id(request, "project_id")
    await require_project_role(request, project_id, "contributor")
    body = await read_json(request, "ProjectImageAdd")
    # Linking shares the image with everyone in the target project: it needs the
    # right to share it out of a project that already holds it, not just a view.
    principal = await require_image_link(request, body["image_id"])
    pool = request.app[DB_POOL]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO project_images (project_id, image_id) VALUES ($1, $2)"
                           " ON CONFLICT DO NOTHING", project_id, body["image_id"])
        # An image without a home (imported outside any project, or its home was
        # deleted) gets one when its uploader or an admin files it somewhere.
        await conn.execute(
            """UPDATE images SET home_project_id = $1
               WHERE id = $2 AND home_project_id IS NULL AND ($3 OR owner_id = $4)""",
            project_id, body["image_id"], principal.is_admin, principal.user_id)
    request.app[CATALOG].forget_image(body["image_id"])
    return json_response(await images.get_image(pool, body["image_id"]), status=201)


async def remove_project_image(request: web.Request) -> web.Response:
    project_id = path_id(request, "project_id")
    image_id = path_id(request, "image_id")
    await require_project_role(request, project_id, "contributor")
    status = await request.app[DB_POOL].execute(
        "DELETE FROM project_images WHERE project_id = $1 AND image_id = $2",
        project_id, image_id)
    if status.endswith(" 0"):
        raise errors.NotFound("image not in this project")
    request.app[CATALOG].forget_image(image_id)
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/projects", list_projects),
        web.post("/api/projects", create_project),
        web.get("/api/projects/{project_id}", get_project),
        web.patch("/api/projects/{project_id}", update_project),
        web.delete("/api/projects/{project_id}", delete_project),
        web.get("/api/projects/{project_id}/members", list_members),
        web.post("/api/projects/{project_id}/members", add_member_by_name),
        web.put("/api/projects/{project_id}/members/{user_id}", put_member),
        web.delete("/api/projects/{project_id}/members/{user_id}", delete_member),
        web.get("/api/projects/{project_id}/images", list_project_images),
        web.post("/api/projects/{project_id}/images", add_project_image),
        web.delete("/api/projects/{project_id}/images/{image_id}", remove_project_image),
    ]
