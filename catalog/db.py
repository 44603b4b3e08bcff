"""PostgreSQL access: the embedded server (pgserver) and the asyncpg pool.

The catalog runs against any PostgreSQL >= 14 given by DATABASE_URL; without
one we start an embedded server whose data lives under ``var_dir/pg`` so that
``make run`` needs nothing installed by hand.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiohttp import web

log = logging.getLogger("microtome.catalog.db")

DB_POOL: web.AppKey[asyncpg.Pool] = web.AppKey("catalog_db_pool", asyncpg.Pool)

#: Exceptions meaning "no database right now" whatever the query was.
DOWN_ERRORS = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
               asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError,
               asyncpg.TooManyConnectionsError, asyncpg.InternalClientError, ConnectionError)
#: SQLSTATE classes meaning "the server is not there for us right now":
#: connection exception, insufficient resources, operator intervention.
_DOWN_STATES = ("08", "53", "57P")


def unavailable(exc: BaseException) -> bool:
    """Is `exc`, raised by a database call, an outage (retry later) rather than a bug?"""
    if isinstance(exc, (*DOWN_ERRORS, TimeoutError)):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        return state.startswith(_DOWN_STATES) or (
            # "database ... is not currently accepting connections" (maintenance).
            isinstance(exc, asyncpg.ObjectNotInPrerequisiteStateError)
            and "accepting connections" in str(exc))
    return False


def _pid_is_postgres(pid: int) -> bool:
    """True when `pid` is alive *and* is a postgres process (pids get reused)."""
    try:
        import psutil

        proc = psutil.Process(pid)
        return proc.is_running() and "postgres" in proc.name()
    except Exception:
        return False


def _clear_stale_pidfile(pgdata: Path) -> None:
    """Remove postmaster.pid when the process it names is gone or is not postgres.

    pgserver trusts any live process with that pid; after a crash or a reboot
    the pid may belong to something else and it would then never start the
    server.  Removing the file lets pg_ctl start a fresh postmaster.
    """
    pidfile = pgdata / "postmaster.pid"
    try:
        first = pidfile.read_text().splitlines()[0].strip()
    except (FileNotFoundError, IndexError):
        return
    if first.isdigit() and _pid_is_postgres(int(first)):
        return
    log.warning("removing stale postmaster.pid (pid %s is not a running postgres)", first)
    pidfile.unlink(missing_ok=True)


#: fcntl locks (fasteners, pgserver's own) exclude other processes, not other
#: threads of this one: serialise starters within the process too.
_THREAD_LOCK = threading.Lock()


def _start_embedded_sync(var_dir: Path) -> str:
    with _THREAD_LOCK:
        return _start_locked(var_dir)


def _start_locked(var_dir: Path) -> str:
    import fasteners
    import pgserver

    var_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (var_dir / "pg").resolve()
    # Our own lock around pgserver's: two processes (serve + import) starting
    # at once must not both run pg_ctl on the same data directory.
    lock = fasteners.InterProcessLock(str(var_dir / ".pg.lock"))
    last: Exception | None = None
    for attempt in range(3):
        with lock:
            try:
                if pgdata.exists():
                    _clear_stale_pidfile(pgdata)
                # "stop": pgserver counts the processes attached to this data
                # directory (serve, import) and stops the server when the last exits.
                server = pgserver.get_server(pgdata, cleanup_mode="stop")
                return str(server.get_uri())
            except Exception as exc:  # postmaster.pid half-written while starting, etc.
                last = exc
                log.warning("embedded PostgreSQL not ready (attempt %d): %r", attempt + 1, exc)
        time.sleep(1.0)
    raise RuntimeError(f"cannot start the embedded PostgreSQL under {pgdata}: {last!r}")


async def start_embedded(var_dir: Path) -> str:
    """Start (or attach to) the embedded PostgreSQL under ``var_dir/pg``; returns a DSN."""
    # pgserver blocks (initdb, pg_ctl -w): keep it off the event loop.
    return await asyncio.to_thread(_start_embedded_sync, Path(var_dir))


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("jsonb", "json"):
        await conn.set_type_codec(
            typ, schema="pg_catalog",
            encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, format="text")


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection with the same codecs as the pool (CLI, workers, LISTEN)."""
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn


async def _pool_connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
    """asyncpg.connect, but a server that is not there is a database error: a
    stopped embedded server's unix socket is gone (FileNotFoundError), which
    would otherwise look like any file problem (and become a 500, not a 503)."""
    try:
        return await asyncpg.connect(*args, **kwargs)
    except OSError as exc:
        raise asyncpg.ClientCannotConnectError(
            f"cannot reach the database: {exc.strerror or exc}") from exc


async def create_pool(dsn: str, **kwargs: Any) -> asyncpg.Pool:
    """An asyncpg pool whose json/jsonb values are Python objects (orjson codecs)."""
    kwargs.setdefault("connect", _pool_connect)
    kwargs.setdefault("min_size", 1)
    kwargs.setdefault("max_size", 10)
    kwargs.setdefault("command_timeout", 60)
    pool = await asyncpg.create_pool(dsn, init=_init_connection, **kwargs)
    assert pool is not None
    return pool
