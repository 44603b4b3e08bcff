"""Conversion workers: separate processes that take jobs from the PostgreSQL queue.

`WorkerPool` (in the `serve` or `import` process) spawns the processes,
re-queues the job of a worker that died (even SIGKILL) and starts a new
one.  Each worker claims a job, runs ``converters.convert`` in a thread of
its own process while it reports progress and heartbeats, and records the
result.  The image becomes 'ready' in the same transaction that marks the
job done, and the converter writes the pyramid atomically, so a crash at any
point leaves either nothing or a complete image — never a half-registered
one; a re-run starts from an empty image directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import asyncpg

from catalog import jobs
from catalog.db import connect
from catalog.images import mark_ready
from catalog.storage import STORE_NAME
from core.settings import Settings
from pyramid import errors

log = logging.getLogger("catalog.worker")
#: Seconds between queue polls when no NOTIFY arrives (missed notifications).
POLL_S = 5.0
#: Seconds between heartbeats / progress writes of a running job.
BEAT_S = 1.0
#: Seconds between sweeps for jobs whose worker vanished without a trace.
RECOVER_EVERY_S = 30


# --------------------------------------------------------------------------- worker side

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            h.update(block)
    return "sha256:" + h.hexdigest()


def run_conversion(src: Path, image_dir: Path, options: dict[str, Any] | None,
                   progress: Any, extra: list[Path] | None = None) -> tuple[Any, str]:
    """Blocking: convert `src` (plus the rest of its series) into
    ``image_dir/image.ome.zarr``; (result, checksum of the first file)."""
    for path in [src, *(extra or [])]:
        if not path.is_file():
            raise errors.SourceError("the source file is gone")
    checksum = _sha256(src)
    # Whatever an earlier, interrupted attempt left here is garbage.
    shutil.rmtree(image_dir, ignore_errors=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    # Imported here: the web process never loads the converter stack.
    from converters import ConvertOptions, convert

    try:
        opts = ConvertOptions(**options) if options else None
        if opts is not None:
            opts.validate()
    except (TypeError, ValueError) as exc:
        raise errors.SourceError(f"bad conversion options: {exc}") from None
    # Multi-file formats (MRXS...) arrive as a zip; the converter opens zips itself.
    source: Path | list[Path] = [src, *extra] if extra else src
    result = convert(source, image_dir / STORE_NAME, opts, progress=progress)
    return result, checksum


def _cleanup_source(src: Path) -> None:
    src.unlink(missing_ok=True)


async def process_job(conn: asyncpg.Connection, job: asyncpg.Record, name: str,
                      images_dir: Path) -> str:
    """Run one claimed job to its end; returns the job's new status."""
    src, image_id = Path(job["source_path"]), job["image_id"]
    if image_id is None:  # the image was deleted after the job was queued
        await conn.execute("UPDATE jobs SET status = 'cancelled', finished_at = now()"
                           " WHERE id = $1", job["id"])
        return "cancelled"
    image_dir = images_dir / str(image_id)
    latest: list[float | None] = [None]

    def on_progress(p: Any) -> None:
        latest[0] = float(getattr(p, "fraction", p))

    task = asyncio.ensure_future(asyncio.to_thread(
        run_conversion, src, image_dir, job["options"], on_progress,
        [Path(p) for p in job["extra_paths"]]))
    while not task.done():
        await asyncio.wait({task}, timeout=BEAT_S)
        with contextlib.suppress(asyncpg.PostgresError, OSError):
            await jobs.heartbeat(conn, job["id"], name, latest[0])
    try:
        result, checksum = task.result()
    except errors.SourceError as exc:
        status = await jobs.fail(conn, job, exc.message or "cannot read the source", False)
    except Exception:
        log.exception("job %s failed", job["id"])
        status = await jobs.fail(conn, job, "conversion failed (internal error)", True)
    else:
        status = await _record_success(conn, job, result, checksum, image_dir)
    if status == "failed":
        await asyncio.to_thread(shutil.rmtree, image_dir, True)
    if job["delete_source"] and status in ("done", "failed"):
        await asyncio.to_thread(_cleanup_source, src)
    return status


async def _record_success(conn: asyncpg.Connection, job: asyncpg.Record, result: Any,
                          checksum: str, image_dir: Path) -> str:
    async with conn.transaction():
        alive = await conn.fetchval("SELECT 1 FROM images WHERE id = $1 FOR UPDATE",
                                    job["image_id"])
        mine = await conn.fetchval(
            "SELECT 1 FROM jobs WHERE id = $1 AND status = 'running' AND worker = $2",
            job["id"], job["worker"])
        if alive and mine:
            await mark_ready(conn, job["image_id"], result, checksum)
        await conn.execute(
            """UPDATE jobs SET status = CASE WHEN $2 THEN 'done' ELSE 'cancelled' END,
                   progress = 1, error = NULL, finished_at = now()
               WHERE id = $1 AND status = 'running'""", job["id"], bool(alive))
    if not alive:
        await asyncio.to_thread(shutil.rmtree, image_dir, True)
        return "cancelled"
    return "done"


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    """A worker whose server died (even SIGKILL) stops instead of lingering."""
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning("server process %s is gone; worker exiting", parent)
            stop.set()
            return
        await asyncio.sleep(1.0)


async def worker_loop(dsn: str, images_dir: Path, index: int,
                      stop: asyncio.Event | None = None, parent: int | None = None) -> None:
    name = jobs.worker_name(index)
    stop = stop or asyncio.Event()
    if parent is not None:
        watcher = asyncio.create_task(_watch_parent(parent, stop))
        # A stop request must also interrupt a queue wait or a running job.
        watcher.add_done_callback(lambda _: _cancel_main(main_task))
    main_task = asyncio.current_task()
    while not stop.is_set():
        try:
            await _serve_queue(dsn, images_dir, name, stop)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # The database restarted or is unreachable: back off and reconnect.
            log.warning("worker %s lost the database (%s); reconnecting", name, exc)
            await asyncio.sleep(2.0)


async def _serve_queue(dsn: str, images_dir: Path, name: str, stop: asyncio.Event) -> None:
    conn = await connect(dsn)
    wake = asyncio.Event()
    try:
        await conn.add_listener(jobs.CHANNEL, lambda *_: wake.set())
        while not stop.is_set():
            wake.clear()
            job = await jobs.claim(conn, name)
            if job is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), POLL_S)
                continue
            log.info("worker %s: job %s (image %s)", name, job["id"], job["image_id"])
            await process_job(conn, job, name, images_dir)
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


def _cancel_main(task: asyncio.Task[object] | None) -> None:
    if task is not None and not task.done():
        task.cancel()


def worker_main(dsn: str, images_dir: str, index: int, parent: int | None = None) -> None:
    """Entry point of a worker process (spawned, so nothing is inherited)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(worker_loop(dsn, Path(images_dir), index, parent=parent))


# --------------------------------------------------------------------------- pool side

class WorkerPool:
    """N worker processes, restarted when they die; their jobs re-queued."""

    def __init__(self, dsn: str, settings: Settings, size: int,
                 db: asyncpg.Pool | None = None) -> None:
        self.dsn = dsn
        self.images_dir = settings.images_dir
        self.size = size
        self.db = db
        self._ctx = multiprocessing.get_context("spawn")
        self.procs: list[Any] = [None] * size
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def _name(self, index: int, pid: int) -> str:
        import socket

        return f"{socket.gethostname()}:{pid}:{index}"

    def _spawn(self, index: int) -> Any:
        proc = self._ctx.Process(target=worker_main, name=f"microtome-worker-{index}",
                                 args=(self.dsn, str(self.images_dir), index, os.getpid()),
                                 daemon=True)
        proc.start()
        return proc

    async def start(self) -> None:
        # Workers may run elsewhere in the tree: hand them an absolute path.
        self.images_dir = await asyncio.to_thread(self.images_dir.resolve)
        await asyncio.to_thread(self.images_dir.mkdir, parents=True, exist_ok=True)
        for i in range(self.size):
            self.procs[i] = await asyncio.to_thread(self._spawn, i)
        self._task = asyncio.create_task(self._supervise())

    async def _supervise(self) -> None:
        ticks = 0
        while not self._stopping:
            await asyncio.sleep(1.0)
            ticks += 1
            if ticks % RECOVER_EVERY_S == 0:
                await self._recover_orphans()
            for i, proc in enumerate(self.procs):
                if self._stopping or proc is None or proc.is_alive():
                    continue
                log.warning("conversion worker %s exited (code %s); restarting",
                            proc.pid, proc.exitcode)
                await self._requeue(i, proc.pid)
                self.procs[i] = await asyncio.to_thread(self._spawn, i)

    async def _requeue(self, index: int, pid: int | None) -> None:
        if pid is None:
            return
        try:
            if self.db is not None:
                await jobs.requeue_worker(self.db, self._name(index, pid))
            else:
                conn = await connect(self.dsn)
                try:
                    await jobs.requeue_worker(conn, self._name(index, pid))
                finally:
                    await conn.close()
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("could not re-queue jobs of worker %s: %s", pid, exc)

    async def _recover_orphans(self) -> None:
        """Jobs of workers on other hosts (or of a crashed server) whose heartbeat
        stopped: put them back in the queue."""
        if self.db is None:
            return
        try:
            ids = await jobs.recover_stale(self.db)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("stale job recovery failed: %s", exc)
            return
        if ids:
            log.warning("re-queued orphaned job(s) %s", ids)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p is not None and p.pid is not None]

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for proc in self.procs:
            if proc is not None and proc.is_alive():
                proc.terminate()
        for i, proc in enumerate(self.procs):
            if proc is None:
                continue
            await asyncio.to_thread(proc.join, 10)
            if proc.is_alive():
                proc.kill()
                await asyncio.to_thread(proc.join, 5)
            await self._requeue(i, proc.pid)
        self.procs = [None] * self.size
