"""Analyses seen from a project: every run on its images (the Analyses tab), and
which apps its members may run (managers switch them off and on).

An app disabled in a project cannot be started on an image that only that
project holds; an image shared with a project that enables the app may still
run it there (the switch belongs to the project, the image to several).
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from aiohttp import web

from microtome.catalog.access import require_project_role
from microtome.catalog.db import DB_POOL
from microtome.catalog.jsonio import MAX_BODY, page, page_params, path_id
from microtome.core.http import json_response
from microtome.pyramid import errors

_LIST = """SELECT a.id, a.image_id, a.user_id, a.app, a.version, a.params, a.region,
                  a.status, a.progress, a.error, a.attempts, a.result_count,
                  a.created_at, a.started_at, a.finished_at,
                  i.name AS image_name, u.username, a.executor
           FROM analyses a
           JOIN project_images pi ON pi.image_id = a.image_id AND pi.project_id = $1
           JOIN images i ON i.id = a.image_id
           LEFT JOIN users u ON u.id = a.user_id"""


def jsonb_value(v: Any) -> Any:
    """A jsonb column as Python (the pool's codec decodes it); analyses written
    by the first version held a JSON *string* of the object: decode that too."""
    return orjson.loads(v) if isinstance(v, str) else v


def _row_json(r: asyncpg.Record) -> dict[str, Any]:
    out = {k: r[k] for k in ("id", "image_id", "image_name", "user_id", "username",
                             "executor", "app", "version", "status", "error", "attempts",
                             "result_count")}
    out["params"] = jsonb_value(r["params"])
    out["region"] = jsonb_value(r["region"])
    out["progress"] = float(r["progress"])
    for k in ("created_at", "started_at", "finished_at"):
        out[k] = r[k].isoformat() if r[k] is not None else None
    # Seconds from start to end (or to now while running): what the tab shows.
    start, end = r["started_at"], r["finished_at"]
    out["duration_s"] = (end - start).total_seconds() if start and end else None
    return out


async def project_analyses(request: web.Request) -> web.Response:
    project_id = path_id(request, "project_id")
    await require_project_role(request, project_id, "viewer")
    limit, offset = page_params(request)
    pool = request.app[DB_POOL]
    rows = await pool.fetch(f"{_LIST} ORDER BY a.id DESC LIMIT {limit} OFFSET {offset}",
                            project_id)
    total = await pool.fetchval(
        """SELECT count(*) FROM analyses a JOIN project_images pi
           ON pi.image_id = a.image_id AND pi.project_id = $1""", project_id)
    return json_response(page([_row_json(r) for r in rows], total, limit, offset))


async def project_apps(request: web.Request) -> web.Response:
    from microtome.catalog.api_analyses import APPS

    project_id = path_id(request, "project_id")
    await require_project_role(request, project_id, "viewer")
    disabled = await disabled_apps(request.app[DB_POOL], project_id)
    apps = request.app[APPS]
    return json_response({"items": [{**apps[n].descriptor.to_json(),
                                     "enabled": n not in disabled} for n in sorted(apps)]})


async def set_project_app(request: web.Request) -> web.Response:
    from microtome.catalog.api_analyses import APPS

    project_id = path_id(request, "project_id")
    await require_project_role(request, project_id, "manager")
    name = request.match_info["app"]
    if name not in request.app[APPS]:
        raise errors.NotFound(f"app not installed: {name[:100]}")
    raw = await request.content.read(MAX_BODY + 1)
    try:
        body = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError:
        raise errors.InvalidRequest("malformed JSON body") from None
    if not isinstance(body, dict) or not isinstance(body.get("enabled"), bool) or len(body) != 1:
        raise errors.InvalidRequest('body must be {"enabled": true|false}',
                                    {"fields": {"enabled": "a boolean is required"}})
    pool = request.app[DB_POOL]
    if body["enabled"]:
        await pool.execute("DELETE FROM project_apps_disabled WHERE project_id = $1 AND app = $2",
                           project_id, name)
    else:
        await pool.execute("INSERT INTO project_apps_disabled (project_id, app) VALUES ($1, $2)"
                           " ON CONFLICT DO NOTHING", project_id, name)
    apps = request.app[APPS]
    return json_response({**apps[name].descriptor.to_json(), "enabled": body["enabled"]})


async def disabled_apps(pool: asyncpg.Pool, project_id: int) -> set[str]:
    rows = await pool.fetch("SELECT app FROM project_apps_disabled WHERE project_id = $1",
                            project_id)
    return {r["app"] for r in rows}


async def app_disabled_for_image(conn: asyncpg.Pool | asyncpg.Connection, image_id: int,
                                 app: str) -> bool:
    """True when every project holding the image has switched the app off."""
    return bool(await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM project_images WHERE image_id = $1)
              AND NOT EXISTS (SELECT 1 FROM project_images pi
                              WHERE pi.image_id = $1 AND NOT EXISTS (
                                  SELECT 1 FROM project_apps_disabled d
                                  WHERE d.project_id = pi.project_id AND d.app = $2))""",
        image_id, app))


def routes() -> list[web.RouteDef]:
    return [web.get("/api/projects/{project_id}/analyses", project_analyses),
            web.get("/api/projects/{project_id}/apps", project_apps),
            web.put("/api/projects/{project_id}/apps/{app}", set_project_app)]
