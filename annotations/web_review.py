"""HTTP routes of review, the annotation table, layers, bulk actions and table exports.

Contract in annotations/openapi_review.py.  Handlers: parse → check access →
call the domain (review, table, export) → respond.
"""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp import web

from microtome.catalog import access
from microtome.catalog.db import DB_POOL
from microtome.catalog.jsonio import load_json, path_id
from microtome.core.http import json_response
from microtome.pyramid.errors import Conflict, Forbidden, InvalidRequest, NotFound

from . import export, params, permissions, review, store, table, terms
from .query import Filters
from .web import EXECUTOR, GEOJSON, MAX_BATCH, _features_json, _ids, _obj

_BODY = 1024**2


def _pool(request: web.Request) -> asyncpg.Pool:
    return request.app[DB_POOL]


def _filters(request: web.Request) -> Filters:
    q = request.query
    f = params.filters(q)
    if params.flag(q, "reviewed"):
        # The reviewed layer: accepted annotations only.
        f = Filters(**{**f.__dict__, "statuses": ("accepted",)})
    return f


# -- review -------------------------------------------------------------------------

async def review_annotation(request: web.Request) -> web.Response:
    """Accept (optionally with new terms) or reject (with a reason) one annotation."""
    pool = _pool(request)
    row = await store.get(pool, path_id(request, "annotation_id"))
    principal = await access.require_image_access(request, row["image_id"])
    if principal.user_id is None:
        raise Forbidden("a share link only allows viewing")
    role = await access.project_role(request, row["project_id"]) if row["project_id"] else None
    review.check_reviewer(principal, role, row["project_id"])
    body = _obj(await load_json(request, _BODY))
    action, reason = review.parse_action(body)
    version = review.parse_version(body.get("updated_at"))
    tids = None
    if "terms" in body:
        if action != "accept":
            raise InvalidRequest("terms can only change with accept", {"field": "terms"})
        tids = await terms.check_term_ids(pool, row["project_id"], _ids(body["terms"], "terms"))
    try:
        async with pool.acquire() as conn, conn.transaction():
            await review.apply(conn, [row["id"]], reviewer_id=principal.user_id, action=action,
                               reason=reason, term_ids=tids, version=version)
    except review.StaleAnnotation as e:
        [current] = await _features_json(request, [e.row])
        raise Conflict(e.message, {"current": current}) from None
    [feature] = await _features_json(request, [await store.get(pool, row["id"])])
    return json_response(feature)


async def review_history(request: web.Request) -> web.Response:
    aid = path_id(request, "annotation_id")
    row = await store.get(_pool(request), aid)
    await access.require_image_access(request, row["image_id"])
    return json_response({"items": await review.history(_pool(request), aid)})


async def image_review(request: web.Request) -> web.Response:
    iid = path_id(request, "image_id")
    await access.require_image_access(request, iid)
    pid = params.integer(request.query, "project", None, 1, 2**63 - 1)
    return json_response(await review.image_summary(_pool(request), iid, pid))


async def project_review(request: web.Request) -> web.Response:
    pid = path_id(request, "project_id")
    await access.require_project_role(request, pid, "viewer")
    return json_response(await review.project_summary(_pool(request), pid))


async def set_project_review(request: web.Request) -> web.Response:
    pid = path_id(request, "project_id")
    await access.require_project_role(request, pid, "manager")
    body = _obj(await load_json(request, _BODY))
    value = body.get("requires_review")
    if not isinstance(value, bool) or set(body) != {"requires_review"}:
        raise InvalidRequest("the body must be {\"requires_review\": true|false}",
                             {"field": "requires_review"})
    await review.set_requires_review(_pool(request), pid, value)
    return json_response(await review.project_summary(_pool(request), pid))


# -- bulk actions ---------------------------------------------------------------------

BULK_ACTIONS = ("accept", "reject", "set_terms", "delete")


async def bulk(request: web.Request) -> web.Response:
    """One action on many annotations (of the table's selection), all or nothing."""
    principal = await access.require_user(request)
    body = _obj(await load_json(request, _BODY))
    action = body.get("action")
    if action not in BULK_ACTIONS:
        raise InvalidRequest(f"action must be one of {list(BULK_ACTIONS)}", {"field": "action"})
    ids = sorted(set(_ids(body.get("ids"), "ids")))
    if not 1 <= len(ids) <= MAX_BATCH:
        raise InvalidRequest(f"ids must hold 1 to {MAX_BATCH} ids", {"field": "ids"})
    pool = _pool(request)
    rows = await pool.fetch("SELECT id, image_id, project_id, user_id FROM annotations"
                            " WHERE id = ANY($1::bigint[])", ids)
    if len(rows) != len(ids):
        raise NotFound("some annotations do not exist",
                       {"missing": sorted(set(ids) - {r["id"] for r in rows})})
    for iid in {r["image_id"] for r in rows}:
        await access.require_image_access(request, iid)
    roles = await review.roles_by_project(request, [r["project_id"] for r in rows])
    async with pool.acquire() as conn, conn.transaction():
        if action in review.ACTIONS:
            for r in rows:
                review.check_reviewer(principal, roles[r["project_id"]], r["project_id"])
            _, reason = review.parse_action({"action": action, "reason": body.get("reason")})
            done = await review.apply(conn, ids, reviewer_id=principal.user_id, action=action,
                                      reason=reason, term_ids=None)
            return json_response({"action": action, "done": done})
        for r in rows:
            await permissions.check_edit(request, r)
        if action == "delete":
            return json_response({"action": action, "done": await store.delete_many(conn, ids)})
        want = _ids(body.get("terms"), "terms")
        for pid in {r["project_id"] for r in rows}:
            await terms.check_term_ids(conn, pid, want)
        reviewers = {p for p, role in roles.items() if review.may_review(principal, role)}
        # A term changed by its author needs a new review; one changed by a reviewer not.
        status = await conn.execute(
            """UPDATE annotations SET term_ids = $2, updated_at = now(),
                   review_status = CASE WHEN project_id = ANY($3::bigint[]) THEN review_status END,
                   reviewed_by = CASE WHEN project_id = ANY($3::bigint[]) THEN reviewed_by END,
                   reviewed_at = CASE WHEN project_id = ANY($3::bigint[]) THEN reviewed_at END
               WHERE id = ANY($1::bigint[])""",
            ids, sorted(set(want)), [p for p in reviewers if p is not None])
        return json_response({"action": action, "done": int(status.split()[-1])})


# -- table, layers, statistics, exports ------------------------------------------------

def _image_scope(request: web.Request) -> table.Scope:
    pid = params.integer(request.query, "project", None, 1, 2**63 - 1)
    return table.Scope(image_id=path_id(request, "image_id"), project_id=pid)


async def _project_scope(request: web.Request) -> table.Scope:
    pid = path_id(request, "project_id")
    await access.require_project_role(request, pid, "viewer")
    iid = params.integer(request.query, "image", None, 1, 2**63 - 1)
    return table.Scope(image_id=iid, project_id=pid)


async def image_table(request: web.Request) -> web.Response:
    scope = _image_scope(request)
    assert scope.image_id is not None
    await access.require_image_access(request, scope.image_id)
    f, pg = _filters(request), table.parse_page(request.query)
    return json_response(await table.page(_pool(request), scope, f, pg,
                                          count=params.flag(request.query, "count", True)))


async def project_table(request: web.Request) -> web.Response:
    scope = await _project_scope(request)
    f, pg = _filters(request), table.parse_page(request.query)
    return json_response(await table.page(_pool(request), scope, f, pg,
                                          count=params.flag(request.query, "count", True)))


async def image_layers(request: web.Request) -> web.Response:
    iid = path_id(request, "image_id")
    await access.require_image_access(request, iid)
    pid = params.integer(request.query, "project", None, 1, 2**63 - 1)
    return json_response({"items": await table.layers(_pool(request), iid, pid)})


async def project_stats(request: web.Request) -> web.Response:
    scope = await _project_scope(request)
    assert scope.project_id is not None
    rows = await table.project_stats(_pool(request), scope, _filters(request))
    return json_response({"project_id": scope.project_id, "items": rows})


async def _export(request: web.Request, scope: table.Scope) -> web.StreamResponse:
    f = _filters(request)
    fmt = request.query.get("format", "csv")
    if fmt not in export.FORMATS:
        raise InvalidRequest(f"format must be one of {list(export.FORMATS)}", {"field": "format"})
    stem = (f"image-{scope.image_id}" if scope.project_id is None
            else f"project-{scope.project_id}") + "-annotations"
    ctype = {"csv": "text/csv; charset=utf-8", "geojson": GEOJSON,
             "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}[fmt]
    headers = {"Content-Type": ctype,
               "Content-Disposition": f'attachment; filename="{stem}.{fmt}"'}
    pool = _pool(request)
    async with pool.acquire() as conn:
        if fmt == "xlsx":
            fh = await export.xlsx_file(conn, scope, f, request.app[EXECUTOR])
            try:
                data = await asyncio.get_running_loop().run_in_executor(
                    request.app[EXECUTOR], fh.read)
            finally:
                fh.close()
            return web.Response(body=data, headers=headers)
        resp = web.StreamResponse(headers=headers)
        if fmt == "geojson":
            resp.enable_compression()
        await resp.prepare(request)
        if fmt == "csv":
            await export.csv_stream(conn, scope, f, resp.write)
        else:
            info = await _term_info(conn, scope)
            async for chunk in export.geojson_chunks(conn, scope, f, info,
                                                     request.app[EXECUTOR]):
                await resp.write(chunk)
        await resp.write_eof()
        return resp


async def _term_info(conn: asyncpg.Connection, scope: table.Scope
                     ) -> dict[int, tuple[str, str]]:
    if scope.project_id is not None:
        rows = await conn.fetch("SELECT id, name, color FROM terms WHERE project_id = $1",
                                scope.project_id)
    else:
        rows = await conn.fetch(
            """SELECT t.id, t.name, t.color FROM terms t JOIN project_images pi
               ON pi.project_id = t.project_id WHERE pi.image_id = $1""", scope.image_id)
    return {r["id"]: (r["name"], r["color"]) for r in rows}


async def image_export(request: web.Request) -> web.StreamResponse:
    scope = _image_scope(request)
    assert scope.image_id is not None
    await access.require_image_access(request, scope.image_id)
    return await _export(request, scope)


async def project_export(request: web.Request) -> web.StreamResponse:
    return await _export(request, await _project_scope(request))


def routes() -> list[web.AbstractRouteDef]:
    img = "/api/images/{image_id}"
    prj = "/api/projects/{project_id}"
    one = "/api/annotations/{annotation_id}"
    return [
        web.post(one + "/review", review_annotation), web.get(one + "/reviews", review_history),
        web.get(img + "/review", image_review),
        web.get(prj + "/review", project_review), web.put(prj + "/review", set_project_review),
        web.post("/api/annotations-bulk", bulk),
        web.get(img + "/annotations/table", image_table),
        web.get(img + "/annotations/table/export", image_export),
        web.get(img + "/annotations/layers", image_layers),
        web.get(prj + "/annotations/table", project_table),
        web.get(prj + "/annotations/table/export", project_export),
        web.get(prj + "/annotations/stats", project_stats),
    ]

