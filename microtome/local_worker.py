"""The analysis workers `microtome serve` starts beside itself (MICROTOME_LOCAL_WORKERS).

A local worker is an ordinary `microtome worker` process talking HTTP to this
server, so a single machine runs analyses out of the box and a remote worker
behaves exactly the same. It acts as the system user ``local-worker`` (an
administrator that cannot log in), created once someone has set the
installation up (before that, creating a user would hide the first-run
set-up page). Its API key is new at every start (the previous ones are
revoked) and reaches the worker on its standard input, not its command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable

import asyncpg
from aiohttp import web

from microtome.catalog import security
from microtome.catalog.db import DB_POOL

log = logging.getLogger("microtome.local_worker")

USERNAME = security.LOCAL_WORKER_USER
#: Seconds between looks for a first user, and before restarting a dead worker.
CHECK_S = 2.0
RESTART_S = 5.0


async def worker_key(pool: asyncpg.Pool) -> str | None:
    """A fresh API key of the local-worker user, or None before the first set-up."""
    async with pool.acquire() as conn, conn.transaction():
        others = await conn.fetchval(
            "SELECT count(*) FROM users WHERE lower(username) <> $1", USERNAME)
        if not others:
            return None
        uid = await conn.fetchval("SELECT id FROM users WHERE lower(username) = $1", USERNAME)
        if uid is None:
            uid = await conn.fetchval(
                "INSERT INTO users (username, password_hash, is_admin) VALUES ($1, NULL, true)"
                " RETURNING id", USERNAME)
        await conn.execute("UPDATE api_keys SET revoked_at = now()"
                           " WHERE user_id = $1 AND revoked_at IS NULL", uid)
        key = security.new_api_key()
        await conn.execute("INSERT INTO api_keys (user_id, name, prefix, key_hash)"
                           " VALUES ($1, $2, $3, $4)",
                           uid, "local analysis worker", key[:10], security.digest(key))
        return key


def local_url(host: str, port: int) -> str:
    """How a process on this machine reaches the server listening on host:port."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _supervise(pool: asyncpg.Pool, url: str, index: int) -> None:
    key = None
    while key is None:
        key = await worker_key(pool)
        if key is None:
            await asyncio.sleep(CHECK_S)
    while True:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "microtome", "worker", "--server", url, "--api-key", "-",
            "--name", f"local-{index}", stdin=asyncio.subprocess.PIPE)
        try:
            assert proc.stdin is not None
            proc.stdin.write(key.encode() + b"\n")
            await proc.stdin.drain()
            proc.stdin.close()
            code = await proc.wait()
        except asyncio.CancelledError:
            await _stop(proc)
            raise
        log.warning("local analysis worker %d exited (%s); restarting in %g s",
                    index, code, RESTART_S)
        await asyncio.sleep(RESTART_S)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except TimeoutError:
        proc.kill()
        await proc.wait()


def local_workers(url: str, count: int) -> Callable[[web.Application], AsyncIterator[None]]:
    """cleanup_ctx: `count` supervised worker processes while the server runs."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(_supervise(app[DB_POOL], url, i)) for i in range(count)]
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t

    return ctx
