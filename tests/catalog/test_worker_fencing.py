"""Leases: a worker that lost its job publishes nothing; the image follows its job;
workers die with their server even in the middle of a conversion."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

from microtome.catalog import images, jobs, storage
from microtome.catalog.db import create_pool
from microtome.catalog.worker import process_job
from microtome.pyramid.reader import open_pyramid

REPO = Path(__file__).resolve().parents[2]


def _gradient(path: Path, w: int = 1500, h: int = 1000) -> None:
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx % 256, yy % 256, (xx + yy) % 256], axis=-1).astype(np.uint8)
    tifffile.imwrite(path, rgb, photometric="rgb", tile=(256, 256))


async def test_only_the_current_lease_publishes(tmp_path: Path, database_url: str) -> None:
    src = tmp_path / "g.tif"
    await asyncio.to_thread(_gradient, src)
    images_dir = tmp_path / "images"
    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as a, pool.acquire() as b:
            image_id = await images.create_pending(a, name="g", source_filename="g.tif",
                                                   owner_id=None, project_id=None)
            job_id = await jobs.enqueue(a, image_id=image_id, source_path=str(src))
            worker = "somehost:1:0"
            first = await jobs.claim(a, worker)
            assert first is not None and first["attempts"] == 1
            assert await pool.fetchval("SELECT status FROM images WHERE id = $1",
                                       image_id) == "converting"
            # The worker stalls past its heartbeat: the job goes back to the queue,
            # and the image with it.
            await pool.execute("UPDATE jobs SET heartbeat_at = now() - interval '5 minutes'"
                               " WHERE id = $1", job_id)
            assert await jobs.recover_stale(pool) == [job_id]
            assert await pool.fetchval("SELECT status FROM images WHERE id = $1",
                                       image_id) == "pending"
            # Claimed again, even under the same worker name: a new attempt.
            second = await jobs.claim(b, worker)
            assert second is not None and second["attempts"] == 2
            # Both attempts convert at the same time; only the lease holder publishes.
            outcome = await asyncio.gather(process_job(a, first, worker, images_dir),
                                           process_job(b, second, worker, images_dir))
            assert outcome == ["lost", "done"]
            dst = images_dir / str(image_id) / storage.STORE_NAME
            published = dst.stat().st_ino
            # The stalled attempt wakes up again after publication: still nothing.
            assert await process_job(a, first, worker, images_dir) == "lost"
            assert not await jobs.heartbeat(a, first, 0.5)
            assert await jobs.fail(a, first, "late failure", transient=False) == "lost"
        job = await pool.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
        assert (job["status"], job["attempts"], job["error"]) == ("done", 2, None)
        img = await pool.fetchrow("SELECT * FROM images WHERE id = $1", image_id)
        assert (img["status"], img["width"], img["height"]) == ("ready", 1500, 1000)
        assert sorted(p.name for p in dst.parent.iterdir()) == [storage.STORE_NAME]
        assert dst.stat().st_ino == published
        pyr = open_pyramid(dst)
        assert (pyr.meta.width, pyr.meta.height) == (1500, 1000)
    finally:
        await pool.close()


def _big_tiff(path: Path, side: int) -> None:
    tile = 512
    yy, xx = np.mgrid[0:tile, 0:tile]

    def tiles():  # type: ignore[no-untyped-def]
        for ty in range(side // tile):
            for tx in range(side // tile):
                yield np.stack([(xx + tx * 7) % 256, (yy + ty * 13) % 256, (xx ^ yy) % 256],
                               axis=-1).astype(np.uint8)

    tifffile.imwrite(path, tiles(), shape=(side, side, 3), dtype="uint8", photometric="rgb",
                     tile=(tile, tile))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (not reaped yet) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_busy_worker_dies_with_its_server(tmp_path: Path, database_url: str) -> None:
    """SIGKILL the server while its worker converts: the worker stops at once and
    nothing is published behind the catalog's back."""
    src = tmp_path / "big.tif"
    _big_tiff(src, 8192)

    async def enqueue() -> int:
        pool = await create_pool(database_url)
        try:
            async with pool.acquire() as conn:
                image_id = await images.create_pending(
                    conn, name="big", source_filename="big.tif", owner_id=None,
                    project_id=None)
                await jobs.enqueue(conn, image_id=image_id, source_path=str(src))
            return image_id
        finally:
            await pool.close()

    image_id = asyncio.run(enqueue())
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
    server = subprocess.Popen([sys.executable, "-c", code, database_url, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    image_dir = tmp_path / "images" / str(image_id)
    partial = image_dir / ".attempt-1" / (storage.STORE_NAME + ".partial")
    try:
        assert server.stdout is not None
        worker = int(server.stdout.readline())
        deadline = time.monotonic() + 60
        while not partial.exists():
            assert time.monotonic() < deadline, "the conversion never started"
            time.sleep(0.05)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        deadline = time.monotonic() + 3
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        alive = _alive(worker)
        if alive:
            os.kill(worker, signal.SIGKILL)
        assert not alive, "the worker went on converting after its server died"
        time.sleep(1.0)
        assert not list(image_dir.rglob(storage.STORE_NAME)), "published behind our back"
    finally:
        if server.poll() is None:
            server.kill()
