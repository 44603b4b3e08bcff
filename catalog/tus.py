"""Resumable uploads: the tus 1.0.0 protocol at /api/uploads.

Extensions: creation, termination, checksum (sha1, md5, sha256), expiration.
Bytes go to ``uploads_dir/<id>`` on the shared data directory; the database
row holds the committed offset, and a PostgreSQL advisory lock
(catalog/upload_lock.py) serialises the PATCHes of one upload whichever
process they reach.
When the last byte arrives the upload becomes a pending image in its project
(the two halves of an imzML pair: one image once both are here, see
catalog/msi_uploads.py) plus a conversion job (the worker removes the file once the image is ready;
a failed conversion keeps it for a retry).

Disk space: a creation whose ``Upload-Length`` does not fit in the free space
minus ``settings.disk_reserve_bytes`` is refused with 507, and so is a PATCH
whose bytes cannot be written (ENOSPC, or the reserve reached): the bytes
written before stay committed, so the client can resume once space is freed.

Metadata (``Upload-Metadata``): ``filename`` (required), ``project_id``
(required; contributor role needed), ``name`` (optional image name).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import errno
import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any, BinaryIO

import asyncpg
from aiohttp import web

from microtome.catalog import images, jobs, msi_uploads, security, upload_files
from microtome.catalog.access import Principal, require_project_role, require_user
from microtome.catalog.db import DB_POOL
from microtome.catalog.state import CATALOG
from microtome.catalog.upload_lock import UPLOAD_LOCKS, commit_offset, holding
from microtome.core.http import body_chunks, error_response, json_response
from microtome.pyramid import errors

log = logging.getLogger("microtome.catalog.tus")

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,termination,checksum,expiration"
CHECKSUMS = {"sha1": hashlib.sha1, "md5": hashlib.md5, "sha256": hashlib.sha256}
OFFSET_TYPE = "application/offset+octet-stream"
EXPIRY = dt.timedelta(days=1)
READ_CHUNK = 1 << 20
NO_SPACE = "not enough space on the server"


def _headers(**extra: str) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store", **extra}


def parse_metadata(raw: str) -> dict[str, str]:
    """``key base64value,key2 base64value2`` → dict; bad encoding is a 400."""
    out: dict[str, str] = {}
    if len(raw) > 8192:
        raise errors.InvalidRequest("Upload-Metadata too long")
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        key, _, value = pair.partition(" ")
        try:
            out[key] = base64.b64decode(value, validate=True).decode("utf-8") if value else ""
        except (binascii.Error, UnicodeDecodeError):
            raise errors.InvalidRequest(f"Upload-Metadata: {key} is not base64 UTF-8") from None
    return out


def _upload_path(request: web.Request, upload_id: str) -> Path:
    return request.app[CATALOG].settings.uploads_dir / upload_id


def _check_version(request: web.Request) -> None:
    v = request.headers.get("Tus-Resumable")
    if v is not None and v != TUS_VERSION:
        raise web.HTTPPreconditionFailed(headers={"Tus-Version": TUS_VERSION})


async def options(request: web.Request) -> web.Response:
    settings = request.app[CATALOG].settings
    return web.Response(status=204, headers={
        "Tus-Resumable": TUS_VERSION, "Tus-Version": TUS_VERSION, "Tus-Extension": EXTENSIONS,
        "Tus-Max-Size": str(settings.upload_max_bytes),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUMS)})


def _int_header(request: web.Request, name: str) -> int:
    raw = request.headers.get(name, "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        raise errors.InvalidRequest(f"{name} header must be a non-negative integer")
    return int(raw)


async def create(request: web.Request) -> web.Response:
    _check_version(request)
    principal = await require_user(request)
    if "Upload-Defer-Length" in request.headers:
        raise errors.InvalidRequest("Upload-Defer-Length is not supported")
    length = _int_header(request, "Upload-Length")
    settings = request.app[CATALOG].settings
    if length > settings.upload_max_bytes:
        raise errors.TooLarge("upload exceeds the size limit",
                              {"limit": settings.upload_max_bytes})
    meta = parse_metadata(request.headers.get("Upload-Metadata", ""))
    filename = os.path.basename(meta.get("filename", "").replace("\\", "/")).strip()
    if not filename or len(filename) > 255 or "\x00" in filename:
        raise errors.InvalidRequest("Upload-Metadata needs a filename (1-255 characters)")
    raw_project = meta.get("project_id", "")
    if not (raw_project.isascii() and raw_project.isdigit()) or len(raw_project) > 18:
        raise errors.InvalidRequest("Upload-Metadata needs a numeric project_id")
    project_id = int(raw_project)
    await require_project_role(request, project_id, "contributor")
    available = await asyncio.to_thread(available_bytes, settings.uploads_dir,
                                        settings.disk_reserve_bytes)
    if length > available:
        raise errors.InsufficientStorage(NO_SPACE, {"length": length, "available": available})
    name = (meta.get("name") or filename)[:255]
    upload_id = security.new_token(18)
    path = _upload_path(request, upload_id)
    expires = dt.datetime.now(dt.UTC) + EXPIRY
    pool = request.app[DB_POOL]
    # Row first, then file: another process sweeping orphan files at start-up
    # lists files before rows, so it never takes a new upload's file for one.
    await pool.execute(
        """INSERT INTO uploads (id, user_id, project_id, filename, length, metadata, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        upload_id, principal.user_id, project_id, filename, length, {"name": name}, expires)
    try:
        await asyncio.to_thread(_create_file, path)
    except BaseException:
        await asyncio.shield(pool.execute("DELETE FROM uploads WHERE id = $1", upload_id))
        raise
    resp = web.Response(status=201, headers=_headers(
        Location=f"/api/uploads/{upload_id}", **{"Upload-Expires": _http_date(expires)}))
    if length == 0:
        await _complete(request, upload_id, principal)
    return resp


def _http_date(when: dt.datetime) -> str:
    return when.strftime("%a, %d %b %Y %H:%M:%S GMT")


def available_bytes(directory: Path, reserve: int) -> int:
    """Blocking: bytes that may still be written under `directory`, keeping `reserve` free."""
    directory.mkdir(parents=True, exist_ok=True)
    return max(0, shutil.disk_usage(directory).free - reserve)


class _NoSpace(Exception):
    """A chunk could not be written: the disk is full or the reserve is reached."""


def _write(fh: BinaryIO, chunk: bytes, reserve: int) -> None:
    """Blocking: write all of `chunk` or raise _NoSpace (then nothing of it counts)."""
    if reserve and shutil.disk_usage(os.path.dirname(fh.name)).free - len(chunk) < reserve:
        raise _NoSpace
    view = memoryview(chunk)
    try:
        while view:
            n = fh.write(view)
            view = view[n or 0:]
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _NoSpace from None
        raise


def _create_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(exist_ok=False)


async def _load(request: web.Request) -> tuple[asyncpg.Record, Principal]:
    """The caller's own upload (admins: any), else 404."""
    principal = await require_user(request)
    upload_id = request.match_info["upload_id"]
    if len(upload_id) > 64:
        raise errors.NotFound("upload not found")
    row = await request.app[DB_POOL].fetchrow(
        """SELECT u.*, COALESCE((SELECT max(id) FROM jobs j WHERE j.upload_id = u.id),
                                (SELECT max(id) FROM jobs j WHERE j.image_id = u.image_id))
                       AS job_id
           FROM uploads u WHERE u.id = $1""", upload_id)
    if row is None or (row["user_id"] != principal.user_id and not principal.is_admin):
        raise errors.NotFound("upload not found")
    return row, principal


async def head(request: web.Request) -> web.Response:
    _check_version(request)
    row, _ = await _load(request)
    return web.Response(status=200, headers=_headers(**{
        "Upload-Offset": str(row["offset"]), "Upload-Length": str(row["length"]),
        "Upload-Expires": _http_date(row["expires_at"])}))


async def state(request: web.Request) -> web.Response:
    row, _ = await _load(request)
    doc = {k: row[k] for k in ("id", "filename", "length", "offset", "project_id", "image_id",
                               "job_id", "completed_at", "expires_at")}
    if (row["completed_at"] is None and row["offset"] == row["length"]
            and msi_uploads.half(row["filename"]) is not None):
        doc["waiting_for"] = msi_uploads.waiting_for(row["filename"])
    return json_response(doc)


def _checksum(request: web.Request) -> tuple[Any, bytes] | None:
    raw = request.headers.get("Upload-Checksum")
    if raw is None:
        return None
    algo, _, value = raw.strip().partition(" ")
    if algo not in CHECKSUMS:
        raise errors.InvalidRequest("unsupported checksum algorithm",
                                    {"supported": list(CHECKSUMS)})
    try:
        expected = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise errors.InvalidRequest("Upload-Checksum value is not base64") from None
    return CHECKSUMS[algo](), expected


def _open_at(path: Path, offset: int) -> BinaryIO:
    # Unbuffered: a failed write must not leave bytes in a buffer that a later
    # flush would try (and fail) to write again.
    fh = open(path, "r+b", buffering=0)
    fh.truncate(offset)  # drop bytes a broken earlier PATCH may have left past the offset
    fh.seek(offset)
    return fh


def _finish(fh: BinaryIO, keep: int) -> None:
    fh.truncate(keep)
    os.fsync(fh.fileno())
    fh.close()


async def patch(request: web.Request) -> web.Response:
    _check_version(request)
    row, principal = await _load(request)
    if row["project_id"] is not None and row["completed_at"] is None:
        # Still allowed to add images there?  (A removed member's upload stops.)
        await require_project_role(request, row["project_id"], "contributor")
    if request.content_type != OFFSET_TYPE:
        return error_response(415, f"Content-Type must be {OFFSET_TYPE}")
    # The lock is in PostgreSQL: the other PATCHes of this upload may be on other processes.
    async with holding(request.app[UPLOAD_LOCKS], row["id"]) as conn:
        return await _patch_locked(request, conn, row["id"], principal)


async def _patch_locked(request: web.Request, conn: asyncpg.Connection, upload_id: str,
                        principal: Principal) -> web.Response:
    row = await conn.fetchrow('SELECT length, "offset", completed_at FROM uploads WHERE id = $1',
                              upload_id)
    if row is None:
        raise errors.NotFound("upload not found")
    offset = _int_header(request, "Upload-Offset")
    if offset != row["offset"]:
        return error_response(409, "Upload-Offset does not match the upload",
                              {"offset": row["offset"]})
    length = row["length"]
    declared = request.content_length
    if declared is not None and offset + declared > length:
        raise errors.TooLarge("body goes past Upload-Length", {"length": length})
    check = _checksum(request)
    path = _upload_path(request, upload_id)
    reserve = request.app[CATALOG].settings.disk_reserve_bytes
    fh = await asyncio.to_thread(_open_at, path, offset)
    written, broken, too_long, full = 0, False, False, False
    stalled: errors.RequestTimeout | None = None
    try:
        async for chunk in body_chunks(request, READ_CHUNK):
            if offset + written + len(chunk) > length:
                too_long = True
                break
            if check is not None:
                check[0].update(chunk)
            await asyncio.to_thread(_write, fh, chunk, reserve)
            written += len(chunk)
    except _NoSpace:
        full = True
    except errors.RequestTimeout as exc:
        stalled = exc
    except (asyncio.CancelledError, Exception) as exc:
        # The client went away mid-chunk: keep what arrived (unless it must be
        # verified by a checksum) so that HEAD + PATCH can resume from there.
        broken = True
        if isinstance(exc, asyncio.CancelledError):
            keep = offset if check is not None else offset + written
            await asyncio.shield(_commit(conn, fh, upload_id, offset, keep))
            raise
    bad_sum = check is not None and not (broken or full) and check[0].digest() != check[1]
    partial = broken or full or stalled is not None
    keep = offset if (too_long or bad_sum or (partial and check is not None)) else offset + written
    if not await _commit(conn, fh, upload_id, offset, keep):
        return error_response(409, "the upload moved on under this request; HEAD and resume",
                              {"offset": None})
    if full:
        log.warning("upload %s: disk full at offset %d", upload_id, keep)
        resp = error_response(507, NO_SPACE, {"offset": keep})
        resp.headers.update(_headers(**{"Upload-Offset": str(keep)}))
        return resp
    if stalled is not None:
        raise stalled
    if too_long:
        raise errors.TooLarge("body goes past Upload-Length", {"length": length})
    if bad_sum:
        return error_response(460, "checksum mismatch")
    if keep == length:
        await _complete(request, upload_id, principal)
    return web.Response(status=204, headers=_headers(**{"Upload-Offset": str(keep)}))


async def _commit(conn: asyncpg.Connection, fh: BinaryIO, upload_id: str, start: int,
                  keep: int) -> bool:
    await asyncio.to_thread(_finish, fh, keep)
    return await commit_offset(conn, upload_id, start, keep)


async def _complete(request: web.Request, upload_id: str, principal: Principal) -> None:
    """The last byte arrived: a pending image in the project and a conversion job."""
    pool = request.app[DB_POOL]
    # Workers may run with another working directory: store an absolute path.
    path = await asyncio.to_thread(_upload_path(request, upload_id).resolve)
    async with pool.acquire() as conn, conn.transaction():
        await msi_uploads.take_turns(conn, upload_id)
        up = await conn.fetchrow("SELECT * FROM uploads WHERE id = $1 FOR UPDATE", upload_id)
        if up is None or up["completed_at"] is not None:
            return
        if not await upload_files.may_complete(conn, up):
            raise errors.Forbidden("you can no longer add images to this project")
        extra: list[str] = []
        done = [upload_id]
        parts = msi_uploads.half(up["filename"])
        if parts is not None:
            # One half of an imzML pair: an image once both halves are here.
            other = await msi_uploads.partner(conn, up)
            if other is None:
                return
            other_path = str(await asyncio.to_thread(_upload_path(request, other["id"]).resolve))
            if parts[1] == msi_uploads.IBD:  # the .imzML is the source, the .ibd its extra
                up, other, path, other_path = other, up, Path(other_path), str(path)
            extra, done = [other_path], [up["id"], other["id"]]
        upload_id = up["id"]
        image_id = await images.create_pending(
            conn, name=up["metadata"].get("name") or up["filename"],
            source_filename=up["filename"], owner_id=up["user_id"],
            project_id=up["project_id"])
        await jobs.enqueue(conn, image_id=image_id, source_path=str(path),
                           project_id=up["project_id"], user_id=up["user_id"],
                           upload_id=upload_id, delete_source=True, extra_paths=extra)
        await conn.execute("UPDATE uploads SET completed_at = now(), image_id = $2"
                           " WHERE id = ANY($1)", done, image_id)
        await images.log_activity(conn, "upload.complete", user_id=principal.user_id,
                                  image_id=image_id, project_id=up["project_id"],
                                  detail={"filename": up["filename"], "bytes": up["length"]})


async def terminate(request: web.Request) -> web.Response:
    _check_version(request)
    row, _ = await _load(request)
    if row["completed_at"] is not None:
        raise errors.Conflict("the upload is complete and being converted")
    async with holding(request.app[UPLOAD_LOCKS], row["id"]) as conn:
        await conn.execute("DELETE FROM uploads WHERE id = $1", row["id"])
        await asyncio.to_thread(_upload_path(request, row["id"]).unlink, True)
    return web.Response(status=204, headers=_headers())


def routes() -> list[web.RouteDef]:
    return [
        web.options("/api/uploads", options),
        web.post("/api/uploads", create),
        web.get("/api/uploads/{upload_id}", state, allow_head=False),
        web.head("/api/uploads/{upload_id}", head),
        web.patch("/api/uploads/{upload_id}", patch),
        web.delete("/api/uploads/{upload_id}", terminate),
    ]


async def remove_expired(pool: asyncpg.Pool, uploads_dir: Path) -> int:
    """Forget unfinished uploads past their expiry and delete their bytes."""
    rows = await pool.fetch("DELETE FROM uploads WHERE completed_at IS NULL"
                            " AND expires_at < now() RETURNING id")
    for r in rows:
        await asyncio.to_thread((uploads_dir / r["id"]).unlink, True)
    return len(rows)

