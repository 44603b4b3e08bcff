"""One PATCH (or DELETE) at a time per tus upload, across every `serve` process.

A PostgreSQL session-level advisory lock, held on a connection of a small
dedicated pool for the length of the request: PATCHes of one upload may
reach different processes behind a load balancer (a client retrying after a
broken connection usually lands on another backend) and must not write the
same file region at once.  The lock goes with its connection, so a process
that dies mid-PATCH frees it by itself, and asyncpg's connection reset
(``pg_advisory_unlock_all``) frees it if the handler is cancelled.

The bytes themselves are on the shared data directory (``uploads_dir``): every
process writing PATCHes must see the same files (one host, or a shared file
system mounted at the same path on every host).

The offset is committed on the lock's own connection and fenced by the offset
the PATCH started from: if the lock was lost (the database restarted under a
PATCH), the commit fails instead of counting bytes another PATCH may own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

#: First half of the two-key advisory lock: "tus" uploads (the second is the id's hash).
LOCK_CLASS = 0x747573
#: Connections kept for upload locks; a PATCH waits (then 503) when all are busy.
POOL_SIZE = 16
#: Seconds a PATCH waits for a free lock connection before a 503 (retry).
ACQUIRE_TIMEOUT = 30.0

UPLOAD_LOCKS: web.AppKey[asyncpg.Pool] = web.AppKey("tus_upload_locks", asyncpg.Pool)


@contextlib.asynccontextmanager
async def holding(pool: asyncpg.Pool, upload_id: str) -> AsyncIterator[asyncpg.Connection]:
    """Wait for the upload's lock; the connection that holds it is yielded."""
    async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
        await conn.execute("SELECT pg_advisory_lock($1, hashtext($2))", LOCK_CLASS, upload_id)
        try:
            yield conn
        finally:
            if not conn.is_closed():
                with contextlib.suppress(asyncpg.PostgresError, OSError,
                                         asyncpg.InterfaceError):
                    await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))",
                                       LOCK_CLASS, upload_id)


async def commit_offset(conn: asyncpg.Connection, upload_id: str, start: int,
                        keep: int) -> bool:
    """Record `keep` as the upload's offset if it still is `start` (our PATCH's)."""
    status = await conn.execute(
        'UPDATE uploads SET "offset" = $3, updated_at = now() WHERE id = $1 AND "offset" = $2',
        upload_id, start, keep)
    return bool(status.endswith(" 1"))
