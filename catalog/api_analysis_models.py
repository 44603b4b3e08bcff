"""Models trained by analyses: stored by the worker, read back to re-apply them.

- ``PUT /api/analyses/{id}/model?attempt=N`` (workers: administrators' keys): the
  artifact of a running attempt, checked (classifier_model.loads) before it is
  stored; a later attempt replaces it.
- ``GET /api/analyses/{id}/model``: the bytes, once the analysis is done and only
  to those who may read the project the analysis was asked in (its training
  annotations live there); an analysis outside projects: readers of its image.
- ``GET /api/projects/{id}/classifier-models``: the project's trained models (what
  the Analyse panel offers).
- `check_model_params`: a run naming a model (a parameter whose schema says
  ``"format": "analysis-model"``) is checked when it is asked: 400 unless the id
  names a done analysis of the same app with a saved model whose input suits the
  image; 403/404 when the caller may not read that analysis' project.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import asyncpg
from aiohttp import web

from microtome.analysis.classifier_model import MAX_MODEL_BYTES, ModelError, loads
from microtome.catalog.access import (
    project_role,
    require_admin,
    require_image_role,
    require_project_role,
    role_at_least,
)
from microtome.catalog.api_analysis_projects import jsonb_value
from microtome.catalog.db import DB_POOL
from microtome.catalog.jsonio import page, page_params, path_id
from microtome.core.http import json_response
from microtome.pyramid import errors

MODEL_FORMAT = "analysis-model"
#: The channel labels the converter records for an RGB brightfield image.
RGB_CHANNELS = ["Red", "Green", "Blue"]

#: A model that may be served: its analysis is done and the model came from the
#: attempt that finished it.
_SERVED = """SELECT a.id, a.image_id, a.project_id, a.app, a.status, m.meta
             FROM analyses a LEFT JOIN analysis_models m
               ON m.analysis_id = a.id AND m.attempt = a.attempts"""


async def _may_read(request: web.Request, project_id: int | None, image_id: int) -> None:
    """403/404 unless the caller may read the analysis' project (else its image)."""
    if project_id is not None:
        await require_project_role(request, project_id, "viewer")
    else:
        await require_image_role(request, image_id, "viewer")


async def put_model(request: web.Request) -> web.Response:
    await require_admin(request)
    analysis_id = path_id(request, "analysis_id")
    try:
        attempt = int(request.query.get("attempt", ""))
    except ValueError:
        raise errors.InvalidRequest("attempt: the claim's attempts value is required",
                                    {"fields": {"attempt": "an integer"}}) from None
    if request.content_length is not None and request.content_length > MAX_MODEL_BYTES:
        raise errors.TooLarge("model too large", {"limit": MAX_MODEL_BYTES})
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(1 << 20):
        size += len(chunk)
        if size > MAX_MODEL_BYTES:
            raise errors.TooLarge("model too large", {"limit": MAX_MODEL_BYTES})
        chunks.append(chunk)
    data = b"".join(chunks)
    try:
        model = await asyncio.to_thread(loads, data)
    except ModelError as e:
        raise errors.InvalidRequest(e.message) from None
    digest = hashlib.sha256(data).hexdigest()
    async with request.app[DB_POOL].acquire() as conn, conn.transaction():
        cur = await conn.fetchrow(
            "SELECT status, attempts, app FROM analyses WHERE id = $1 FOR UPDATE", analysis_id)
        if cur is None:
            raise errors.NotFound("analysis not found")
        if cur["status"] != "running" or cur["attempts"] != attempt:
            raise errors.Conflict(f"the analysis is {cur['status']}"
                                  + (" by a newer attempt" if cur["status"] == "running"
                                     else "") + "; model refused")
        if model.meta.get("app") != cur["app"]:
            raise errors.InvalidRequest(f"a model of {model.meta.get('app')!r} for a "
                                        f"{cur['app']} analysis")
        await conn.execute(
            """INSERT INTO analysis_models (analysis_id, attempt, data, size, sha256, meta)
               VALUES ($1, $2, $3, $4, $5, $6::jsonb)
               ON CONFLICT (analysis_id) DO UPDATE SET attempt = $2, data = $3, size = $4,
                   sha256 = $5, meta = $6::jsonb, created_at = now()""",
            analysis_id, attempt, data, len(data), digest, model.meta)
    return json_response({"analysis_id": analysis_id, "size": len(data), "sha256": digest,
                          "meta": model.meta}, status=201)


async def get_model(request: web.Request) -> web.Response:
    analysis_id = path_id(request, "analysis_id")
    pool = request.app[DB_POOL]
    row = await pool.fetchrow(f"{_SERVED} WHERE a.id = $1", analysis_id)
    if row is None:
        raise errors.NotFound("analysis not found")
    try:
        await _may_read(request, row["project_id"], row["image_id"])
    except errors.NotFound:
        raise errors.NotFound("analysis not found") from None
    if row["status"] != "done" or row["meta"] is None:
        raise errors.NotFound(f"analysis {analysis_id} has no saved model"
                              + (f" ({row['status']})" if row["status"] != "done" else ""))
    m = await pool.fetchrow("SELECT data, sha256 FROM analysis_models WHERE analysis_id = $1",
                            analysis_id)
    if m is None:  # deleted meanwhile
        raise errors.NotFound(f"analysis {analysis_id} has no saved model")
    etag = f'"{m["sha256"]}"'
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(body=bytes(m["data"]), content_type="application/octet-stream",
                        headers={"ETag": etag, "Cache-Control": "private, no-cache",
                                 "Content-Disposition":
                                     f'attachment; filename="analysis-{analysis_id}.model.npz"'})


def _model_json(r: asyncpg.Record) -> dict[str, Any]:
    meta = jsonb_value(r["meta"]) or {}
    return {"analysis_id": r["id"], "image_id": r["image_id"], "image_name": r["image_name"],
            "project_id": r["project_id"], "user_id": r["user_id"], "username": r["username"],
            "app": r["app"], "version": r["version"], "size": r["size"],
            "created_at": r["created_at"].isoformat(),
            "classes": meta.get("classes", []), "features": meta.get("features", {}),
            "resolution": meta.get("resolution"), "training": meta.get("training", {})}


async def project_models(request: web.Request) -> web.Response:
    """The models trained by done analyses asked in this project, newest first."""
    project_id = path_id(request, "project_id")
    await require_project_role(request, project_id, "viewer")
    limit, offset = page_params(request)
    pool = request.app[DB_POOL]
    where = """FROM analyses a JOIN analysis_models m
                 ON m.analysis_id = a.id AND m.attempt = a.attempts
               JOIN images i ON i.id = a.image_id LEFT JOIN users u ON u.id = a.user_id
               WHERE a.project_id = $1 AND a.status = 'done'"""
    rows = await pool.fetch(
        f"""SELECT a.id, a.image_id, i.name AS image_name, a.project_id, a.user_id,
                   u.username, a.app, a.version, m.size, m.created_at, m.meta
            {where} ORDER BY a.id DESC LIMIT {limit} OFFSET {offset}""", project_id)
    total = await pool.fetchval(f"SELECT count(*) {where}", project_id)
    return json_response(page([_model_json(r) for r in rows], total, limit, offset))


def _bad(name: str, message: str) -> errors.MicrotomeError:
    return errors.InvalidRequest(f"{name}: {message}", {"fields": {name: message}})


async def check_model_params(request: web.Request, descriptor: Any, params: dict[str, Any],
                             image_id: int) -> None:
    """Every model a run names: one the caller may read, that suits this image."""
    props = descriptor.params_schema.get("properties", {})
    for name, prop in props.items():
        if prop.get("format") != MODEL_FORMAT or params.get(name) is None:
            continue
        ref = params[name]
        if isinstance(ref, bool) or not isinstance(ref, int):
            raise _bad(name, "on a server, the id of an earlier analysis that trained a "
                             "model (model files are for microtome analyse)")
        await _check_one(request, descriptor, name, ref, image_id)


async def _check_one(request: web.Request, descriptor: Any, name: str, ref: int,
                     image_id: int) -> None:
    pool = request.app[DB_POOL]
    row = await pool.fetchrow(f"{_SERVED} WHERE a.id = $1", ref)
    if row is None:
        raise _bad(name, f"analysis {ref} does not exist")
    if row["project_id"] is not None:
        role = await project_role(request, row["project_id"])
        if not role_at_least(role, "viewer"):
            raise errors.Forbidden(f"{name}: you may not read analysis {ref}'s project",
                                   {"fields": {name: "not readable by you"}})
    else:
        try:
            await require_image_role(request, row["image_id"], "viewer")
        except errors.NotFound:
            raise errors.Forbidden(f"{name}: you may not read analysis {ref}",
                                   {"fields": {name: "not readable by you"}}) from None
    if row["app"] != descriptor.name:
        raise _bad(name, f"analysis {ref} is a {row['app']} run, not {descriptor.name}")
    if row["status"] != "done":
        raise _bad(name, f"analysis {ref} has not finished well ({row['status']})")
    if row["meta"] is None:
        raise _bad(name, f"analysis {ref} saved no model (it applied one, or predates "
                         "saved models)")
    meta = jsonb_value(row["meta"])
    features = meta.get("features") or {}
    labels = jsonb_value(await pool.fetchval("SELECT channels FROM images WHERE id = $1",
                                             image_id)) or []
    names = [c if isinstance(c, str) else (c or {}).get("label") or (c or {}).get("name")
             for c in labels]
    # Channels unknown to the catalog: the worker's reader refuses a non-RGB image.
    if features.get("kind") == "rgb" and names and names != RGB_CHANNELS:
        raise _bad(name, f"the model of analysis {ref} reads RGB brightfield images "
                         f"(3 channels); this image has {len(names)} channel(s)"
                         + (f" ({', '.join(map(str, names))[:200]})" if names else ""))


def routes() -> list[web.RouteDef]:
    return [web.put("/api/analyses/{analysis_id}/model", put_model),
            web.get("/api/analyses/{analysis_id}/model", get_model),
            web.get("/api/projects/{project_id}/classifier-models", project_models)]
