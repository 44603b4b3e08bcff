"""Numbered SQL migrations applied at start-up.

Files are named ``NNNN_name.sql`` and may live in several directories (the
catalog owns 0001-0099, annotations 0100 and up); they are applied in number
order, each inside its own transaction, and recorded in ``schema_migrations``.
A session-level advisory lock serialises concurrent starters (two `serve`
processes, `serve` + `import`), so running it twice is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import asyncpg

log = logging.getLogger("microtome.catalog.migrate")

_NAME = re.compile(r"^(\d{4})_[A-Za-z0-9_\-]+\.sql$")
#: Arbitrary but fixed key for pg_advisory_lock ("microtom" in ASCII).
LOCK_KEY = 0x6D6963726F746F6D


def discover(dirs: Sequence[Path]) -> list[tuple[int, str, Path]]:
    """(number, file name, path) for every migration, sorted; duplicate numbers are an error."""
    found: dict[int, tuple[int, str, Path]] = {}
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            continue
        for path in d.iterdir():
            m = _NAME.match(path.name)
            if not m:
                continue
            number = int(m.group(1))
            if number in found:
                raise RuntimeError(
                    f"duplicate migration number {number:04d}: {found[number][1]} and {path.name}")
            found[number] = (number, path.name, path)
    return [found[n] for n in sorted(found)]


async def _migrate_conn(conn: asyncpg.Connection, dirs: Sequence[Path]) -> list[str]:
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())""")
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        applied: list[str] = []
        for number, name, path in await asyncio.to_thread(discover, dirs):
            if number in done:
                continue
            sql = await asyncio.to_thread(path.read_text, encoding="utf-8")
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", number, name)
            log.info("applied migration %s", name)
            applied.append(name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


async def migrate(conn_or_pool: asyncpg.Connection | asyncpg.Pool,
                  dirs: Sequence[Path]) -> list[str]:
    """Apply pending migrations from `dirs`; returns the file names applied now."""
    if isinstance(conn_or_pool, asyncpg.Pool):
        async with conn_or_pool.acquire() as conn:
            return await _migrate_conn(conn, dirs)
    return await _migrate_conn(conn_or_pool, dirs)
