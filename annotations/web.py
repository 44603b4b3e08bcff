"""HTTP routes of the annotation API (see annotations/openapi.py for the contract).

Coordinates everywhere are level-0 image pixels, origin top-left, y down.
Handlers stay thin: parse → check access → call the domain → respond.  CPU
work (GeoJSON encoding, validation of big batches, crops) runs in the
annotation executor, never on the event loop.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial
from typing import Any

import asyncpg
import shapely
from aiohttp import web

from microtome.catalog import access, trash
from microtome.catalog.db import DB_POOL
from microtome.catalog.jsonio import load_json, path_id
from microtome.catalog.state import CATALOG
from microtome.core.http import body_chunks, json_response
from microtome.core.pixels import PIXELS
from microtome.pyramid.errors import InvalidRequest, TooLarge, Unprocessable

from . import crops, geojson_io, params, permissions, query, render, review, store, terms
from .geometry import ImageFrame, parse_geojson_geometry, prepare

EXECUTOR: web.AppKey[Executor] = web.AppKey("annotations_executor", Executor)
#: JSON bodies of single/batch writes (a batch of cells, or one big outline).
MAX_BODY = 64 * 1024**2
#: Terms, single edits, deletions by id.
SMALL_BODY = 1024**2
#: A search: filters and one drawn shape (10,000 vertices fit).  Open to anonymous
#: callers on public images, so kept small: parsing holds the GIL even in a thread.
SEARCH_BODY = 256 * 1024
#: Largest GeoJSON import (streamed to a temporary file first).
MAX_IMPORT = 8 * 1024**3
MAX_BATCH = 10_000
MAX_SEARCH_CANDIDATES = 100_000
GEOJSON = "application/geo+json"


def _pool(request: web.Request) -> asyncpg.Pool:
    return request.app[DB_POOL]


def _run(request: web.Request, fn: Any, *args: Any) -> asyncio.Future[Any]:
    return asyncio.get_running_loop().run_in_executor(request.app[EXECUTOR], fn, *args)


async def _json_body(request: web.Request, limit: int = SMALL_BODY) -> Any:
    # Per-route limits; big bodies are parsed in a worker thread (catalog.jsonio).
    return await load_json(request, limit)


def _obj(value: Any, what: str = "body") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{what} must be a JSON object")
    return value


def _ids(value: Any, what: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**63 for v in value):
        raise InvalidRequest(f"{what} must be a list of ids")
    return value


# -- terms -------------------------------------------------------------------------

async def list_terms(request: web.Request) -> web.Response:
    pid = path_id(request, "project_id")
    if not await permissions.share_reads_terms(request, pid):
        await access.require_project_role(request, pid, "viewer")
    return json_response([terms.term_json(r) for r in await terms.list_terms(_pool(request), pid)])


async def list_image_terms(request: web.Request) -> web.Response:
    """Terms of all the image's projects: what a viewer needs to colour its annotations."""
    iid = path_id(request, "image_id")
    await access.require_image_access(request, iid)
    rows = await terms.list_image_terms(_pool(request), iid)
    return json_response([terms.term_json(r) for r in rows])


async def create_term(request: web.Request) -> web.Response:
    pid = path_id(request, "project_id")
    await access.require_project_role(request, pid, "contributor")
    body = _obj(await _json_body(request))
    if not isinstance(body.get("name"), str):
        raise InvalidRequest("name is required")
    row = await terms.create_term(_pool(request), pid, body["name"],
                                  body.get("color", "#ff0000"), body.get("parent_id"))
    return json_response(terms.term_json(row), status=201)


async def update_term(request: web.Request) -> web.Response:
    pid, tid = path_id(request, "project_id"), path_id(request, "term_id")
    await access.require_project_role(request, pid, "manager")
    body = _obj(await _json_body(request))
    unknown = set(body) - {"name", "color", "parent_id"}
    if unknown:
        raise InvalidRequest(f"unknown field {sorted(unknown)[0]!r}")
    return json_response(terms.term_json(await terms.update_term(_pool(request), pid, tid, body)))


async def delete_term(request: web.Request) -> web.Response:
    pid, tid = path_id(request, "project_id"), path_id(request, "term_id")
    await access.require_project_role(request, pid, "manager")
    async with _pool(request).acquire() as conn:
        await terms.delete_term(conn, pid, tid, force=params.flag(request.query, "force"))
    return web.Response(status=204)


# -- single annotations --------------------------------------------------------------

def _prepare_item(item: Any, frame: ImageFrame, repair: bool, clip: bool,
                  index: int | None = None) -> Any:
    try:
        item = _obj(item, "annotation")
        return prepare(item.get("geometry"), frame, shape=item.get("shape"), repair=repair,
                       clip=clip)
    except Unprocessable as e:
        if index is None:
            raise
        raise Unprocessable(f"annotation {index}: {e.message}",
                            {"index": index, "reason": e.message, "detail": e.detail}) from None


def _data(item: dict[str, Any]) -> dict[str, Any]:
    data = item.get("data", {})
    if not isinstance(data, dict):
        raise InvalidRequest("data must be a JSON object")
    return data


def _producer(item: dict[str, Any]) -> str | None:
    p = item.get("producer")
    if p is not None and (not isinstance(p, str) or len(p) > 200):
        raise InvalidRequest("producer must be a string of at most 200 characters")
    return p


async def _create(request: web.Request, items: list[Any], project_id: int | None
                  ) -> list[int]:
    iid = path_id(request, "image_id")
    principal, pid = await permissions.write_project(request, iid, project_id)
    repair = params.flag(request.query, "repair", True)
    clip = params.flag(request.query, "clip")
    frame = await store.image_frame(_pool(request), iid)
    many = len(items) > 1
    prepared = await _run(request, lambda: [
        _prepare_item(it, frame, repair, clip, i if many else None)
        for i, it in enumerate(items)])
    async with _pool(request).acquire() as conn, conn.transaction():
        recs = []
        for it, p in zip(items, prepared, strict=True):
            tids = await terms.check_term_ids(conn, pid, _ids(it.get("terms"), "terms"))
            recs.append(store.record(frame, p, project_id=pid, user_id=principal.user_id,
                                     producer=_producer(it), term_ids=tids,
                                     properties=_data(it)))
        ids = await store.insert_many(conn, recs)
        if pid is not None and principal.user_id is not None and review.may_review(
                principal, await access.project_role(request, pid)):
            await review.auto_accept(conn, ids, principal.user_id)
        return ids


async def _features_json(request: web.Request, rows: list[asyncpg.Record]) -> list[Any]:
    geoms = await _run(request, render.geometries_json, [r["geom"] for r in rows])
    return [store.feature(r, g) for r, g in zip(rows, geoms, strict=True)]


async def create_annotation(request: web.Request) -> web.Response:
    # Who is asking comes before reading a big body: anonymous callers never get to
    # make us buffer and parse megabytes.
    await access.require_user(request)
    body = _obj(await _json_body(request, MAX_BODY))
    pid = body.get("project_id")
    [aid] = await _create(request, [body], pid if isinstance(pid, int) else None)
    [feature] = await _features_json(request, [await store.get(_pool(request), aid)])
    return json_response(feature, status=201)


async def create_batch(request: web.Request) -> web.Response:
    await access.require_user(request)
    body = _obj(await _json_body(request, MAX_BODY))
    items = body.get("annotations")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        raise InvalidRequest(f"annotations must be a list of 1 to {MAX_BATCH} annotations")
    pid = body.get("project_id")
    ids = await _create(request, items, pid if isinstance(pid, int) else None)
    return json_response({"ids": ids}, status=201)


async def get_annotation(request: web.Request) -> web.Response:
    row = await store.get(_pool(request), path_id(request, "annotation_id"))
    await access.require_image_access(request, row["image_id"])
    [feature] = await _features_json(request, [row])
    return json_response(feature)


async def update_annotation(request: web.Request) -> web.Response:
    pool = _pool(request)
    row = await store.get(pool, path_id(request, "annotation_id"))
    principal = await permissions.check_edit(request, row)
    body = _obj(await _json_body(request, MAX_BODY))
    unknown = set(body) - {"geometry", "shape", "terms", "data"}
    if unknown:
        raise InvalidRequest(f"unknown field {sorted(unknown)[0]!r}")
    frame = await store.image_frame(pool, row["image_id"])
    prepared = None
    if "geometry" in body or "shape" in body:
        prepared = await _run(request, _prepare_item, body, frame,
                              params.flag(request.query, "repair", True),
                              params.flag(request.query, "clip"))
    tids = None
    if "terms" in body:
        tids = await terms.check_term_ids(pool, row["project_id"], _ids(body["terms"], "terms"))
    changed = prepared is not None or tids is not None
    reset = changed and row["review_status"] is not None and not review.may_review(
        principal, await access.project_role(request, row["project_id"])
        if row["project_id"] else None)
    new = await store.update(pool, row["id"], frame=frame, prepared=prepared, term_ids=tids,
                             properties=_data(body) if "data" in body else None,
                             reset_review=reset)
    [feature] = await _features_json(request, [new])
    return json_response(feature)


async def delete_annotation(request: web.Request) -> web.Response:
    pool = _pool(request)
    row = await store.get(pool, path_id(request, "annotation_id"))
    await permissions.check_edit(request, row)
    await store.delete_many(pool, [row["id"]])
    return web.Response(status=204)


async def delete_batch(request: web.Request) -> web.Response:
    iid = path_id(request, "image_id")
    await access.require_user(request)
    body = _obj(await _json_body(request))
    ids = _ids(body.get("ids"), "ids")
    if not 1 <= len(ids) <= MAX_BATCH:
        raise InvalidRequest(f"ids must hold 1 to {MAX_BATCH} ids")
    pool = _pool(request)
    rows = await pool.fetch(
        "SELECT id, image_id, project_id, user_id FROM annotations "
        "WHERE id = ANY($1::bigint[]) AND image_id = $2", ids, iid)
    if len(rows) != len(set(ids)):
        await access.require_image_access(request, iid)
        raise Unprocessable("some ids are not annotations of this image",
                            {"missing": sorted(set(ids) - {r["id"] for r in rows})})
    principal = None
    for r in rows:  # all or nothing: every one must be deletable by the caller
        principal = await permissions.check_edit(request, r)
    # A set of annotations goes to the trash as one item (restorable by managers).
    days = request.app[CATALOG].settings.trash_days
    async with pool.acquire() as conn, conn.transaction():
        trash_id = await trash.move_annotations(conn, iid, sorted(set(ids)),
                                                principal.user_id if principal else None, days)
    return json_response({"deleted": len(rows), "trash_id": trash_id})


# -- queries -------------------------------------------------------------------------

async def _frame_for_read(request: web.Request) -> ImageFrame:
    iid = path_id(request, "image_id")
    await access.require_image_access(request, iid)
    return await store.image_frame(_pool(request), iid)


async def viewport(request: web.Request) -> web.Response:
    """Annotations in a bbox, as features or, when too many, as clusters (LOD)."""
    q = request.query
    frame = await _frame_for_read(request)
    f = params.filters(q)
    lod = q.get("lod", "auto")
    if lod not in ("auto", "features", "clusters"):
        raise InvalidRequest("lod must be auto, features or clusters")
    max_features = params.integer(q, "max_features", 2000, 1, 10_000) or 2000
    limit = params.integer(q, "limit", max_features, 1, 10_000) or max_features
    after = params.integer(q, "after", None, 0, 2**63 - 1)
    scale = params.number(q, "scale", 1.0, 0.0, 1e6)
    precision = params.integer(q, "precision", 2, -1, 15)
    grid = params.integer(q, "grid", 64, 1, 256) or 64
    box = query.clamp_box(frame, params.bbox(q))
    extra: dict[str, Any] = {"bbox": list(box) if box else None}
    pool = _pool(request)
    if box is None:
        body = render.light_collection([], scale=1, precision=None, next_after=None, extra=extra)
        return web.Response(body=body, content_type=GEOJSON)
    if lod == "clusters" or (lod == "auto" and after is None and await query.count_upto(
            pool, frame, box, f, max_features + 1) > max_features):
        level = query.density_level(box, grid) if f.empty else None
        if level is not None:
            cells = await query.density_clusters(pool, frame, box, grid, level)
        else:
            cells = await query.clusters(pool, frame, box, f, grid)
        body = await _run(request, lambda: render.cluster_collection(cells, grid=grid,
                                                                     extra=extra))
        return web.Response(body=body, content_type=GEOJSON)
    prec = None if precision == -1 else precision
    rows = await query.fetch_page(
        pool, frame, box, f, limit=limit + 1, after=after,
        cols=query.LOD_COLS if render.lod_band(scale, prec) else query.LIGHT_COLS)
    next_after = rows[limit - 1]["id"] if len(rows) > limit else None
    body = await _run(request, lambda: render.light_collection(
        rows[:limit], scale=scale, precision=prec, next_after=next_after, extra=extra))
    return web.Response(body=body, content_type=GEOJSON)


async def search(request: web.Request) -> web.Response:
    """Exact spatial predicate against a drawn shape, after the index filter."""
    frame = await _frame_for_read(request)
    body = _obj(await _json_body(request, SEARCH_BODY))
    predicate = body.get("predicate", "intersects")
    if predicate not in query.PREDICATES:
        raise InvalidRequest(f"predicate must be one of {list(query.PREDICATES)}")
    shape, _kind = await _run(request, parse_geojson_geometry, body.get("geometry"))
    limit = body.get("limit", 1000)
    after = body.get("after")
    if not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise InvalidRequest("limit must be between 1 and 10000")
    if after is not None and not isinstance(after, int):
        raise InvalidRequest("after must be an annotation id")
    f = params.body_filters(body)
    box = query.clamp_box(frame, shape.bounds)
    # Exact predicates run in shapely over the index's candidates: bound them.
    if box is not None and await query.count_upto(
            _pool(request), frame, box, f, MAX_SEARCH_CANDIDATES + 1) > MAX_SEARCH_CANDIDATES:
        raise TooLarge(f"the shape's bounding box holds more than {MAX_SEARCH_CANDIDATES} "
                       "annotations; draw a smaller shape or add filters")
    found: list[asyncpg.Record] = []
    while box is not None and len(found) <= limit:
        rows = await query.fetch_page(_pool(request), frame, box, f, limit=5000, after=after,
                                      cols=store.COLS)
        if not rows:
            break
        found += await _run(request, query.exact_filter, rows, shape, predicate)
        after = rows[-1]["id"]
    more = len(found) > limit
    found = found[:limit]
    feats = await _features_json(request, found)
    return json_response({"type": "FeatureCollection", "features": feats,
                          "next_after": found[-1]["id"] if more else None},
                         content_type=GEOJSON)


async def counts(request: web.Request) -> web.Response:
    frame = await _frame_for_read(request)
    box = query.clamp_box(frame, params.bbox(request.query))
    if box is None:
        return json_response({"total": 0, "untermed": 0, "terms": {}})
    return json_response(await query.term_counts(_pool(request), frame, box,
                                                 params.filters(request.query)))


async def stats(request: web.Request) -> web.Response:
    frame = await _frame_for_read(request)
    box = query.clamp_box(frame, params.bbox(request.query))
    rows = [] if box is None else await query.term_stats(
        _pool(request), frame, box, params.filters(request.query))
    return json_response({"image_id": frame.image_id, "pixel_size_um": frame.pixel_size_um,
                          "terms": rows})


# -- import / export -------------------------------------------------------------------

async def _spool(request: web.Request) -> Any:
    """The request body in an anonymous temporary file (streamed, size-limited)."""
    if request.content_length is not None and request.content_length > MAX_IMPORT:
        raise TooLarge("import too large", {"limit": MAX_IMPORT})
    fh = await _run(request, tempfile.TemporaryFile)
    size = 0
    try:
        async for chunk in body_chunks(request, 1 << 20):
            size += len(chunk)
            if size > MAX_IMPORT:
                raise TooLarge("import too large", {"limit": MAX_IMPORT})
            await _run(request, fh.write, chunk)
        await _run(request, fh.seek, 0, os.SEEK_SET)
    except BaseException:
        fh.close()
        raise
    return fh


async def import_geojson(request: web.Request) -> web.Response:
    iid = path_id(request, "image_id")
    q = request.query
    principal, pid = await permissions.write_project(
        request, iid, params.integer(q, "project", None, 1, 2**63 - 1))
    opts = geojson_io.ImportOptions(
        repair=params.flag(q, "repair", True), clip=params.flag(q, "clip"),
        create_terms=params.flag(q, "create_terms", True), producer=q.get("producer") or None)
    frame = await store.image_frame(_pool(request), iid)
    if request.content_length is None or request.content_length >= geojson_io.PARALLEL_MIN_BYTES:
        await _run(request, geojson_io.warm_pool)  # workers start while the body arrives
    fh = await _spool(request)
    try:
        async with _pool(request).acquire() as conn:
            result = await geojson_io.import_file(
                conn, fh, frame, project_id=pid, user_id=principal.user_id, opts=opts,
                executor=request.app[EXECUTOR])
    finally:
        fh.close()
    return json_response({**result, "project_id": pid}, status=201)


async def export_geojson(request: web.Request) -> web.StreamResponse:
    iid = path_id(request, "image_id")
    await access.require_image_access(request, iid)
    pid = params.integer(request.query, "project", None, 1, 2**63 - 1)
    pool = _pool(request)
    info: dict[int, tuple[str, str]] = {}
    for r in await pool.fetch(
            """SELECT t.id, t.name, t.color FROM terms t JOIN project_images pi
               ON pi.project_id = t.project_id WHERE pi.image_id = $1""", iid):
        info[r["id"]] = (r["name"], r["color"])
    resp = web.StreamResponse(headers={
        "Content-Type": GEOJSON,
        "Content-Disposition": f'attachment; filename="image-{iid}-annotations.geojson"'})
    resp.enable_compression()
    await resp.prepare(request)
    async for chunk in geojson_io.export_chunks(pool, iid, pid, info, request.app[EXECUTOR]):
        await resp.write(chunk)
    await resp.write_eof()
    return resp


# -- annotation images -------------------------------------------------------------------

async def annotation_image(request: web.Request) -> web.Response:
    name = request.path.rsplit("/", 1)[-1]  # crop.png, mask.webp, ...
    mode: crops.Mode = "crop" if name.startswith("crop.") else "mask"
    fmt = name.split(".", 1)[1]
    row = await store.get(_pool(request), path_id(request, "annotation_id"))
    await access.require_image_access(request, row["image_id"])
    size = params.integer(request.query, "size", 512, 1, crops.MAX_SIZE) or 512
    pad = params.number(request.query, "pad", 0.0, 0.0, 10_000.0)
    if mode == "mask" and params.flag(request.query, "alpha"):
        mode = "alpha"
    # Through the tile server's pixel source like any tile: the same access
    # checks, and the opened pyramid (shard indexes, decoded-chunk cache) is
    # shared with the viewer's tiles instead of opened per request.
    pixels = request.app[PIXELS]
    pyr = await pixels.open_image(request, str(row["image_id"]))
    geom = shapely.from_wkb(row["geom"])
    data = await pixels.run(partial(crops.render, pyr, geom, mode=mode, size=size, pad=pad,
                                    fmt=fmt))
    ctype = "image/jpeg" if crops.FORMATS.get(fmt) == "JPEG" else f"image/{fmt}"
    return web.Response(body=data, content_type=ctype,
                        headers={"Cache-Control": "private, max-age=60"})


# -- wiring ------------------------------------------------------------------------------

def routes() -> list[web.AbstractRouteDef]:
    img = "/api/images/{image_id}/annotations"
    one = "/api/annotations/{annotation_id}"
    terms_url = "/api/projects/{project_id}/terms"
    return [
        web.get(terms_url, list_terms), web.post(terms_url, create_term),
        web.patch(terms_url + "/{term_id}", update_term),
        web.delete(terms_url + "/{term_id}", delete_term),
        web.get("/api/images/{image_id}/terms", list_image_terms),
        web.get(img, viewport), web.post(img, create_annotation),
        web.post(img + "/batch", create_batch), web.post(img + "/delete", delete_batch),
        web.post(img + "/search", search), web.get(img + "/counts", counts),
        web.get(img + "/stats", stats), web.post(img + "/import", import_geojson),
        web.get(img + "/export", export_geojson),
        web.get(one, get_annotation), web.patch(one, update_annotation),
        web.delete(one, delete_annotation),
        *(web.get(f"{one}/{mode}.{fmt}", annotation_image)
          for mode in ("crop", "mask") for fmt in ("png", "jpg", "webp")),
    ]


def setup_annotations(app: web.Application) -> None:
    """Add the annotation routes and their executor (the catalog provides the pool)."""

    async def executor(app: web.Application) -> AsyncIterator[None]:
        # Two threads: GeoJSON encoding and import parsing are CPU-bound and
        # mostly hold the GIL; more threads would only queue.
        ex = ThreadPoolExecutor(max_workers=2, thread_name_prefix="annotations")
        app[EXECUTOR] = ex
        yield
        ex.shutdown(wait=True, cancel_futures=True)

    app.cleanup_ctx.append(executor)
    app.router.add_routes(routes())
    from .web_review import routes as review_routes  # imports this module: here, not on top
    app.router.add_routes(review_routes())
    from microtome.annotations import collab

    collab.setup(app)  # annotation properties; annotation actions to the activity store
