"""Set-up shared by the suites that need PostgreSQL and a `microtome serve`:
a scratch database (dropped afterwards) and the server started on it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.procs import Proc, free_port

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DSN = "postgresql://postgres@localhost:5432/postgres"


def default_dsn() -> str:
    """The PostgreSQL server the suites create their scratch databases on."""
    return os.environ.get("DATABASE_URL") or DEFAULT_DSN


async def admin(dsn: str, *sql: str) -> None:
    """Run statements on their own connection (CREATE/DROP DATABASE, VACUUM)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        for s in sql:
            await conn.execute(s)
    finally:
        await conn.close()


def with_db(dsn: str, name: str) -> str:
    """``dsn`` pointing at database ``name``."""
    from urllib.parse import urlsplit, urlunsplit

    p = urlsplit(dsn)
    return urlunsplit((p.scheme, p.netloc, "/" + name, p.query, p.fragment))


async def seed_member(conn: Any) -> tuple[int, int, str]:
    """Migrate, then a user 'bench' with an API key managing a private project 'bench';
    returns (user id, project id, API key)."""
    from microtome.app import MIGRATION_DIRS
    from microtome.catalog.migrate import migrate
    from microtome.catalog.security import digest, new_api_key

    await migrate(conn, MIGRATION_DIRS)
    uid = await conn.fetchval(
        "INSERT INTO users (username, is_admin) VALUES ('bench', false) RETURNING id")
    key = new_api_key()
    await conn.execute("INSERT INTO api_keys (user_id, name, prefix, key_hash) "
                       "VALUES ($1, 'bench', $2, $3)", uid, key[:8], digest(key))
    pid = await conn.fetchval("INSERT INTO projects (name) VALUES ('bench') RETURNING id")
    await conn.execute("INSERT INTO project_members VALUES ($1, $2, 'manager')", pid, uid)
    return uid, pid, key


@contextmanager
def scratch_database(dsn: str, prefix: str, workdir: Path | None = None,
                     log: Callable[[str], None] | None = None) -> Iterator[str]:
    """A fresh database ``<prefix>_<pid>`` on ``dsn``, dropped on exit; yields its DSN.

    With ``workdir``, a server that cannot be reached at ``dsn`` is replaced by an
    embedded one under ``workdir/pg`` (as in the product); without, the error stands."""
    name = f"{prefix}_{os.getpid()}"
    try:
        asyncio.run(admin(dsn, f'CREATE DATABASE "{name}"'))
    except Exception as e:
        if workdir is None:
            raise
        import pgserver

        if log is not None:
            log(f"no PostgreSQL at the given DSN ({type(e).__name__}); using an embedded one")
        dsn = str(pgserver.get_server(workdir / "pg", cleanup_mode="stop").get_uri("postgres"))
        asyncio.run(admin(dsn, f'CREATE DATABASE "{name}"'))
    try:
        yield with_db(dsn, name)
    finally:
        asyncio.run(admin(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def start_serve(db: str, workdir: Path, var: Path | None = None, job_workers: int = 0,
                env: dict[str, str] | None = None) -> tuple[Proc, str]:
    """`microtome serve` on a free loopback port over database ``db``, ready; returns
    the process (stop it) and its base URL."""
    port = free_port()
    proc = Proc("microtome", [sys.executable, "-m", "microtome", "serve", "--port", str(port)],
                workdir / "serve.log",
                env={"DATABASE_URL": db, "MICROTOME_VAR": str(var or workdir / "var"),
                     "MICROTOME_JOB_WORKERS": str(job_workers), **(env or {})}, cwd=REPO)
    proc.start()
    base = f"http://127.0.0.1:{port}"
    try:
        proc.wait_ready(base + "/api/openapi.json")
    except BaseException:
        proc.stop()
        raise
    return proc, base
