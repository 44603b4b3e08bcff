"""Handlers: files attached to an image (PDF reports, CSV tables).

Contributors attach; the uploader or a manager removes; viewers list and
download.  Downloads are always ``Content-Disposition: attachment`` with
``X-Content-Type-Options: nosniff`` and a sniffed type: an attached file never
renders inside the site.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Any, BinaryIO

import asyncpg
from aiohttp import web

from microtome.catalog import attachments as att
from microtome.catalog.access import image_role, require_image_role
from microtome.catalog.db import DB_POOL
from microtome.catalog.jsonio import path_id
from microtome.catalog.state import CATALOG
from microtome.catalog.storage import ATTACHMENTS, attachment_path, image_dir
from microtome.catalog.tus import available_bytes
from microtome.core.http import body_chunks, json_response
from microtome.pyramid import errors

_COLUMNS = ("a.id, a.image_id, a.filename, a.content_type, a.size, a.sha256, a.created_at,"
            " u.username AS uploaded_by")
_CHUNK = 256 * 1024


def _json(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    out["url"] = f"/api/attachments/{row['id']}"
    return out


async def list_attachments(request: web.Request) -> web.Response:
    image_id = path_id(request, "image_id")
    await require_image_role(request, image_id, "viewer")
    rows = await request.app[DB_POOL].fetch(
        f"""SELECT {_COLUMNS} FROM image_attachments a LEFT JOIN users u ON u.id = a.uploaded_by
            WHERE a.image_id = $1 ORDER BY a.id""", image_id)
    return json_response({"items": [_json(r) for r in rows]})


def _open(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("xb")


async def _receive(request: web.Request, tmp: Path, limit: int) -> att.Hasher:
    hasher = att.Hasher()
    fh = await asyncio.to_thread(_open, tmp)
    try:
        async for chunk in body_chunks(request, _CHUNK):
            hasher.update(chunk)
            if hasher.size > limit:
                raise errors.TooLarge("the attached file is too large", {"limit": limit})
            await asyncio.to_thread(fh.write, chunk)
        await asyncio.to_thread(os.fsync, fh.fileno())
    finally:
        await asyncio.to_thread(fh.close)
    return hasher


async def upload(request: web.Request) -> web.Response:
    image_id = path_id(request, "image_id")
    principal = await require_image_role(request, image_id, "contributor")
    settings = request.app[CATALOG].settings
    limit = settings.collab.attachment_max_bytes
    name = att.safe_filename(request.query.get("filename", ""))
    if request.content_length is not None and request.content_length > limit:
        raise errors.TooLarge("the attached file is too large", {"limit": limit})
    folder = image_dir(settings.images_dir, image_id) / ATTACHMENTS
    need = request.content_length or 0
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    if need and need > await asyncio.to_thread(available_bytes, folder,
                                               settings.disk_reserve_bytes):
        raise errors.InsufficientStorage("not enough space on the server for this file")
    tmp = folder / f".upload-{secrets.token_hex(8)}"
    pool = request.app[DB_POOL]
    try:
        hasher = await _receive(request, tmp, limit)
        ctype = att.sniff(hasher.head, name)
        async with pool.acquire() as conn, conn.transaction():
            row_id = await conn.fetchval(
                """INSERT INTO image_attachments (image_id, filename, content_type, size,
                       sha256, uploaded_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
                image_id, name, ctype, hasher.size, hasher.h.hexdigest(), principal.user_id)
            # Inside the transaction: a failed move leaves no row without its file.
            await asyncio.to_thread(att.finish, tmp,
                                    attachment_path(settings.images_dir, image_id, row_id))
    finally:
        await asyncio.to_thread(att.remove, tmp)
    row = await pool.fetchrow(
        f"""SELECT {_COLUMNS} FROM image_attachments a LEFT JOIN users u ON u.id = a.uploaded_by
            WHERE a.id = $1""", row_id)
    return json_response(_json(row), status=201)


async def _row(request: web.Request) -> asyncpg.Record:
    att_id = path_id(request, "attachment_id")
    row = await request.app[DB_POOL].fetchrow(
        "SELECT id, image_id, filename, content_type, uploaded_by FROM image_attachments"
        " WHERE id = $1", att_id)
    if row is None:
        raise errors.NotFound("attachment not found")
    return row


async def download(request: web.Request) -> web.StreamResponse:
    row = await _row(request)
    await require_image_role(request, row["image_id"], "viewer")
    path = attachment_path(request.app[CATALOG].settings.images_dir, row["image_id"], row["id"])
    if not await asyncio.to_thread(path.is_file):
        raise errors.NotFound("the attached file is missing on the server")
    return web.FileResponse(path, headers={
        "Content-Type": row["content_type"],
        "Content-Disposition": att.content_disposition(row["filename"]),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-store"})


async def delete(request: web.Request) -> web.Response:
    row = await _row(request)
    principal = await require_image_role(request, row["image_id"], "contributor")
    pool = request.app[DB_POOL]
    _, role = await image_role(pool, principal, row["image_id"])
    if role != "manager" and row["uploaded_by"] != principal.user_id:
        raise errors.Forbidden("only the uploader or a manager can remove an attachment")
    await pool.execute("DELETE FROM image_attachments WHERE id = $1", row["id"])
    settings = request.app[CATALOG].settings
    await asyncio.to_thread(att.remove, attachment_path(settings.images_dir, row["image_id"],
                                                        row["id"]))
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/images/{image_id}/attachments", list_attachments),
        web.post("/api/images/{image_id}/attachments", upload),
        web.get("/api/attachments/{attachment_id}", download),
        web.delete("/api/attachments/{attachment_id}", delete),
    ]
