"""Handlers for read-only share links of an image or a project."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
from aiohttp import web

from catalog import images, security
from catalog.access import (
    forget_all,
    get_principal,
    require_image_role,
    require_project_role,
    require_user,
)
from catalog.db import DB_POOL
from catalog.jsonio import page, page_params, path_id, read_json
from catalog.state import CATALOG
from core.http import json_response
from pyramid import errors

SHARE_COLUMNS = "id, image_id, project_id, created_at, expires_at, revoked_at"


def _link(row: asyncpg.Record, token: str | None = None) -> dict[str, Any]:
    out = {k: row[k] for k in ("id", "image_id", "project_id", "created_at", "expires_at",
                               "revoked_at")}
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
    principal = await require_user(request)
    limit, offset = page_params(request)
    pool = request.app[DB_POOL]
    rows = await pool.fetch(f"SELECT {SHARE_COLUMNS} FROM share_links WHERE created_by = $1"
                            f" ORDER BY id DESC LIMIT {limit} OFFSET {offset}",
                            principal.user_id)
    total = await pool.fetchval("SELECT count(*) FROM share_links WHERE created_by = $1",
                                principal.user_id)
    return json_response(page([_link(r) for r in rows], total, limit, offset))


async def revoke_link(request: web.Request) -> web.Response:
    share_id = path_id(request, "share_id")
    principal = await require_user(request)
    status = await request.app[DB_POOL].execute(
        """UPDATE share_links SET revoked_at = COALESCE(revoked_at, now())
           WHERE id = $1 AND (created_by = $2 OR $3)""",
        share_id, principal.user_id, principal.is_admin)
    if status.endswith(" 0"):
        raise errors.NotFound("share link not found")
    forget_all(request.app)
    request.app[CATALOG].forget_access()
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
