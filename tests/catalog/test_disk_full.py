"""A full disk: uploads are refused with 507 (up front and mid-way) and lose nothing;
a conversion fails at once saying why, keeps the original, and can be retried."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient
from tusclient import client as tus_client

from microtome.catalog.state import CATALOG
from tests.catalog.conftest import ClientFactory, make_app, make_settings
from tests.catalog.helpers import Actor, call, setup_admin
from tests.catalog.smallfs import SmallDisk, small_disk

MB = 1024 * 1024


def _meta(**kw: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in kw.items())


@pytest.fixture
def uploads_disk(tmp_path: Path) -> SmallDisk:
    with small_disk(tmp_path / "var" / "uploads", 4 * MB) as disk:
        yield disk  # type: ignore[misc]


@pytest.fixture
async def full_client(aiohttp_client: ClientFactory, tmp_path: Path, database_url: str,
                      uploads_disk: SmallDisk) -> AsyncIterator[TestClient]:
    settings = make_settings(tmp_path, database_url, disk_reserve_bytes=uploads_disk.reserve)
    yield await aiohttp_client(make_app(settings), cookie_jar=DummyCookieJar())


async def test_upload_on_a_full_disk(full_client: TestClient, uploads_disk: SmallDisk) -> None:
    client = full_client
    admin = await setup_admin(client)
    _, key = await call(client, admin, "POST", "/api/api-keys", {"name": "up"}, expect=201)
    _, project = await call(client, admin, "POST", "/api/projects", {"name": "P"}, expect=201)
    auth = {"Authorization": f"Bearer {key['key']}", "Tus-Resumable": "1.0.0"}
    meta = _meta(filename="big.bin", project_id=str(project["id"]))

    # 1. Refused up front: it cannot fit.
    resp = await client.post("/api/uploads", headers={
        **auth, "Upload-Length": str(64 * MB), "Upload-Metadata": meta})
    assert resp.status == 507
    body = await resp.json()
    assert body["error"] == "not enough space on the server"
    assert body["detail"]["length"] == 64 * MB and body["detail"]["available"] <= 4 * MB

    # 2. Fits when created; then something else fills the disk.
    payload = os.urandom(3 * MB)
    resp = await client.post("/api/uploads", headers={
        **auth, "Upload-Length": str(len(payload)), "Upload-Metadata": meta})
    assert resp.status == 201, await resp.text()
    url = resp.headers["Location"]
    filler = uploads_disk.path / "filler"
    filler.write_bytes(b"\0" * (2 * MB))
    patch_headers = {**auth, "Content-Type": "application/offset+octet-stream"}
    resp = await client.patch(url, data=payload, headers={**patch_headers, "Upload-Offset": "0"})
    assert resp.status == 507, await resp.text()
    body = await resp.json()
    assert body["error"] == "not enough space on the server"
    offset = body["detail"]["offset"]
    assert 0 <= offset < len(payload)
    assert int(resp.headers["Upload-Offset"]) == offset
    # What was committed is on disk, byte for byte, and HEAD agrees.
    upload_file = uploads_disk.path / url.rsplit("/", 1)[1]
    assert upload_file.read_bytes() == payload[:offset]
    resp = await client.head(url, headers=auth)
    assert int(resp.headers["Upload-Offset"]) == offset

    # 3. Space is freed: the client resumes from the committed offset and completes.
    filler.unlink()
    resp = await client.patch(url, data=payload[offset:],
                              headers={**patch_headers, "Upload-Offset": str(offset)})
    assert resp.status == 204, await resp.text()
    assert int(resp.headers["Upload-Offset"]) == len(payload)
    _, state = await call(client, admin, "GET", url, expect=200)
    assert state["job_id"] is not None and state["completed_at"] is not None
    assert hashlib.sha256(upload_file.read_bytes()).digest() == \
        hashlib.sha256(payload).digest()
    assert client.app[CATALOG].settings.uploads_dir == uploads_disk.path


@pytest.fixture
def images_disk(tmp_path: Path) -> SmallDisk:
    with small_disk(tmp_path / "var" / "images", 512 * 1024) as disk:
        yield disk  # type: ignore[misc]


async def _wait_job(client: TestClient, admin: Actor, job_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        _, job = await call(client, admin, "GET", f"/api/jobs/{job_id}", expect=200)
        if job["status"] in ("done", "failed"):
            return job  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"job stuck in {job['status']}"
        await asyncio.sleep(0.2)


async def test_conversion_on_a_full_disk_keeps_the_original_for_a_retry(
        database_url: str, aiohttp_client: ClientFactory, tmp_path: Path,
        images_disk: SmallDisk, testdata: Path) -> None:
    # Without a real small filesystem, a reserve above the free space stands in for it.
    reserve = 0 if images_disk.real else shutil.disk_usage(images_disk.path).free + 2**40
    settings = make_settings(tmp_path, database_url, job_workers=1,
                             disk_reserve_bytes=reserve)
    client = await aiohttp_client(make_app(settings), cookie_jar=DummyCookieJar())
    admin = await setup_admin(client)
    _, project = await call(client, admin, "POST", "/api/projects", {"name": "P"}, expect=201)
    _, key = await call(client, admin, "POST", "/api/api-keys", {"name": "up"}, expect=201)
    src = testdata / "CMU-1-Small-Region.svs"
    up = tus_client.TusClient(str(client.make_url("/api/uploads")),
                              headers={"Authorization": f"Bearer {key['key']}"}).uploader(
        str(src), chunk_size=1024 * 1024,
        metadata={"filename": src.name, "project_id": str(project["id"])})
    await asyncio.to_thread(up.upload)
    upload_id = str(up.url).rsplit("/", 1)[1]
    _, state = await call(client, admin, "GET", f"/api/uploads/{upload_id}", expect=200)
    image_id = state["image_id"]

    job = await _wait_job(client, admin, state["job_id"])
    # Says why, at once: no retries burnt on a disk that will not empty itself.
    assert job["status"] == "failed" and job["attempts"] == 1
    assert "not enough disk space" in job["error"]
    _, image = await call(client, admin, "GET", f"/api/images/{image_id}", expect=200)
    assert image["status"] == "failed" and "not enough disk space" in image["error"]
    original = settings.uploads_dir / upload_id
    assert original.is_file() and original.stat().st_size == src.stat().st_size
    assert not list(images_disk.path.rglob("*.partial"))  # nothing half-written left

    # Space is freed; Retry converts again from the kept original.
    if images_disk.real:
        images_disk.grow(256 * MB)
    _, again = await call(client, admin, "POST", f"/api/images/{image_id}/retry", expect=202)
    assert again["id"] == state["job_id"] and again["status"] == "queued"
    _, image = await call(client, admin, "GET", f"/api/images/{image_id}", expect=200)
    assert image["status"] in ("pending", "converting")  # the worker may be quick
    job = await _wait_job(client, admin, again["id"])
    if not images_disk.real:  # the reserve stays: the same clear failure again
        assert job["status"] == "failed" and "not enough disk space" in job["error"]
        return
    assert job["status"] == "done", job
    _, image = await call(client, admin, "GET", f"/api/images/{image_id}", expect=200)
    assert (image["status"], image["width"], image["height"]) == ("ready", 2220, 2967)
    assert image["error"] is None
    assert not original.exists()  # ready: now the upload goes
    status, body = await call(client, admin, "POST", f"/api/images/{image_id}/retry")
    assert status == 409 and "failed" in body["error"]
