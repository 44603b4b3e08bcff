"""The conversion job queue, in PostgreSQL.

States: queued -> running (progress 0..1, heartbeat) -> done | failed, or
cancelled when the image is deleted first.  Workers claim with
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


async def heartbeat(conn: asyncpg.Connection, job_id: int, worker: str,
                    progress: float | None) -> bool:
    """Record liveness (and progress); False when the job is no longer ours."""
    status = await conn.execute(
        """UPDATE jobs SET heartbeat_at = now(),
               progress = COALESCE($3, progress)
           WHERE id = $1 AND worker = $2 AND status = 'running'""",
        job_id, worker, None if progress is None else max(0.0, min(1.0, progress)))
    return bool(status.endswith(" 1"))


async def fail(conn: asyncpg.Connection, job: asyncpg.Record, reason: str,
               transient: bool) -> str:
    """Failed or re-queued (transient, attempts left); returns the new status."""
    retry = transient and job["attempts"] < job["max_attempts"]
    async with conn.transaction():
        if retry:
            await conn.execute(
                """UPDATE jobs SET status = 'queued', worker = NULL, error = $2,
                       run_after = now() + make_interval(secs => $3)
                   WHERE id = $1 AND status = 'running'""",
                job["id"], reason, RETRY_DELAY_S * job["attempts"])
            if job["image_id"] is not None:
                await conn.execute("UPDATE images SET status = 'pending' WHERE id = $1",
                                   job["image_id"])
            return "queued"
        await conn.execute(
            """UPDATE jobs SET status = 'failed', error = $2, finished_at = now()
               WHERE id = $1 AND status = 'running'""", job["id"], reason)
        if job["image_id"] is not None:
            await conn.execute(
                "UPDATE images SET status = 'failed', updated_at = now() WHERE id = $1",
                job["image_id"])
        return "failed"


async def requeue_worker(conn: asyncpg.Connection | asyncpg.Pool, worker: str) -> list[int]:
    """Put the running jobs of a dead worker back in the queue."""
    rows = await conn.fetch(
        """UPDATE jobs SET status = 'queued', worker = NULL, run_after = now(),
               error = 'worker stopped; retrying'
           WHERE status = 'running' AND worker = $1 RETURNING id""", worker)
    if rows:
        await conn.execute(f"NOTIFY {CHANNEL}")
    return [r["id"] for r in rows]


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
        await conn.execute(
            """UPDATE jobs SET status = 'queued', worker = NULL, run_after = now(),
                   error = 'worker stopped; retrying'
               WHERE status = 'running' AND id = ANY($1::bigint[])""", dead)
        await conn.execute(f"NOTIFY {CHANNEL}")
    return dead
