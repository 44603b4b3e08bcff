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
import ctypes
import errno
import hashlib
import logging
import multiprocessing
import os
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg

from microtome.catalog import jobs, scanner_props, trash
from microtome.catalog.dask_jobs import with_scheduler
from microtome.catalog.db import connect
from microtome.catalog.images import mark_ready
from microtome.catalog.storage import (
    STORE_NAME,
    TILEDB_NAME,
    remote_pyramid,
    storage_relpath,
    store_name,
)
from microtome.converters.publish import publish
from microtome.core.settings import Settings
from microtome.pyramid import errors
from microtome.pyramid.stores import configure as configure_stores

log = logging.getLogger("microtome.catalog.worker")
#: Seconds between queue polls when no NOTIFY arrives (missed notifications).
POLL_S = 5.0
#: Seconds between heartbeats / progress writes of a running job.
BEAT_S = 1.0
#: Seconds between sweeps for jobs whose worker vanished without a trace.
RECOVER_EVERY_S = 30
#: Per-attempt output folders inside an image's directory: ``.attempt-<n>``.
ATTEMPT_PREFIX = ".attempt-"
#: prctl(2) option: signal to receive when the parent dies.
PR_SET_PDEATHSIG = 1


# --------------------------------------------------------------------------- worker side

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            h.update(block)
    return "sha256:" + h.hexdigest()


def attempt_dir(image_dir: Path, attempt: int) -> Path:
    """Where attempt `attempt` writes: its own folder, so a late worker never shares one."""
    return image_dir / f"{ATTEMPT_PREFIX}{attempt}"


def run_conversion(src: Path, out_dir: Path, options: dict[str, Any] | None,
                   progress: Any, extra: list[Path] | None = None,
                   reserve: int = 0, store_format: str = "ome-zarr") -> tuple[Any, str]:
    """Blocking: convert `src` (plus the rest of its series) into
    ``out_dir/image.ome.zarr`` (``out_dir/image.tdb`` for the ``tiledb`` store format:
    the OME-Zarr conversion, transcoded); (result, checksum of the first file)."""
    for path in [src, *(extra or [])]:
        if not path.is_file():
            raise errors.SourceError("the source file is gone")
    checksum = _sha256(src)
    # Whatever an earlier run of this very attempt left here is garbage.
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    if reserve and shutil.disk_usage(out_dir).free < reserve:
        raise errors.DiskFull("free disk space is below the configured reserve")
    # Imported here: the web process never loads the converter stack.
    from microtome.converters import ConvertOptions, convert

    try:
        opts = ConvertOptions(**options) if options else None
        if opts is not None:
            opts.validate()
    except (TypeError, ValueError) as exc:
        raise errors.SourceError(f"bad conversion options: {exc}") from None
    # Multi-file formats (MRXS...) arrive as a zip; the converter opens zips itself.
    source: Path | list[Path] = [src, *extra] if extra else src
    result = convert(source, out_dir / STORE_NAME, opts, progress=progress)
    if store_format == "tiledb":
        from microtome.converters.tiledb_out import transcode

        transcode(out_dir / STORE_NAME, out_dir / TILEDB_NAME, overwrite=True)
        shutil.rmtree(out_dir / STORE_NAME, ignore_errors=True)
    return result, checksum


def _cleanup_source(src: Path, extra: list[Path]) -> None:
    for path in (src, *extra):  # the rest of a multi-file source (an imzML's .ibd)
        path.unlink(missing_ok=True)


def _disk_full(exc: BaseException) -> bool:
    return isinstance(exc, errors.DiskFull) or (
        isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT))


async def process_job(conn: asyncpg.Connection, job: asyncpg.Record, name: str,
                      images_dir: Path, reserve: int = 0, scheduler: str | None = None,
                      remote: str = "", store_format: str = "ome-zarr") -> str:
    """Run one claimed job to its end; returns the job's new status ('lost' when
    another attempt took the job over meanwhile: then nothing is published)."""
    if job["kind"] == trash.PURGE_KIND:
        return await trash.run_purge_job(conn, job, images_dir, remote or None)
    src, image_id = Path(job["source_path"]), job["image_id"]
    if image_id is None:  # the image was deleted after the job was queued
        await conn.execute("UPDATE jobs SET status = 'cancelled', finished_at = now()"
                           " WHERE id = $1", job["id"])
        return "cancelled"
    image_dir = images_dir / str(image_id)
    out_dir = attempt_dir(image_dir, job["attempts"])
    latest: list[float | None] = [None]

    def on_progress(p: Any) -> None:
        latest[0] = float(getattr(p, "fraction", p))

    task = asyncio.ensure_future(asyncio.to_thread(
        run_conversion, src, out_dir, with_scheduler(job["options"], scheduler), on_progress,
        [Path(p) for p in job["extra_paths"]], reserve, store_format))
    while not task.done():
        await asyncio.wait({task}, timeout=BEAT_S)
        with contextlib.suppress(asyncpg.PostgresError, OSError):
            await jobs.heartbeat(conn, job, latest[0])
    try:
        result, checksum = task.result()
    except BaseException as exc:  # every failure is recorded (KeyboardInterrupt re-raised)
        status = await _record_failure(conn, job, exc)
    else:
        status = await _publish(conn, job, result, checksum, image_dir, out_dir, remote,
                                store_name(store_format))
    if status != "done":
        await asyncio.to_thread(shutil.rmtree, out_dir, True)
    if status == "failed":
        await asyncio.to_thread(_remove_if_empty, image_dir)
    # An uploaded original is kept until the image is ready: a failed conversion
    # can be retried from it (POST /api/images/{id}/retry).
    if job["delete_source"] and status == "done":
        await asyncio.to_thread(_cleanup_source, src, [Path(p) for p in job["extra_paths"]])
    return status


async def _record_failure(conn: asyncpg.Connection, job: asyncpg.Record,
                          exc: BaseException) -> str:
    if _disk_full(exc):
        # Retrying by itself would fail again: stop, say why, keep the original.
        log.warning("job %s: disk full", job["id"])
        return await jobs.fail(conn, job, jobs.DISK_FULL, False)
    if isinstance(exc, errors.SourceError):
        return await jobs.fail(conn, job, exc.message or "cannot read the source", False)
    if not isinstance(exc, Exception):
        raise exc
    log.error("job %s failed", job["id"], exc_info=exc)
    return await jobs.fail(conn, job, "conversion failed (internal error)", True)


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()


def _move_into_place(out_dir: Path, image_dir: Path, name: str = STORE_NAME) -> None:
    """Blocking: the attempt's finished pyramid becomes ``image_dir/<name>``
    (``image.ome.zarr`` or ``image.tdb``; atomic rename; an earlier, never-registered
    copy is replaced, and one in the other format removed)."""
    dst = image_dir / name
    old = None
    if dst.exists():
        old = image_dir / f"{ATTEMPT_PREFIX}replaced-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(dst, old)
    os.rename(out_dir / name, dst)
    for other in {STORE_NAME, TILEDB_NAME} - {name}:
        shutil.rmtree(image_dir / other, ignore_errors=True)
    fd = os.open(image_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_other_attempts(image_dir: Path, keep: Path) -> None:
    """Folders of crashed or superseded attempts are garbage once an attempt holding the
    lease publishes: removed before the job is marked done, so that a job seen 'done'
    never leaves them behind (a stop right after the commit would)."""
    for p in image_dir.glob(ATTEMPT_PREFIX + "*"):
        if p != keep:
            shutil.rmtree(p, ignore_errors=True)


async def _publish(conn: asyncpg.Connection, job: asyncpg.Record, result: Any,
                   checksum: str, image_dir: Path, out_dir: Path, remote: str = "",
                   name: str = STORE_NAME) -> str:
    """Make the attempt's pyramid the image's — only while this attempt holds the lease.

    The job row stays locked from the lease check to the commit, so a re-queue
    (which updates that row) cannot slip in between the check and the rename."""
    async with conn.transaction():
        alive = await conn.fetchval("SELECT 1 FROM images WHERE id = $1 FOR UPDATE",
                                    job["image_id"])
        if not await jobs.holds_lease(conn, job):
            log.warning("job %s attempt %s lost its lease; not publishing",
                        job["id"], job["attempts"])
            return "lost"
        if alive:
            await asyncio.to_thread(_remove_other_attempts, image_dir, out_dir)
        if alive and remote:
            # Object storage: uploaded with the root document last (readers never
            # see a partial image); an earlier copy of this id is replaced.
            await asyncio.to_thread(publish, out_dir / name,
                                    remote_pyramid(remote, job["image_id"], name), True)
            await mark_ready(conn, job["image_id"], result, checksum)
        elif alive:
            await asyncio.to_thread(_move_into_place, out_dir, image_dir, name)
            await mark_ready(conn, job["image_id"], result, checksum)
            await scanner_props.record(conn, job["image_id"], image_dir / name)
        if alive:  # where readers find the pyramid (its name says its format)
            await conn.execute("UPDATE images SET storage_path = $2 WHERE id = $1",
                               job["image_id"], storage_relpath(job["image_id"], name))
        if alive:  # the attempt's own folder: emptied by the rename, or the S3 upload's source
            await asyncio.to_thread(shutil.rmtree, out_dir, True)
        await conn.execute(
            """UPDATE jobs SET status = CASE WHEN $2 THEN 'done' ELSE 'cancelled' END,
                   progress = 1, error = NULL, finished_at = now()
               WHERE id = $1""", job["id"], bool(alive))
    if not alive:
        await asyncio.to_thread(shutil.rmtree, image_dir, True)
        return "cancelled"
    return "done"


def die_with_parent(parent: int) -> None:
    """A worker must not outlive its server (even a SIGKILLed one): it would go on
    converting and publishing images the catalog never hears of.

    Linux: the kernel SIGKILLs us when the parent's spawning thread ends
    (PR_SET_PDEATHSIG).  Everywhere: a watchdog thread ends the process at once
    when the parent pid changes.  Both end the converter threads too, which
    cancelling the event loop could not."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        log.warning("server process %s is gone; worker exiting", parent)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


async def worker_loop(dsn: str, images_dir: Path, index: int,
                      stop: asyncio.Event | None = None, reserve: int = 0,
                      scheduler: str | None = None, remote: str = "",
                      store_format: str = "ome-zarr") -> None:
    name = jobs.worker_name(index)
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            await _serve_queue(dsn, images_dir, name, stop, reserve, scheduler, remote,
                               store_format)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # The database restarted or is unreachable: back off and reconnect.
            log.warning("worker %s lost the database (%s); reconnecting", name, exc)
            await asyncio.sleep(2.0)


async def _serve_queue(dsn: str, images_dir: Path, name: str, stop: asyncio.Event,
                       reserve: int, scheduler: str | None = None, remote: str = "",
                       store_format: str = "ome-zarr") -> None:
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
            log.info("worker %s: job %s attempt %s (image %s)", name, job["id"],
                     job["attempts"], job["image_id"])
            await process_job(conn, job, name, images_dir, reserve, scheduler, remote,
                              store_format)
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


def worker_main(dsn: str, images_dir: str, index: int, parent: int | None = None,
                reserve: int = 0, scheduler: str | None = None, remote: str = "",
                deadline_s: float = 10.0, store_format: str = "ome-zarr") -> None:
    """Entry point of a worker process (spawned, so nothing is inherited)."""
    if parent is not None:
        die_with_parent(parent)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        configure_stores(deadline_s)
        asyncio.run(worker_loop(dsn, Path(images_dir), index, reserve=reserve,
                                scheduler=scheduler, remote=remote,
                                store_format=store_format))


# --------------------------------------------------------------------------- pool side

class WorkerPool:
    """N worker processes, restarted when they die; their jobs re-queued."""

    def __init__(self, dsn: str, settings: Settings, size: int,
                 db: asyncpg.Pool | None = None) -> None:
        self.dsn = dsn
        self.images_dir = settings.images_dir
        self.size = size
        self.db = db
        self.reserve = settings.disk_reserve_bytes
        #: Conversions run on this dask cluster (catalog/dask_jobs.py) when set.
        self.scheduler = settings.dask_scheduler
        #: MICROTOME_STORAGE: finished pyramids are uploaded there.
        self.remote = settings.storage.url if settings.storage else ""
        self.deadline_s = settings.storage.deadline_s if settings.storage else 10.0
        #: MICROTOME_STORE_FORMAT: what the workers' conversions write.
        self.store_format = settings.store_format.format
        self._ctx = multiprocessing.get_context("spawn")
        # Workers are started from this one long-lived thread: PR_SET_PDEATHSIG
        # fires when the *thread* that started a child ends, so not a pool thread
        # that might be retired.
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="worker-spawner")
        self.procs: list[Any] = [None] * size
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def _name(self, index: int, pid: int) -> str:
        import socket

        return f"{socket.gethostname()}:{pid}:{index}"

    def _spawn(self, index: int) -> Any:
        proc = self._ctx.Process(target=worker_main, name=f"microtome-worker-{index}",
                                 args=(self.dsn, str(self.images_dir), index, os.getpid(),
                                       self.reserve, self.scheduler, self.remote,
                                       self.deadline_s, self.store_format),
                                 daemon=True)
        proc.start()
        return proc

    async def _start_one(self, index: int) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._spawner, self._spawn, index)

    async def start(self) -> None:
        # Workers may run elsewhere in the tree: hand them an absolute path.
        self.images_dir = await asyncio.to_thread(self.images_dir.resolve)
        await asyncio.to_thread(self.images_dir.mkdir, parents=True, exist_ok=True)
        for i in range(self.size):
            self.procs[i] = await self._start_one(i)
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
                self.procs[i] = await self._start_one(i)

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
        self._spawner.shutdown(wait=False)
