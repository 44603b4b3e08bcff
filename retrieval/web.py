"""HTTP routes of retrieval: similar regions and term suggestions (retrieval/openapi.py).

Handlers: parse → check access → call `retrieval.service` → respond.  Pixels
are read through the tile server's `PixelSource` (same access checks, caches
and thread pool as tiles); descriptors are computed there, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import shapely
from aiohttp import web

from microtome.annotations import store
from microtome.annotations.geometry import parse_geojson_geometry
from microtome.annotations.store import bbox_of
from microtome.catalog import access
from microtome.catalog.db import DB_POOL
from microtome.core.http import body_chunks, json_response
from microtome.core.pixels import PIXELS
from microtome.core.settings import Settings
from microtome.pyramid.errors import InvalidRequest, TooLarge, Unavailable
from microtome.pyramid.reader import Pyramid

from . import index, service
from .crops import MAX_SIDE, MIN_SIDE, TARGET_UM
from .descriptors import FAMILY
from .indexer import Indexer

log = logging.getLogger("retrieval")
MAX_BODY = 1024**2
MAX_K = 100


#: Said at start-up and by every retrieval route when the database lacks pgvector.
DISABLED_MESSAGE = ("retrieval is disabled: the PostgreSQL database has no pgvector "
                    "extension (install pgvector on the server, or use the embedded "
                    "database, and restart)")


@dataclass
class RetrievalState:
    #: The database has pgvector: retrieval is on.  Off, every retrieval route is a 503.
    enabled: bool
    #: Search through the HNSW index (False: exact scans, for comparison and benchmarks).
    use_vector: bool
    indexer: Indexer | None = None


STATE: web.AppKey[RetrievalState] = web.AppKey("retrieval_state", RetrievalState)


@dataclass(frozen=True)
class Query:
    annotation: asyncpg.Record | None
    image_id: int
    geom: shapely.Geometry | None
    pixel_size_um: float | None
    filter: index.Filter
    k: int
    #: The project whose terms suggestions are mapped to (None: no mapping).
    project_id: int | None


#: Fields of every retrieval query; routes may accept more (`extra`).
FIELDS = frozenset({"annotation_id", "image_id", "geometry", "scope", "k", "terms",
                    "project_id"})


async def _body(request: web.Request, extra: frozenset[str] = frozenset()) -> dict[str, Any]:
    parts, size = [], 0
    async for chunk in body_chunks(request, 1 << 16):
        size += len(chunk)
        if size > MAX_BODY:
            raise TooLarge("request body too large", {"limit": MAX_BODY})
        parts.append(chunk)
    try:
        body = orjson.loads(b"".join(parts) or b"{}")
    except orjson.JSONDecodeError:
        raise InvalidRequest("malformed JSON body") from None
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object")
    unknown = set(body) - FIELDS - extra
    if unknown:
        raise InvalidRequest(f"unknown field {sorted(unknown)[0]!r}")
    return body


def _int(body: dict[str, Any], name: str, lo: int, hi: int, default: int | None = None) -> int:
    v = body.get(name, default)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise InvalidRequest(f"{name} must be an integer between {lo} and {hi}")
    return v


def _term_ids(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > 1000 or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**63 for v in value):
        raise InvalidRequest("terms must be a list of term ids")
    return tuple(value)


async def _query(request: web.Request, default_k: int, body: dict[str, Any] | None = None
                 ) -> Query:
    body = body if body is not None else await _body(request)
    pool = request.app[DB_POOL]
    scope = body.get("scope", "all")
    if scope not in index.SCOPES:
        raise InvalidRequest(f"scope must be one of {list(index.SCOPES)}")
    k = _int(body, "k", 1, MAX_K, default_k)
    term_ids = _term_ids(body.get("terms", []))
    if ("annotation_id" in body) == ("image_id" in body or "geometry" in body):
        raise InvalidRequest("give either annotation_id, or image_id and geometry")
    if "annotation_id" in body and "project_id" in body:
        raise InvalidRequest("project_id goes with image_id and geometry (an annotation "
                             "has its own project)")
    annotation, geom = None, None
    if "annotation_id" in body:
        annotation = await store.get(pool, _int(body, "annotation_id", 1, 2**63 - 1))
        image_id = annotation["image_id"]
    else:
        image_id = _int(body, "image_id", 1, 2**63 - 1)
    await access.require_image_access(request, image_id)
    frame = await store.image_frame(pool, image_id)
    if annotation is None:
        geom, _kind = parse_geojson_geometry(body.get("geometry"))
    if annotation is not None and annotation["project_id"] is not None:
        projects = (annotation["project_id"],)
    else:
        projects = tuple(r["project_id"] for r in await pool.fetch(
            "SELECT project_id FROM project_images WHERE image_id = $1", image_id))
    if annotation is not None:
        target = annotation["project_id"]
    elif "project_id" in body:
        target = _int(body, "project_id", 1, 2**63 - 1)
        if target not in projects:
            raise InvalidRequest("project_id must be a project holding this image")
    else:
        target = projects[0] if len(projects) == 1 else None
    f = index.Filter(scope, image_id, projects,
                     annotation["id"] if annotation is not None else None,
                     term_ids)
    return Query(annotation, image_id, geom, frame.pixel_size_um, f, k, target)


def _pixels(request: web.Request) -> service.PixelAccess:
    pixels = request.app[PIXELS]

    async def open_image(image_id: int) -> Pyramid:
        return await pixels.open_image(request, str(image_id))

    return service.PixelAccess(open_image, pixels.run)


def _require_enabled(request: web.Request) -> RetrievalState:
    state = request.app[STATE]
    if not state.enabled:
        raise Unavailable(DISABLED_MESSAGE)
    return state


async def _search(request: web.Request, default_k: int) -> tuple[service.Result, Query]:
    _require_enabled(request)
    q = await _query(request, default_k)
    pool = request.app[DB_POOL]
    px = _pixels(request)
    vec = await service.query_vector(pool, px, annotation=q.annotation, image_id=q.image_id,
                                     geom=q.geom, pixel_size_um=q.pixel_size_um)
    principal = await access.get_principal(request)
    res = await service.similar(pool, px, principal, q.filter, vec, q.k,
                                request.app[STATE].use_vector)
    return res, q


async def _terms(pool: asyncpg.Pool, ids: set[int]) -> dict[int, asyncpg.Record]:
    rows = await pool.fetch("SELECT id, name, color, project_id FROM terms WHERE id = ANY($1)",
                            list(ids))
    return {r["id"]: r for r in rows}


async def similar(request: web.Request) -> web.Response:
    res, _q = await _search(request, 10)
    terms = await _terms(request.app[DB_POOL], {t for r in res.rows for t in r["term_ids"]})
    items = [{
        "annotation_id": r["id"], "image_id": r["image_id"], "image_name": r["image_name"],
        "project_id": r["project_id"], "score": round(float(r["score"]), 6),
        "terms": [{"id": t, "name": terms[t]["name"], "color": terms[t]["color"]}
                  for t in r["term_ids"] if t in terms],
        "bbox": bbox_of(r),
        "crop_url": f"/api/annotations/{r['id']}/crop.jpg?size=256",
    } for r in res.rows]
    return json_response({"items": items, "descriptor": FAMILY, "method": res.method,
                          "pending": res.pending})


async def suggest_term(request: web.Request) -> web.Response:
    res, q = await _search(request, 10)
    pool = request.app[DB_POOL]
    votes = service.vote(res.rows)
    terms = await _terms(pool, set(votes))
    target = [] if q.project_id is None else await pool.fetch(
        "SELECT id, name FROM terms WHERE project_id = $1", q.project_id)
    ranked = service.map_votes(votes, terms, target)
    terms.update(await _terms(pool, {s.term_id for s in ranked} - set(terms)))
    return json_response({
        "terms": [{"term_id": s.term_id, "name": terms[s.term_id]["name"],
                   "color": terms[s.term_id]["color"],
                   "project_id": terms[s.term_id]["project_id"], "score": round(s.score, 6),
                   "applicable": s.applicable}
                  for s in ranked],
        "project_id": q.project_id,
        "neighbours": len(res.rows), "descriptor": FAMILY, "method": res.method,
        "pending": res.pending})


async def status(request: web.Request) -> web.Response:
    """Whether retrieval is on (the web UI says so when it is not).  Open to anyone,
    but credentials that are sent must be valid (401 otherwise, as everywhere)."""
    await access.get_principal(request)
    state = request.app[STATE]
    return json_response({"enabled": state.enabled, "descriptor": FAMILY,
                          "message": None if state.enabled else DISABLED_MESSAGE,
                          "background_indexing": state.indexer is not None,
                          "limits": {"um_per_px": TARGET_UM, "min_side": MIN_SIDE,
                                     "max_side": MAX_SIDE}})


def setup_retrieval(app: web.Application, settings: Settings) -> None:
    """Add the retrieval routes; once the pool exists, decide whether retrieval is on
    and start the background indexer."""

    async def start(app: web.Application) -> AsyncIterator[None]:
        enabled = await index.has_vector(app[DB_POOL])
        if not enabled:
            log.warning(DISABLED_MESSAGE)
        state = RetrievalState(enabled, enabled)
        app[STATE] = state
        task = None
        if enabled and settings.retrieval_index_threads > 0:
            state.indexer = Indexer(app[DB_POOL], settings.images_dir,
                                    settings.retrieval_index_threads,
                                    remote=settings.storage.url if settings.storage else None)
            task = asyncio.create_task(state.indexer.run_forever(), name="retrieval-indexer")
        try:
            yield
        finally:
            if task is not None and state.indexer is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                state.indexer.close()

    from .web_slide import add_routes as add_slide_routes  # it imports this module

    app.cleanup_ctx.append(start)
    add_slide_routes(app)
    app.router.add_routes([web.get("/api/retrieval/status", status),
                           web.post("/api/retrieval/similar", similar),
                           web.post("/api/retrieval/suggest-term", suggest_term)])
