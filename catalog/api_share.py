"""Handlers for read-only share links of an image or a project."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
from aiohttp import web

from microtome.catalog import images, security
from microtome.catalog.access import (
    forget_all,
    get_principal,
    require_image_role,
    require_project_role,
    require_user,
)
from microtome.catalog.db import DB_POOL
from microtome.catalog.jsonio import int_param, page, page_params, path_id, read_json
from microtome.catalog.state import CATALOG
from microtome.core.http import json_response
from microtome.pyramid import errors

SHARE_COLUMNS = "id, image_id, project_id, created_by, created_at, expires_at, revoked_at"
LINK_SELECT = """SELECT s.id, s.image_id, s.project_id, s.created_by, s.created_at, s.expires_at,
    s.revoked_at, s.last_used_at, u.username AS created_by_name
  FROM share_links s LEFT JOIN users u ON u.id = s.created_by"""
#: Links the caller ($1 user id, $2 is admin) may see and revoke: their own, every
#: link of a project they manage, and every link of an image whose home project
#: they manage or which they uploaded.
MANAGEABLE = """(s.created_by = $1 OR $2
  OR s.project_id IN (SELECT project_id FROM project_members WHERE user_id = $1
                       AND role = 'manager')
  OR s.image_id IN (SELECT i.id FROM images i WHERE i.owner_id = $1
                     OR i.home_project_id IN (SELECT project_id FROM project_members
                                              WHERE user_id = $1 AND role = 'manager')))"""


def _link(row: asyncpg.Record, token: str | None = None) -> dict[str, Any]:
    out = {k: row[k] for k in ("id", "image_id", "project_id", "created_by", "created_at",
                               "expires_at", "revoked_at")}
    if "created_by_name" in row:
        out["created_by_name"] = row["created_by_name"]
    if "last_used_at" in row:
        out["last_used_at"] = row["last_used_at"]
    if token is not None:
        out["token"] = token
        out["url"] = (f"/share/{token}" if row["image_id"] is None
                      else f"/viewer/{row['image_id']}?share={token}")
    return out


async def create_link(request: web.Request) -> web.Response:
    body = await read_json(request, "ShareLinkCreate")
    # Sharing is for people who can manage the thing being shared.
    if "image_id" in body:
        principal = await require_image_role(request, body["image_id"], "contributor")
    else:
        principal = await require_project_role(request, body["project_id"], "manager")
    limit = request.app[CATALOG].settings.share_link_max_seconds
    if body["expires_in"] > limit:
        raise errors.InvalidRequest("expires_in exceeds the maximum lifetime of a share link",
                                    {"max": limit})
    expires = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(
        seconds=body["expires_in"])
    row = await request.app[DB_POOL].fetchrow(
        f"""INSERT INTO share_links (image_id, project_id, created_by, expires_at)
            VALUES ($1, $2, $3, $4) RETURNING {SHARE_COLUMNS}""",
        body.get("image_id"), body.get("project_id"), principal.user_id, expires)
    assert row is not None
    token = security.share_token(request.app[CATALOG].settings.secret_key, row["id"],
                                 int(expires.timestamp()))
    return json_response(_link(row, token), status=201)


async def list_links(request: web.Request) -> web.Response:
    """The links the caller may manage; ``?project_id=`` / ``?image_id=`` narrow it."""
    principal = await require_user(request)
    limit, offset = page_params(request)
    args: list[Any] = [principal.user_id, principal.is_admin]
    where = [MANAGEABLE]
    for name in ("project_id", "image_id"):
        value = int_param(request, name, 0, 0, 2**63 - 1)
        if value:
            args.append(value)
            where.append(f"s.{name} = ${len(args)}")
    if request.query.get("active") in ("1", "true"):
        where.append("s.revoked_at IS NULL AND s.expires_at > now()")
    cond = " AND ".join(where)
    pool = request.app[DB_POOL]
    rows = await pool.fetch(f"{LINK_SELECT} WHERE {cond} ORDER BY s.id DESC"
                            f" LIMIT {limit} OFFSET {offset}", *args)
    total = await pool.fetchval(f"SELECT count(*) FROM share_links s WHERE {cond}", *args)
    return json_response(page([_link(r) for r in rows], total, limit, offset))


async def revoke_link(request: web.Request) -> web.Response:
    """The creator, an admin, or a manager of the link's project / image's home project."""
    share_id = path_id(request, "share_id")
    principal = await require_user(request)
    status = await request.app[DB_POOL].execute(
        f"""UPDATE share_links s SET revoked_at = COALESCE(revoked_at, now())
            WHERE s.id = $3 AND {MANAGEABLE}""",
        principal.user_id, principal.is_admin, share_id)
    if status.endswith(" 0"):
        raise errors.NotFound("share link not found")
    forget_all(request.app)
    return web.Response(status=204)


async def share_info(request: web.Request) -> web.Response:
    """What a share token grants: the anonymous viewer starts here."""
    principal = await get_principal(request)
    if principal is None or principal.share is None:
        raise errors.Unauthenticated("share token required")
    s = principal.share
    items, _ = await images.list_images(request.app[DB_POOL], principal, project_id=None,
                                        limit=500, offset=0, sort="name", q=None, status=None)
    return json_response({"image_id": s.image_id, "project_id": s.project_id, "images": items})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/share-links", list_links),
        web.post("/api/share-links", create_link),
        web.delete("/api/share-links/{share_id}", revoke_link),
        web.get("/api/share", share_info),
    ]
