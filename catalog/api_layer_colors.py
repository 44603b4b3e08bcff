"""The viewer's layer colours, saved per user per project (so a reload keeps them).

``GET /api/projects/{project_id}/layer-colors`` → ``{"colors": {"user:3": "#aabbcc"}}``;
``PATCH`` with ``{"user:3": "#aabbcc", "analysis:7": null}`` sets or forgets
colours and answers the whole set.  Any reader of the project (a real user,
not a share link) keeps their own colours; nobody sees another's.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
from aiohttp import web

from microtome.catalog.access import require_project_role
from microtome.catalog.db import DB_POOL
from microtome.catalog.jsonio import load_json, path_id
from microtome.core.http import json_response
from microtome.pyramid import errors

#: As the viewer names layers (annotations/table.py `layers`).
LAYER_KEY = re.compile(r"(user|analysis):[0-9]{1,18}")
COLOR = re.compile(r"#[0-9a-fA-F]{6}")
MAX_CHANGES = 200
MAX_LAYERS = 1000


def check_changes(body: Any) -> dict[str, str | None]:
    """{layer key: '#rrggbb' (lower case) or None}; precise errors naming the bad key."""
    if not isinstance(body, dict) or not 1 <= len(body) <= MAX_CHANGES:
        raise errors.InvalidRequest(
            f"the body must be an object of 1 to {MAX_CHANGES} layer keys "
            "('user:ID' or 'analysis:ID') to '#rrggbb' colours or null")
    out: dict[str, str | None] = {}
    for key, value in body.items():
        if not LAYER_KEY.fullmatch(key):
            raise errors.InvalidRequest("layer keys are 'user:ID' or 'analysis:ID'",
                                        {"field": key[:40]})
        if value is not None and not (isinstance(value, str) and COLOR.fullmatch(value)):
            raise errors.InvalidRequest("a colour is '#rrggbb' (or null to forget it)",
                                        {"field": key})
        out[key] = value.lower() if value is not None else None
    return out


async def _read(conn: asyncpg.Pool | asyncpg.Connection, user_id: int, project_id: int
                ) -> dict[str, Any]:
    rows = await conn.fetch("SELECT layer_key, color FROM layer_colors WHERE user_id = $1"
                            " AND project_id = $2 ORDER BY layer_key", user_id, project_id)
    return {"project_id": project_id, "colors": {r["layer_key"]: r["color"] for r in rows}}


async def _who(request: web.Request) -> tuple[int, int]:
    project_id = path_id(request, "project_id")
    principal = await require_project_role(request, project_id, "viewer")
    if principal.user_id is None:
        raise errors.Forbidden("saved colours belong to a user: log in")
    return principal.user_id, project_id


async def get_colors(request: web.Request) -> web.Response:
    user_id, project_id = await _who(request)
    return json_response(await _read(request.app[DB_POOL], user_id, project_id))


async def patch_colors(request: web.Request) -> web.Response:
    user_id, project_id = await _who(request)
    changes = check_changes(await load_json(request))
    keep = {k: v for k, v in changes.items() if v is not None}
    async with request.app[DB_POOL].acquire() as conn, conn.transaction():
        await conn.execute(
            "DELETE FROM layer_colors WHERE user_id = $1 AND project_id = $2"
            " AND layer_key = ANY($3::text[])",
            user_id, project_id, [k for k, v in changes.items() if v is None])
        await conn.execute(
            """INSERT INTO layer_colors (user_id, project_id, layer_key, color)
               SELECT $1, $2, k, c FROM unnest($3::text[], $4::text[]) AS t(k, c)
               ON CONFLICT (user_id, project_id, layer_key)
               DO UPDATE SET color = EXCLUDED.color, updated_at = now()""",
            user_id, project_id, list(keep), list(keep.values()))
        n = await conn.fetchval("SELECT count(*) FROM layer_colors WHERE user_id = $1"
                                " AND project_id = $2", user_id, project_id)
        if n > MAX_LAYERS:
            raise errors.InvalidRequest(f"at most {MAX_LAYERS} saved colours per project")
        return json_response(await _read(conn, user_id, project_id))


def routes() -> list[web.RouteDef]:
    url = "/api/projects/{project_id}/layer-colors"
    return [web.get(url, get_colors), web.patch(url, patch_colors)]
