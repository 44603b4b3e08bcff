"""The conversion job queue, in PostgreSQL.

States: queued -> running (progress 0..1, heartbeat) -> done | failed, or
cancelled when the image is deleted first.  The image follows its job:
'pending' while the job is queued (also after a re-queue), 'converting' while
it runs, then 'ready' or 'failed'.

A claim is a lease: (job id, worker name, attempt number).  Every write a
worker makes about its job (heartbeat, failure, publication) is fenced by the
whole lease, so a worker that lost its job (re-queued while it was paused, and
claimed again — possibly by the same worker name) changes nothing.  Workers claim with
``FOR UPDATE SKIP LOCKED`` so any number of them (in any number of
processes or hosts) never take the same job; ``NOTIFY microtome_jobs`` wakes
them.  A job whose worker died is put back in the queue: by the supervisor
that saw the process exit, at start-up for workers of this host that are
gone, and by anyone once its heartbeat is stale.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import asyncpg

from microtome.pyramid import errors

CHANNEL = "microtome_jobs"
JOB_COLUMNS = """id, kind, status, image_id, project_id, progress, error, attempts,
    created_at, started_at, finished_at"""
#: A running job whose heartbeat is older than this is considered orphaned.
STALE_AFTER_S = 60
#: Delay before retrying a transient failure, multiplied by the attempt number.
RETRY_DELAY_S = 5


def job_json(row: asyncpg.Record) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "kind", "status", "image_id", "project_id", "progress",
                                "error", "attempts", "created_at", "started_at",
                                "finished_at")}


def worker_name(index: int = 0) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{index}"


async def enqueue(conn: asyncpg.Connection | asyncpg.Pool, *, image_id: int,
                  source_path: str, project_id: int | None = None, user_id: int | None = None,
                  upload_id: str | None = None, delete_source: bool = False,
                  options: dict[str, Any] | None = None, kind: str = "convert",
                  extra_paths: list[str] | None = None) -> int:
    job_id: int = await conn.fetchval(
        """INSERT INTO jobs (kind, image_id, project_id, user_id, upload_id, source_path,
                             delete_source, options, extra_paths)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id""",
        kind, image_id, project_id, user_id, upload_id, source_path, delete_source,
        options or {}, extra_paths or [])
    # Delivered at commit when called inside a transaction.
    await conn.execute(f"NOTIFY {CHANNEL}")
    return job_id


async def claim(conn: asyncpg.Connection, worker: str) -> asyncpg.Record | None:
    """Take the oldest runnable job, or None.  The image goes to 'converting'."""
    async with conn.transaction():
        job = await conn.fetchrow(
            """UPDATE jobs SET status = 'running', attempts = attempts + 1, worker = $1,
                   started_at = now(), heartbeat_at = now(), progress = 0, error = NULL
               WHERE id = (SELECT id FROM jobs WHERE status = 'queued' AND run_after <= now()
                           ORDER BY run_after, id FOR UPDATE SKIP LOCKED LIMIT 1)
               RETURNING *""", worker)
        if job is not None and job["image_id"] is not None:
            await conn.execute(
                "UPDATE images SET status = 'converting', updated_at = now() WHERE id = $1",
                job["image_id"])
    return job


#: SQL condition: job $1 is still leased to worker $2 for attempt $3.
LEASE = "id = $1 AND status = 'running' AND worker = $2 AND attempts = $3"
#: The failure text for a full disk (the worker says so instead of "internal error").
DISK_FULL = "not enough disk space on the server; free some and retry"


def lease(job: asyncpg.Record) -> tuple[int, str, int]:
    return job["id"], job["worker"], job["attempts"]


async def heartbeat(conn: asyncpg.Connection, job: asyncpg.Record,
                    progress: float | None) -> bool:
    """Record liveness (and progress); False when the lease is lost."""
    status = await conn.execute(
        f"""UPDATE jobs SET heartbeat_at = now(), progress = COALESCE($4, progress)
            WHERE {LEASE}""",
        *lease(job), None if progress is None else max(0.0, min(1.0, progress)))
    return bool(status.endswith(" 1"))


async def holds_lease(conn: asyncpg.Connection, job: asyncpg.Record) -> bool:
    """Inside a transaction: True, and the job row locked, while the lease holds."""
    return bool(await conn.fetchval(f"SELECT 1 FROM jobs WHERE {LEASE} FOR UPDATE",
                                    *lease(job)))


async def fail(conn: asyncpg.Connection, job: asyncpg.Record, reason: str,
               transient: bool) -> str:
    """Failed or re-queued (transient, attempts left); returns the new status, or
    'lost' when the lease is gone (then nothing is changed)."""
    retry = transient and job["attempts"] < job["max_attempts"]
    async with conn.transaction():
        if not await holds_lease(conn, job):
            return "lost"
        if retry:
            await conn.execute(
                """UPDATE jobs SET status = 'queued', worker = NULL, error = $2,
                       run_after = now() + make_interval(secs => $3)
                   WHERE id = $1""",
                job["id"], reason, RETRY_DELAY_S * job["attempts"])
            await _images_back_to_pending(conn, [job["id"]])
            return "queued"
        await conn.execute(
            """UPDATE jobs SET status = 'failed', error = $2, finished_at = now()
               WHERE id = $1""", job["id"], reason)
        if job["image_id"] is not None:
            await conn.execute(
                "UPDATE images SET status = 'failed', updated_at = now() WHERE id = $1",
                job["image_id"])
        return "failed"


async def _images_back_to_pending(conn: asyncpg.Connection | asyncpg.Pool,
                                  job_ids: list[int]) -> None:
    """The images of re-queued jobs wait again ('pending'), like their jobs."""
    await conn.execute(
        """UPDATE images i SET status = 'pending', updated_at = now()
           FROM jobs j WHERE j.id = ANY($1::bigint[]) AND j.image_id = i.id
             AND i.status = 'converting'""", job_ids)


async def _requeue(conn: asyncpg.Connection | asyncpg.Pool, where: str,
                   *args: Any) -> list[int]:
    """Put running jobs matching `where` back in the queue, their images too (atomic)."""
    rows = await conn.fetch(
        f"""WITH q AS (
                UPDATE jobs SET status = 'queued', worker = NULL, run_after = now(),
                    error = 'worker stopped; retrying'
                WHERE status = 'running' AND {where} RETURNING id, image_id),
            i AS (
                UPDATE images SET status = 'pending', updated_at = now()
                WHERE id IN (SELECT image_id FROM q) AND status = 'converting')
            SELECT id FROM q ORDER BY id""", *args)
    if rows:
        await conn.execute(f"NOTIFY {CHANNEL}")
    return [r["id"] for r in rows]


async def requeue_worker(conn: asyncpg.Connection | asyncpg.Pool, worker: str) -> list[int]:
    """Put the running jobs of a dead worker back in the queue."""
    return await _requeue(conn, "worker = $1", worker)


async def retry(conn: asyncpg.Connection, image_id: int) -> asyncpg.Record:
    """Queue the last failed conversion of a failed image again, with fresh attempts.

    The caller checks that the source file is still there."""
    async with conn.transaction():
        status = await conn.fetchval("SELECT status FROM images WHERE id = $1 FOR UPDATE",
                                     image_id)
        if status is None:
            raise errors.NotFound("image not found")
        if status != "failed":
            raise errors.Conflict(f"only a failed image can be retried (this one is {status})")
        job = await conn.fetchrow(
            f"""UPDATE jobs SET status = 'queued', attempts = 0, worker = NULL, error = NULL,
                    progress = 0, run_after = now(), started_at = NULL, finished_at = NULL
                WHERE id = (SELECT max(id) FROM jobs WHERE image_id = $1)
                  AND status = 'failed'
                RETURNING {JOB_COLUMNS}""", image_id)
        if job is None:
            raise errors.Conflict("this image has no failed conversion to retry")
        await conn.execute("UPDATE images SET status = 'pending', updated_at = now()"
                           " WHERE id = $1", image_id)
        await conn.execute(f"NOTIFY {CHANNEL}")
    return job


async def last_source(conn: asyncpg.Connection | asyncpg.Pool,
                      image_id: int) -> asyncpg.Record | None:
    """source_path and extra_paths of the image's latest job."""
    return await conn.fetchrow(
        "SELECT source_path, extra_paths FROM jobs WHERE image_id = $1"
        " ORDER BY id DESC LIMIT 1", image_id)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def recover_stale(conn: asyncpg.Connection | asyncpg.Pool,
                        stale_after_s: int = STALE_AFTER_S) -> list[int]:
    """Re-queue running jobs whose worker is gone: dead processes of this host at once,
    any worker whose heartbeat is older than `stale_after_s`."""
    host = socket.gethostname()
    rows = await conn.fetch(
        "SELECT id, worker, heartbeat_at < now() - make_interval(secs => $1) AS stale"
        " FROM jobs WHERE status = 'running'", float(stale_after_s))
    dead: list[int] = []
    for r in rows:
        parts = (r["worker"] or "").split(":")
        local_dead = (len(parts) == 3 and parts[0] == host and parts[1].isdigit()
                      and not _pid_alive(int(parts[1])))
        if r["stale"] or local_dead or not r["worker"]:
            dead.append(r["id"])
    if dead:
        return await _requeue(conn, "id = ANY($1::bigint[])", dead)
    return dead
