"""Handlers for /api/images: list, get, rename, delete, signed tile URLs."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

from aiohttp import web

from microtome.catalog import images, jobs, security, trash
from microtome.catalog.access import (
    get_principal,
    image_role,
    require_image_access,
    require_image_home,
)
from microtome.catalog.db import DB_POOL
from microtome.catalog.jsonio import page, page_params, path_id, read_json
from microtome.catalog.properties import grid_query
from microtome.catalog.state import CATALOG
from microtome.core.http import json_response
from microtome.pyramid import errors


async def list_all(request: web.Request) -> web.Response:
    principal = await get_principal(request)
    limit, offset = page_params(request)
    items, total = await images.list_images(
        request.app[DB_POOL], principal, project_id=None, limit=limit, offset=offset,
        sort=request.query.get("sort"), q=request.query.get("q"),
        status=request.query.get("status"), checksum=request.query.get("checksum"),
        grid=grid_query(request.query, request.query.get("sort")))
    return json_response(page(items, total, limit, offset))


async def get_one(request: web.Request) -> web.Response:
    image_id = path_id(request, "image_id")
    principal = await require_image_access(request, image_id)
    pool = request.app[DB_POOL]
    image = await images.get_image(pool, image_id)
    await images.log_activity(pool, "image.open", user_id=principal.user_id, image_id=image_id,
                              detail={"via": principal.via})
    return json_response(image)


async def rename(request: web.Request) -> web.Response:
    image_id = path_id(request, "image_id")
    await require_image_access(request, image_id, write=True)
    body = await read_json(request, "ImageUpdate")
    pool = request.app[DB_POOL]
    await pool.execute("UPDATE images SET name = $2, updated_at = now() WHERE id = $1",
                       image_id, body["name"])
    return json_response(await images.get_image(pool, image_id))


async def delete(request: web.Request) -> web.Response:
    """Managers of a project holding the image, admins, and the uploader may delete it."""
    image_id = path_id(request, "image_id")
    principal = await require_image_access(request, image_id, write=True)
    pool = request.app[DB_POOL]
    async with pool.acquire() as conn, conn.transaction():
        # Lock the row so a job cannot start converting between check and delete.
        row = await conn.fetchrow("SELECT status, owner_id FROM images WHERE id = $1"
                                  " FOR UPDATE", image_id)
        if row is None:
            raise errors.NotFound("image not found")
        _, role = await image_role(conn, principal, image_id)
        if role != "manager" and row["owner_id"] != principal.user_id:
            raise errors.Forbidden("only a project manager or the uploader can delete it")
        busy = await conn.fetchval(
            "SELECT count(*) FROM jobs WHERE image_id = $1 AND status = 'running'", image_id)
        if busy:
            raise errors.Conflict("the image is being converted; retry when the job ends")
        await conn.execute(
            """UPDATE jobs SET status = 'cancelled', finished_at = now(),
                   error = 'the image was deleted before its conversion ran'
               WHERE image_id = $1 AND status = 'queued'""", image_id)
        # Uploaded originals kept for a retry stay with the image in the trash
        # (its files too); the purge removes them.
        kept = await conn.fetch("SELECT source_path, extra_paths FROM jobs"
                                " WHERE image_id = $1 AND delete_source", image_id)
        paths = [p for r in kept for p in (r["source_path"], *r["extra_paths"])]
        settings = request.app[CATALOG].settings
        trash_id = await trash.move_image(conn, image_id, principal.user_id,
                                          settings.trash_days, paths)
        await images.log_activity(conn, "image.delete", user_id=principal.user_id,
                                  image_id=image_id, detail={"trash_id": trash_id})
    request.app[CATALOG].forget_image(image_id)
    return web.Response(status=204)


async def retry(request: web.Request) -> web.Response:
    """Convert a failed image again from its kept original (after a full disk...)."""
    image_id = path_id(request, "image_id")
    principal = await require_image_access(request, image_id, write=True)
    pool = request.app[DB_POOL]
    status = await pool.fetchval("SELECT status FROM images WHERE id = $1", image_id)
    if status != "failed":
        raise errors.Conflict(f"only a failed image can be retried (this one is {status})")
    src = await jobs.last_source(pool, image_id)
    paths = [src["source_path"], *src["extra_paths"]] if src is not None else []
    if not paths or not all([await asyncio.to_thread(_existing_file, p) for p in paths]):
        raise errors.Conflict("the original file is no longer kept; upload it again")
    async with pool.acquire() as conn:
        job = await jobs.retry(conn, image_id)
    request.app[CATALOG].forget_image(image_id)
    await images.log_activity(pool, "image.retry", user_id=principal.user_id,
                              image_id=image_id, detail={"job_id": job["id"]})
    return json_response(jobs.job_json(job), status=202)


async def signed_url(request: web.Request) -> web.Response:
    image_id = path_id(request, "image_id")
    # Decided in the image's home project (or by its uploader / an admin); a share
    # link or a project the image was linked into cannot mint tokens.
    principal = await require_image_home(request, image_id)
    body = await read_json(request, "SignedUrlRequest")
    settings = request.app[CATALOG].settings
    ttl = int(body.get("expires_in", settings.signed_url_default_seconds))
    if ttl > settings.signed_url_max_seconds:
        raise errors.InvalidRequest("expires_in exceeds the maximum lifetime of a signed URL",
                                    {"max": settings.signed_url_max_seconds})
    row = await request.app[DB_POOL].fetchrow(
        "SELECT version, status FROM images WHERE id = $1", image_id)
    if row is None:
        raise errors.NotFound("image not found")
    expires = int(time.time()) + ttl
    token = security.tile_token(settings.secret_key, image_id, row["version"], expires,
                                user=principal.user_id)
    # The token rides inside the image id ("42~token"), so every URL a viewer
    # derives from info.json / the .dzi carries it too.
    ident = f"{image_id}~{token}"
    return json_response({
        "token": token, "image": ident,
        "expires_at": dt.datetime.fromtimestamp(expires, dt.UTC),
        "dzi": f"/dzi/{ident}.dzi", "iiif": f"/iiif/3/{ident}/info.json"})


async def image_jobs(request: web.Request) -> web.Response:
    image_id = path_id(request, "image_id")
    await require_image_access(request, image_id)
    limit, offset = page_params(request)
    pool = request.app[DB_POOL]
    from microtome.catalog.jobs import JOB_COLUMNS, job_json

    rows = await pool.fetch(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE image_id = $1 ORDER BY id DESC"
        f" LIMIT {limit} OFFSET {offset}", image_id)
    total = await pool.fetchval("SELECT count(*) FROM jobs WHERE image_id = $1", image_id)
    return json_response(page([job_json(r) for r in rows], total, limit, offset))


def _existing_file(path: str) -> bool:
    return Path(path).is_file()


async def original(request: web.Request) -> web.StreamResponse:
    """The source file, when it was kept: imports leave their sources in place,
    uploads are removed once converted (and kept, for a retry, while failed)."""
    image_id = path_id(request, "image_id")
    await require_image_access(request, image_id)
    row = await request.app[DB_POOL].fetchrow(
        """SELECT j.source_path, i.source_filename FROM jobs j JOIN images i ON i.id = j.image_id
           WHERE j.image_id = $1 AND j.status = 'done' AND NOT j.delete_source
           ORDER BY j.id DESC LIMIT 1""", image_id)
    if row is None or not await asyncio.to_thread(_existing_file, row["source_path"]):
        raise errors.NotFound("the original file of this image is not kept")
    name = (row["source_filename"] or f"image-{image_id}").replace('"', "")
    return web.FileResponse(row["source_path"], headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "Content-Type": "application/octet-stream", "Cache-Control": "private, no-store"})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/images", list_all),
        web.get("/api/images/{image_id}", get_one),
        web.patch("/api/images/{image_id}", rename),
        web.delete("/api/images/{image_id}", delete),
        web.post("/api/images/{image_id}/signed-url", signed_url),
        web.get("/api/images/{image_id}/jobs", image_jobs),
        web.get("/api/images/{image_id}/original", original),
        web.post("/api/images/{image_id}/retry", retry),
    ]
