"""Conversion jobs: the real converter in real worker processes, crashes included."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
import tifffile
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient
from tusclient import client as tus_client

from microtome.catalog import images, jobs, storage
from microtome.catalog.db import create_pool
from microtome.catalog.state import CATALOG
from microtome.catalog.worker import WorkerPool
from microtome.core.settings import Settings
from microtome.pyramid.reader import open_pyramid
from tests.catalog.conftest import ClientFactory, make_app, make_settings
from tests.catalog.helpers import Actor, call, create_user, setup_admin

#: Upper bound for one conversion in these tests (2 shared cores).
DEADLINE_S = 120


async def _wait_job(fetch: Any, job_id: int, until: tuple[str, ...]) -> asyncpg.Record:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        row = await fetch(job_id)
        if row["status"] in until:
            return row
        assert time.monotonic() < deadline, f"job {job_id} stuck in {row['status']}"
        await asyncio.sleep(0.1)


@pytest.fixture
async def worker_client(aiohttp_client: ClientFactory, tmp_path: Path,
                        database_url: str) -> TestClient:
    settings = make_settings(tmp_path, database_url, job_workers=1)
    return await aiohttp_client(make_app(settings, tiles=True), cookie_jar=DummyCookieJar())


async def _upload(client: TestClient, key: str, src: Path, project_id: int) -> str:
    up = tus_client.TusClient(str(client.make_url("/api/uploads")),
                              headers={"Authorization": f"Bearer {key}"}).uploader(
        str(src), chunk_size=512 * 1024,
        metadata={"filename": src.name, "project_id": str(project_id)})
    await asyncio.to_thread(up.upload)
    return str(up.url).rsplit("/", 1)[1]


async def test_upload_convert_view_share(worker_client: TestClient, testdata: Path) -> None:
    """The issue's story: log in, create a project, upload CMU-1-Small-Region.svs through
    tus, watch the job finish, open the image; an outsider cannot; a share link can."""
    client = worker_client
    settings = client.app[CATALOG].settings
    admin = await setup_admin(client)
    alice = await create_user(client, admin, "alice")
    outsider = await create_user(client, admin, "olga")
    _, project = await call(client, alice, "POST", "/api/projects", {"name": "Cases"},
                            expect=201)
    _, key = await call(client, alice, "POST", "/api/api-keys", {"name": "up"}, expect=201)
    upload_id = await _upload(client, key["key"], testdata / "CMU-1-Small-Region.svs",
                              project["id"])
    _, state = await call(client, alice, "GET", f"/api/uploads/{upload_id}", expect=200)
    job_id, image_id = state["job_id"], state["image_id"]

    progress: list[float] = []

    async def fetch(jid: int) -> dict[str, Any]:
        _, job = await call(client, alice, "GET", f"/api/jobs/{jid}", expect=200)
        progress.append(job["progress"])
        return job

    job = await _wait_job(fetch, job_id, ("done", "failed"))
    assert job["status"] == "done", job
    assert job["progress"] == 1.0 and progress == sorted(progress)
    _, image = await call(client, alice, "GET", f"/api/images/{image_id}", expect=200)
    assert (image["status"], image["width"], image["height"]) == ("ready", 2220, 2967)
    assert image["format"] == "svs" and image["levels"] >= 3
    assert image["checksum"].startswith("sha256:")
    assert abs(image["pixel_size_um"] - 0.499) < 1e-3
    # The upload is cleaned up once converted.
    assert not (settings.uploads_dir / upload_id).exists()
    resp = await client.get(f"/dzi/{image_id}_files/12/0_0.jpg",
                            headers={"Cookie": f"microtome_session={alice.cookie}"})
    assert resp.status == 200 and (await resp.read())[:2] == b"\xff\xd8"
    status, _ = await call(client, outsider, "GET", f"/api/images/{image_id}")
    assert status == 404
    status, _ = await call(client, outsider, "GET", f"/dzi/{image_id}.dzi")
    assert status == 404
    _, link = await call(client, alice, "POST", "/api/share-links",
                         {"image_id": image_id, "expires_in": 600}, expect=201)
    status, _ = await call(client, Actor("anon"), "GET", f"/dzi/{image_id}~{link['token']}.dzi")
    assert status == 200


async def test_failed_conversion_says_why(worker_client: TestClient, testdata: Path) -> None:
    client = worker_client
    settings = client.app[CATALOG].settings
    admin = await setup_admin(client)
    _, project = await call(client, admin, "POST", "/api/projects", {"name": "P"}, expect=201)
    _, key = await call(client, admin, "POST", "/api/api-keys", {"name": "up"}, expect=201)
    upload_id = await _upload(client, key["key"], testdata / "notanimage.txt", project["id"])
    _, state = await call(client, admin, "GET", f"/api/uploads/{upload_id}", expect=200)

    async def fetch(jid: int) -> dict[str, Any]:
        return (await call(client, admin, "GET", f"/api/jobs/{jid}", expect=200))[1]

    job = await _wait_job(fetch, state["job_id"], ("done", "failed"))
    assert job["status"] == "failed" and job["attempts"] == 1
    assert job["error"] and "/" not in job["error"] and "\n" not in job["error"]
    _, image = await call(client, admin, "GET", f"/api/images/{state['image_id']}", expect=200)
    assert image["status"] == "failed"
    # The original is kept until the image is ready (a retry starts from it)...
    assert (settings.uploads_dir / upload_id).exists()
    assert not (settings.images_dir / str(state["image_id"])).exists()
    # ...stays while the image is in the trash, and goes when it is purged.
    await call(client, admin, "DELETE", f"/api/images/{state['image_id']}", expect=204)
    assert (settings.uploads_dir / upload_id).exists()
    _, trash = await call(client, admin, "GET", "/api/trash", expect=200)
    await call(client, admin, "DELETE", f"/api/trash/{trash['items'][0]['id']}", expect=204)
    assert not (settings.uploads_dir / upload_id).exists()


def _big_tiff(path: Path, side: int = 12288, tile: int = 512) -> None:
    """A large tiled RGB TIFF written tile by tile (the conversion must take a while)."""
    yy, xx = np.mgrid[0:tile, 0:tile]

    def tiles() -> Any:
        for ty in range(side // tile):
            for tx in range(side // tile):
                yield np.stack([(xx + tx * 7) % 256, (yy + ty * 13) % 256, (xx ^ yy) % 256],
                               axis=-1).astype(np.uint8)

    tifffile.imwrite(path, tiles(), shape=(side, side, 3), dtype="uint8", photometric="rgb",
                     tile=(tile, tile))


def _fresh(path: Path, since: float) -> bool:
    try:
        return path.stat().st_ctime >= since
    except FileNotFoundError:
        return False


async def _kill_mid_conversion(wp: WorkerPool, partial: Path, since: float) -> None:
    """SIGKILL the worker while the converter is writing ``*.partial`` (a fresh one, not
    the leftover of an earlier killed attempt)."""
    deadline = time.monotonic() + DEADLINE_S
    while not await asyncio.to_thread(_fresh, partial, since):
        assert time.monotonic() < deadline, "conversion never started"
        await asyncio.sleep(0.01)
    (pid,) = wp.pids()
    os.kill(pid, signal.SIGKILL)
    await asyncio.to_thread(wp.procs[0].join, 10)


async def test_sigkilled_worker_leaves_nothing_half_done(tmp_path: Path,
                                                         database_url: str) -> None:
    settings: Settings = make_settings(tmp_path, database_url)
    src = tmp_path / "big.tif"
    await asyncio.to_thread(_big_tiff, src)
    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            image_id = await images.create_pending(conn, name="big", source_filename="big.tif",
                                                   owner_id=None, project_id=None)
            job_id = await jobs.enqueue(conn, image_id=image_id, source_path=str(src))
        dst = settings.images_dir / str(image_id) / storage.STORE_NAME

        def partial(attempt: int) -> Path:
            """Every attempt writes in its own folder."""
            return dst.parent / f".attempt-{attempt}" / (storage.STORE_NAME + ".partial")

        async def fetch(jid: int) -> asyncpg.Record:
            return await pool.fetchrow("SELECT * FROM jobs WHERE id = $1", jid)

        # 1. The whole server dies (no supervisor left) in the middle of a conversion.
        first = WorkerPool(database_url, settings, 1, db=pool)
        since = time.time() - 1  # ctime granularity
        await first.start()
        first._stopping = True  # supervisor off: nobody notices the death
        await _kill_mid_conversion(first, partial(1), since)
        assert not dst.exists() and partial(1).exists()
        row = await fetch(job_id)
        assert row["status"] == "running"
        assert await pool.fetchval("SELECT status FROM images WHERE id = $1",
                                   image_id) == "converting"
        # 2. Start-up recovery re-queues it (its worker's pid is gone); the image
        #    follows its job back to waiting.
        assert await jobs.recover_stale(pool) == [job_id]
        assert await pool.fetchval("SELECT status FROM images WHERE id = $1",
                                   image_id) == "pending"
        # 3. A new pool; this time its worker is killed under a live supervisor,
        #    which re-queues the job and starts a fresh worker.
        second = WorkerPool(database_url, settings, 1, db=pool)
        await asyncio.sleep(1.1)  # so the leftover partial is older than `since`
        since = time.time()
        await second.start()
        try:
            await _kill_mid_conversion(second, partial(2), since)
            row = await _wait_job(fetch, job_id, ("done", "failed"))
        finally:
            await second.stop()
        assert row["status"] == "done", row["error"]
        assert row["attempts"] == 3
        img = await pool.fetchrow("SELECT * FROM images WHERE id = $1", image_id)
        assert (img["status"], img["width"], img["height"]) == ("ready", 12288, 12288)
        assert dst.is_dir() and not partial(3).exists()
        assert sorted(p.name for p in dst.parent.iterdir()) == [storage.STORE_NAME]
        pyr = open_pyramid(dst)
        assert (pyr.meta.width, pyr.meta.height) == (12288, 12288)
        assert src.exists()  # imports keep their source; only uploads are removed
    finally:
        await pool.close()


async def test_recover_stale_only_takes_orphans(database_url: str) -> None:
    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            ids = [await jobs.enqueue(conn, image_id=await images.create_pending(
                conn, name=f"i{n}", source_filename="", owner_id=None, project_id=None),
                source_path="/x") for n in range(3)]
        await pool.execute(
            "UPDATE jobs SET status = 'running', worker = 'elsewhere:1:0', heartbeat_at = "
            "now() - interval '10 minutes' WHERE id = $1", ids[0])
        await pool.execute(
            "UPDATE jobs SET status = 'running', worker = 'elsewhere:1:0', heartbeat_at = "
            "now() WHERE id = $1", ids[1])
        assert await jobs.recover_stale(pool) == [ids[0]]
        statuses = [await pool.fetchval("SELECT status FROM jobs WHERE id = $1", i)
                    for i in ids]
        assert statuses == ["queued", "running", "queued"]
        # Two workers never take the same job.
        async with pool.acquire() as a, pool.acquire() as b:
            got = await asyncio.gather(jobs.claim(a, "w:1:0"), jobs.claim(b, "w:2:0"))
        assert sorted(r["id"] for r in got if r) == sorted([ids[0], ids[2]])
    finally:
        await pool.close()


def test_workers_exit_when_their_server_is_killed(tmp_path: Path, database_url: str) -> None:
    import subprocess
    import sys

    code = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from microtome.catalog.worker import WorkerPool\n"
        "from microtome.core.settings import Settings\n"
        "async def main():\n"
        "    wp = WorkerPool(sys.argv[1], Settings(var_dir=Path(sys.argv[2])), 1)\n"
        "    await wp.start()\n"
        "    print(wp.pids()[0], flush=True)\n"
        "    await asyncio.sleep(600)\n"
        "asyncio.run(main())\n")
    repo = Path(__file__).resolve().parents[2]
    server = subprocess.Popen([sys.executable, "-c", code, database_url, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True, cwd=repo)
    try:
        assert server.stdout is not None
        worker = int(server.stdout.readline())
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(worker, signal.SIGKILL)
            raise AssertionError("worker outlived its server")
    finally:
        if server.poll() is None:
            server.kill()


async def test_transient_failures_retry_then_fail(database_url: str) -> None:
    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            image_id = await images.create_pending(conn, name="t", source_filename="",
                                                   owner_id=None, project_id=None)
            job_id = await jobs.enqueue(conn, image_id=image_id, source_path="/x")
            outcomes = []
            for _ in range(3):
                # Make a delayed retry runnable now instead of waiting for it.
                await conn.execute("UPDATE jobs SET run_after = now() WHERE id = $1", job_id)
                job = await jobs.claim(conn, "w:1:0")
                assert job is not None and job["id"] == job_id
                outcomes.append(await jobs.fail(conn, job, "disk hiccup", transient=True))
                row = await conn.fetchrow("SELECT status, run_after > now() AS later,"
                                          " attempts FROM jobs WHERE id = $1", job_id)
                if row["status"] == "queued":
                    assert row["later"]  # backs off before the next attempt
            assert outcomes == ["queued", "queued", "failed"]
            assert row["attempts"] == 3
            assert await conn.fetchval("SELECT status FROM images WHERE id = $1",
                                       image_id) == "failed"
            # A permanent error (bad input) fails at once.
            other = await jobs.enqueue(conn, image_id=await images.create_pending(
                conn, name="u", source_filename="", owner_id=None, project_id=None),
                source_path="/y")
            job = await jobs.claim(conn, "w:1:0")
            assert job is not None and job["id"] == other
            assert await jobs.fail(conn, job, "not an image", transient=False) == "failed"
    finally:
        await pool.close()
