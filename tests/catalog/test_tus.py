"""tus uploads at /api/uploads, driven by the tuspy client and by hand."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient
from tusclient import client as tus_client
from tusclient.uploader import Uploader

from microtome.core.settings import Settings
from tests.catalog.conftest import ClientFactory, make_app, make_settings
from tests.catalog.helpers import Actor, call, create_user, setup_admin

CHUNK = 256 * 1024


def _meta(**kw: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in kw.items())


async def _uploader_world(client: TestClient) -> tuple[Actor, str, int]:
    admin = await setup_admin(client)
    _, key = await call(client, admin, "POST", "/api/api-keys", {"name": "tus"}, expect=201)
    _, p = await call(client, admin, "POST", "/api/projects", {"name": "Uploads"}, expect=201)
    return admin, key["key"], p["id"]


def _tus(client: TestClient, key: str) -> tus_client.TusClient:
    return tus_client.TusClient(str(client.make_url("/api/uploads")),
                                headers={"Authorization": f"Bearer {key}"})


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _row(database_url: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchrow(sql, *args)
    finally:
        await conn.close()


async def test_tuspy_upload_with_checksums_becomes_a_job(
        client: TestClient, settings: Settings, database_url: str, testdata: Path) -> None:
    _, key, project_id = await _uploader_world(client)
    src = testdata / "CMU-1-Small-Region.svs"
    assert src.stat().st_size > 3 * CHUNK
    up = _tus(client, key).uploader(
        str(src), chunk_size=CHUNK, upload_checksum=True,
        metadata={"filename": src.name, "project_id": str(project_id), "name": "CMU small"})
    await asyncio.to_thread(up.upload)
    upload_id = str(up.url).rsplit("/", 1)[1]
    stored = settings.uploads_dir / upload_id
    assert _sha(stored) == _sha(src)
    row = await _row(database_url, "SELECT u.\"offset\", u.length, u.completed_at, u.image_id,"
                     " i.name, i.status, j.status AS job, j.source_path FROM uploads u"
                     " JOIN images i ON i.id = u.image_id JOIN jobs j ON j.upload_id = u.id"
                     " WHERE u.id = $1", upload_id)
    assert row["offset"] == row["length"] == src.stat().st_size
    assert row["completed_at"] is not None
    assert (row["name"], row["status"], row["job"]) == ("CMU small", "pending", "queued")
    assert Path(row["source_path"]) == stored.resolve()
    admin_key = Actor("k", api_key=key)
    _, state = await call(client, admin_key, "GET", f"/api/uploads/{upload_id}", expect=200)
    assert state["image_id"] == row["image_id"] and state["job_id"] is not None


async def test_interrupted_upload_resumes(client: TestClient, settings: Settings,
                                          testdata: Path) -> None:
    _, key, project_id = await _uploader_world(client)
    src = testdata / "CMU-1-Small-Region.svs"
    size = src.stat().st_size
    meta = {"filename": src.name, "project_id": str(project_id)}
    first = _tus(client, key).uploader(str(src), chunk_size=CHUNK, metadata=meta)
    # Stop after two chunks, as a closed laptop would.
    await asyncio.to_thread(first.upload, 2 * CHUNK)
    url = str(first.url)
    path = url.split(str(client.make_url("")).rstrip("/"), 1)[1]

    # Then a PATCH whose connection dies half-way through its body.
    data = src.read_bytes()
    host, port = client.server.host, client.server.port
    _reader, writer = await asyncio.open_connection(host, port)
    sent = CHUNK // 2
    head = (f"PATCH {path} HTTP/1.1\r\nHost: {host}:{port}\r\nTus-Resumable: 1.0.0\r\n"
            f"Authorization: Bearer {key}\r\nUpload-Offset: {2 * CHUNK}\r\n"
            f"Content-Type: application/offset+octet-stream\r\nContent-Length: {CHUNK}\r\n\r\n")
    writer.write(head.encode() + data[2 * CHUNK: 2 * CHUNK + sent])
    await writer.drain()
    # Cut the connection once the server has stored part of the body (bytes
    # still in flight when a connection dies are lost; tus resumes from what
    # the server kept).
    stored = settings.uploads_dir / url.rsplit("/", 1)[1]
    for _ in range(200):
        if stored.stat().st_size > 2 * CHUNK:
            break
        await asyncio.sleep(0.05)
    writer.close()
    await writer.wait_closed()
    offset = -1
    for _ in range(50):  # the server notices the broken body asynchronously
        resp = await client.head(path, headers={"Authorization": f"Bearer {key}",
                                                "Tus-Resumable": "1.0.0"})
        offset = int(resp.headers["Upload-Offset"])
        if offset > 2 * CHUNK:
            break
        await asyncio.sleep(0.1)
    assert 2 * CHUNK < offset <= 2 * CHUNK + sent, offset
    assert resp.headers["Cache-Control"] == "no-store"

    # A new client resumes from the server's offset and finishes.
    # (The constructor asks the server for the offset: not on the event loop.)
    second = await asyncio.to_thread(
        lambda: Uploader(str(src), url=url, client=_tus(client, key), chunk_size=CHUNK))
    assert second.offset == offset
    await asyncio.to_thread(second.upload)
    upload_id = url.rsplit("/", 1)[1]
    assert (settings.uploads_dir / upload_id).read_bytes() == data
    assert second.offset == size


async def test_protocol_errors(client: TestClient, settings: Settings) -> None:
    admin, key, project_id = await _uploader_world(client)
    auth = {"Authorization": f"Bearer {key}", "Tus-Resumable": "1.0.0"}
    resp = await client.options("/api/uploads")
    assert resp.status == 204 and "checksum" in resp.headers["Tus-Extension"]
    assert int(resp.headers["Tus-Max-Size"]) == settings.upload_max_bytes

    async def create(length: int, **meta: str) -> Any:
        return await client.post("/api/uploads", headers={
            **auth, "Upload-Length": str(length), "Upload-Metadata": _meta(**meta)})

    ok = {"filename": "a.tif", "project_id": str(project_id)}
    r = await create(settings.upload_max_bytes + 1, **ok)
    assert r.status == 413 and (await r.json())["error"]
    assert (await create(10, project_id=str(project_id))).status == 400
    assert (await create(10, filename="a.tif")).status == 400
    assert (await create(10, filename="a.tif", project_id="999")).status == 404
    r = await client.post("/api/uploads", headers={**auth, "Upload-Length": "-5",
                                                   "Upload-Metadata": _meta(**ok)})
    assert r.status == 400
    r = await client.post("/api/uploads", headers={**auth, "Upload-Length": "1",
                                                   "Upload-Metadata": "filename !!!"})
    assert r.status == 400
    r = await create(10, **ok)
    assert r.status == 201
    loc = r.headers["Location"]
    octet = {**auth, "Content-Type": "application/offset+octet-stream"}

    async def patch(offset: int, body: bytes, **extra: str) -> Any:
        return await client.patch(loc, data=body,
                                  headers={**octet, "Upload-Offset": str(offset), **extra})

    assert (await patch(3, b"abc")).status == 409                 # offset mismatch
    r = await client.patch(loc, data=b"abc", headers={**auth, "Upload-Offset": "0"})
    assert r.status == 415                                        # wrong content type
    assert (await patch(0, b"x" * 11)).status == 413              # beyond Upload-Length
    bad = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    r = await patch(0, b"abcde", **{"Upload-Checksum": f"sha1 {bad}"})
    assert r.status == 460
    good = base64.b64encode(hashlib.sha256(b"abcde").digest()).decode()
    r = await patch(0, b"abcde", **{"Upload-Checksum": f"sha256 {good}"})
    assert r.status == 204 and r.headers["Upload-Offset"] == "5"
    r = await patch(5, b"x", **{"Upload-Checksum": "crc32 AAAA"})
    assert r.status == 400
    # Someone else's upload does not exist for them.
    bob = await create_user(client, admin, "bob")
    r = await client.head(loc, headers={"Cookie": f"microtome_session={bob.cookie}"})
    assert r.status == 404
    r = await client.head(loc)
    assert r.status == 401
    # Termination removes the file and the upload.
    r = await client.delete(loc, headers=auth)
    assert r.status == 204
    assert (await client.head(loc, headers=auth)).status == 404
    assert list(settings.uploads_dir.iterdir()) == []


async def test_viewer_cannot_upload(client: TestClient) -> None:
    admin, _, project_id = await _uploader_world(client)
    viewer = await create_user(client, admin, "vic")
    await call(client, admin, "PUT", f"/api/projects/{project_id}/members/{viewer.user_id}",
               {"role": "viewer"}, expect=200)
    r = await client.post("/api/uploads", headers={
        "Cookie": f"microtome_session={viewer.cookie}", "X-CSRF-Token": viewer.csrf or "",
        "Upload-Length": "5",
        "Upload-Metadata": _meta(filename="a.tif", project_id=str(project_id))})
    assert r.status == 403
    # Cookie writes need the CSRF header here too.
    r = await client.post("/api/uploads", headers={
        "Cookie": f"microtome_session={admin.cookie}", "Upload-Length": "5",
        "Upload-Metadata": _meta(filename="a.tif", project_id=str(project_id))})
    assert r.status == 403


@pytest.fixture
async def small_limit_client(aiohttp_client: ClientFactory, tmp_path: Path,
                             database_url: str) -> TestClient:
    settings = make_settings(tmp_path, database_url, upload_max_bytes=1000)
    return await aiohttp_client(make_app(settings), cookie_jar=DummyCookieJar())


async def test_configured_size_limit(small_limit_client: TestClient) -> None:
    _, key, project_id = await _uploader_world(small_limit_client)
    r = await small_limit_client.post("/api/uploads", headers={
        "Authorization": f"Bearer {key}", "Upload-Length": "1001",
        "Upload-Metadata": _meta(filename="a.tif", project_id=str(project_id))})
    assert r.status == 413


async def test_expired_unfinished_uploads_are_removed(client: TestClient, settings: Settings,
                                                      database_url: str) -> None:
    from microtome.catalog.db import DB_POOL
    from microtome.catalog.tus import remove_expired

    _, key, project_id = await _uploader_world(client)
    headers = {"Authorization": f"Bearer {key}", "Tus-Resumable": "1.0.0"}
    r = await client.post("/api/uploads", headers={
        **headers, "Upload-Length": "10",
        "Upload-Metadata": _meta(filename="a.tif", project_id=str(project_id))})
    loc = r.headers["Location"]
    upload_id = loc.rsplit("/", 1)[1]
    assert (settings.uploads_dir / upload_id).exists()
    pool = client.app[DB_POOL]
    assert await remove_expired(pool, settings.uploads_dir) == 0
    await pool.execute("UPDATE uploads SET expires_at = now() - interval '1 second'")
    assert await remove_expired(pool, settings.uploads_dir) == 1
    assert not (settings.uploads_dir / upload_id).exists()
    assert (await client.head(loc, headers=headers)).status == 404


async def test_patches_of_one_upload_on_two_processes_take_turns(
        aiohttp_client: ClientFactory, settings: Settings) -> None:
    """Two applications on one database and data directory (two `serve` processes behind
    a balancer): a PATCH arriving on the second while the first still writes waits for
    the first's lock in PostgreSQL, then sees the moved offset (409) instead of writing
    the same bytes again; the upload then resumes on either process."""
    first = await aiohttp_client(make_app(settings), cookie_jar=DummyCookieJar())
    second = await aiohttp_client(make_app(settings), cookie_jar=DummyCookieJar())
    _, key, project_id = await _uploader_world(first)
    auth = {"Authorization": f"Bearer {key}", "Tus-Resumable": "1.0.0"}
    data = bytes(range(256)) * 4096  # 1 MiB
    r = await first.post("/api/uploads", headers={
        **auth, "Upload-Length": str(len(data)),
        "Upload-Metadata": _meta(filename="a.bin", project_id=str(project_id))})
    assert r.status == 201
    loc = r.headers["Location"]
    patch_headers = {**auth, "Content-Type": "application/offset+octet-stream"}
    half = len(data) // 2
    started = asyncio.Event()

    async def slow_body() -> Any:
        for i in range(0, half, 64 * 1024):
            yield data[i:i + 64 * 1024]
            started.set()
            await asyncio.sleep(0.05)

    slow = asyncio.ensure_future(first.patch(loc, data=slow_body(), headers={
        **patch_headers, "Upload-Offset": "0"}))
    await started.wait()
    # The same bytes again, through the other process, while the first PATCH runs.
    late = await second.patch(loc, data=data[:half], headers={
        **patch_headers, "Upload-Offset": "0"})
    assert late.status == 409, await late.text()
    assert slow.done() and (await slow).status == 204
    head = await second.head(loc, headers=auth)
    assert head.headers["Upload-Offset"] == str(half)
    r = await second.patch(loc, data=data[half:], headers={
        **patch_headers, "Upload-Offset": str(half)})
    assert r.status == 204
    upload_id = loc.rsplit("/", 1)[1]
    # The bytes are on the shared data directory, under the upload's id.
    # Complete: the file stays (the conversion job's source) until converted.
    assert (settings.uploads_dir / upload_id).read_bytes() == data
