"""Handlers for analysis apps: /api/apps, /api/images/{id}/analyses, /api/analyses/{id}.

Creating an analysis records it as 'queued'; workers (``microtome worker``)
claim it. Deleting one deletes its result annotations through the foreign
key (analysis migrations), in one statement.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from aiohttp import web
from jsonschema import Draft202012Validator

from microtome.analysis import (
    AnalysisError,
    InvalidParams,
    available_apps,
    get_app,
    validate_params,
)
from microtome.catalog import api_analysis_models
from microtome.catalog.access import (
    get_principal,
    image_role,
    project_role,
    require_image_role,
    require_user,
    role_at_least,
)
from microtome.catalog.analysis_wakeup import WAKEUP, QueueWakeup, wakeup_ctx
from microtome.catalog.api_analysis_projects import app_disabled_for_image, jsonb_value
from microtome.catalog.db import DB_POOL
from microtome.catalog.jsonio import MAX_BODY, page, page_params, path_id
from microtome.catalog.openapi_analyses import SCHEMAS
from microtome.core.http import json_response
from microtome.pyramid import errors

#: Installed apps, discovered once at start-up (entry points read files: not on the loop).
APPS = web.AppKey("analysis_apps", dict)

COLUMNS = ("id, image_id, user_id, project_id, executor_id, executor, app, version, params, "
           "region, status, progress, log, error, traceback, attempts, result_count, "
           "created_at, started_at, finished_at")
FINISHED = ("done", "failed", "cancelled")


def producer(analysis_id: int, attempt: int) -> str:
    """The tag a worker's import carries: one per attempt, so that a worker
    presumed dead cannot add its results to those of the attempt that replaced it."""
    return f"analysis:{analysis_id}/{attempt}"


async def drop_results(conn: asyncpg.Connection, ids: list[int]) -> None:
    """Remove the not-yet-linked results of these analyses (every attempt)."""
    if ids:
        await conn.execute(
            "DELETE FROM annotations WHERE producer LIKE 'analysis:%'"
            " AND split_part(producer, '/', 1) = ANY($1::text[])",
            [f"analysis:{i}" for i in ids])


def analysis_json(row: asyncpg.Record, manager: bool = False) -> dict[str, Any]:
    """The public form; a failed run's traceback only for the image's managers."""
    out = {k: row[k] for k in ("id", "image_id", "user_id", "project_id", "executor_id",
                               "executor", "app", "version", "status", "log", "error",
                               "attempts", "result_count")}
    out["traceback"] = row["traceback"] if manager else None
    out["params"] = jsonb_value(row["params"])
    out["region"] = jsonb_value(row["region"])
    out["progress"] = float(row["progress"])
    for k in ("created_at", "started_at", "finished_at"):
        out[k] = row[k].isoformat() if row[k] is not None else None
    return out


async def list_apps(request: web.Request) -> web.Response:
    await require_user(request)
    apps = request.app[APPS]
    return json_response({"items": [apps[n].descriptor.to_json() for n in sorted(apps)]})


def _checked(apps: dict[str, Any], body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(app, params with defaults) or 400 naming the app or every wrong parameter."""
    try:
        app = get_app(body["app"], body.get("version"), apps)
        return app, validate_params(app.descriptor, body.get("params") or {})
    except InvalidParams as e:
        raise errors.InvalidRequest(e.message, {"fields": e.errors}) from None
    except AnalysisError as e:
        raise errors.InvalidRequest(e.message, {"fields": {"app": e.message}}) from None


async def create_analysis(request: web.Request) -> web.Response:
    image_id = path_id(request, "image_id")
    principal = await require_image_role(request, image_id, "contributor")
    body = await read_body(request)
    app, params = _checked(request.app[APPS], body)
    pool = request.app[DB_POOL]
    image = await pool.fetchrow("SELECT status, width, height FROM images WHERE id = $1",
                                image_id)
    if image is None:
        raise errors.NotFound("image not found")
    if image["status"] != "ready":
        raise errors.Conflict(f"the image is not ready ({image['status']})")
    region = body.get("region")
    if region is not None and (region["x"] + region["w"] > image["width"]
                               or region["y"] + region["h"] > image["height"]):
        raise errors.InvalidRequest(
            f"region outside the image ({image['width']}x{image['height']})",
            {"fields": {"region": "outside the image"}})
    d = app.descriptor
    if await app_disabled_for_image(pool, image_id, d.name):
        raise errors.Forbidden(f"the app {d.name} is disabled in this image's projects")
    project_id = await _results_project(request, image_id, body.get("project"))
    await api_analysis_models.check_model_params(request, d, params, image_id)
    row = await pool.fetchrow(
        f"""INSERT INTO analyses (image_id, user_id, project_id, app, version, params, region)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb) RETURNING {COLUMNS}""",
        image_id, principal.user_id, project_id, d.name, d.version, params, region)
    return json_response(analysis_json(row), status=201)


async def _results_project(request: web.Request, image_id: int, wanted: int | None
                           ) -> int | None:
    """The project the results are written in, for the person asking: the one named
    (it must hold the image and they must be a contributor there), else the image's
    home project or the first other one holding it where they are; None outside projects.
    The worker imports into it, so terms resolve in the asker's project, not the
    first one the worker's account may write to."""
    pool = request.app[DB_POOL]
    if wanted is not None:
        if not await pool.fetchval("SELECT 1 FROM project_images WHERE project_id = $1"
                                   " AND image_id = $2", wanted, image_id):
            raise errors.InvalidRequest("the image is not in this project",
                                        {"fields": {"project": "does not hold the image"}})
        if not role_at_least(await project_role(request, wanted), "contributor"):
            raise errors.Forbidden("running an analysis needs the contributor role "
                                   "in that project")
        return wanted
    for (pid,) in await pool.fetch(
            """SELECT pi.project_id FROM project_images pi JOIN images i ON i.id = pi.image_id
               WHERE pi.image_id = $1
               ORDER BY pi.project_id IS DISTINCT FROM i.home_project_id, pi.project_id""",
            image_id):
        if role_at_least(await project_role(request, pid), "contributor"):
            return int(pid)
    return None


_BODY = Draft202012Validator(SCHEMAS["AnalysisCreate"])


async def read_body(request: web.Request) -> dict[str, Any]:
    """The JSON body checked against AnalysisCreate; 400 names the wrong field."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise errors.TooLarge("request body too large", {"limit": MAX_BODY})
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise errors.TooLarge("request body too large", {"limit": MAX_BODY})
    if b"\\u0000" in raw:
        # PostgreSQL jsonb cannot hold NUL; refuse it here rather than fail in SQL.
        raise errors.InvalidRequest("strings must not contain NUL characters")
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        raise errors.InvalidRequest("malformed JSON body") from None
    err = next(iter(_BODY.iter_errors(body)), None)
    if err is not None:
        where = "/".join(str(p) for p in err.absolute_path) or "body"
        msg = err.message[:200]
        raise errors.InvalidRequest(f"invalid request body: {where}: {msg}",
                                    {"fields": {where: msg}})
    return body  # type: ignore[no-any-return]


async def _is_manager(request: web.Request, image_id: int) -> bool:
    principal = await get_principal(request)
    _, role = await image_role(request.app[DB_POOL], principal, image_id)
    return role_at_least(role, "manager")


async def list_analyses(request: web.Request) -> web.Response:
    image_id = path_id(request, "image_id")
    await require_image_role(request, image_id, "viewer")
    manager = await _is_manager(request, image_id)
    limit, offset = page_params(request)
    pool = request.app[DB_POOL]
    rows = await pool.fetch(f"SELECT {COLUMNS} FROM analyses WHERE image_id = $1"
                            f" ORDER BY id DESC LIMIT {limit} OFFSET {offset}", image_id)
    total = await pool.fetchval("SELECT count(*) FROM analyses WHERE image_id = $1", image_id)
    return json_response(page([analysis_json(r, manager) for r in rows], total, limit, offset))


async def visible_analysis(request: web.Request, minimum: str) -> int:
    """The analysis id, after checking the caller's role on its image (404 if hidden)."""
    analysis_id = path_id(request, "analysis_id")
    image_id = await request.app[DB_POOL].fetchval(
        "SELECT image_id FROM analyses WHERE id = $1", analysis_id)
    if image_id is None:
        await require_user(request)
        raise errors.NotFound("analysis not found")
    try:
        await require_image_role(request, image_id, minimum)
    except errors.NotFound:
        raise errors.NotFound("analysis not found") from None
    return analysis_id


async def get_analysis(request: web.Request) -> web.Response:
    analysis_id = await visible_analysis(request, "viewer")
    row = await request.app[DB_POOL].fetchrow(
        f"SELECT {COLUMNS} FROM analyses WHERE id = $1", analysis_id)
    if row is None:
        raise errors.NotFound("analysis not found")
    return json_response(analysis_json(row, await _is_manager(request, row["image_id"])))


async def cancel_analysis(request: web.Request) -> web.Response:
    analysis_id = await visible_analysis(request, "contributor")
    pool = request.app[DB_POOL]
    # Only an unfinished analysis changes; its partial results go with the cancel.
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"""UPDATE analyses SET status = 'cancelled', finished_at = now()
                WHERE id = $1 AND status IN ('queued', 'running') RETURNING {COLUMNS}""",
            analysis_id)
        if row is None:
            status = await conn.fetchval("SELECT status FROM analyses WHERE id = $1",
                                         analysis_id)
            if status is None:
                raise errors.NotFound("analysis not found")
            raise errors.Conflict(f"the analysis already finished ({status})")
        await conn.execute("DELETE FROM annotations WHERE analysis_id = $1", analysis_id)
        await drop_results(conn, [analysis_id])
    return json_response(analysis_json(row))


async def delete_analysis(request: web.Request) -> web.Response:
    analysis_id = await visible_analysis(request, "contributor")
    async with request.app[DB_POOL].acquire() as conn, conn.transaction():
        # Linked results go by the foreign key; those of a run still in progress
        # (imported, not yet linked) by their producer tag.
        await drop_results(conn, [analysis_id])
        await conn.execute("DELETE FROM analyses WHERE id = $1", analysis_id)
    return web.Response(status=204)


def setup_analyses(app: web.Application) -> None:
    """Discover the installed apps (once) and add the analysis and worker routes."""
    from microtome.catalog import api_analysis_projects, api_analysis_results, api_analysis_worker

    app[APPS] = available_apps()
    app[WAKEUP] = QueueWakeup()
    app.cleanup_ctx.append(wakeup_ctx)
    app.router.add_routes(api_analysis_worker.routes())
    app.router.add_routes(api_analysis_projects.routes())
    app.router.add_routes(api_analysis_results.routes())
    app.router.add_routes(api_analysis_models.routes())
    app.router.add_routes(routes())


def routes() -> list[web.RouteDef]:
    return [web.get("/api/apps", list_apps),
            web.get("/api/images/{image_id}/analyses", list_analyses),
            web.post("/api/images/{image_id}/analyses", create_analysis),
            web.get("/api/analyses/{analysis_id}", get_analysis),
            web.delete("/api/analyses/{analysis_id}", delete_analysis),
            web.post("/api/analyses/{analysis_id}/cancel", cancel_analysis)]
