"""Migrations (order, idempotence, races, failures) and the embedded server."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from microtome.app import MIGRATION_DIRS
from microtome.catalog.db import create_pool
from microtome.catalog.migrate import discover, migrate


@pytest.fixture
async def empty_db(pg_server_url: str) -> AsyncIterator[str]:
    from urllib.parse import urlsplit, urlunsplit

    name = f"microtome_mig_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(pg_server_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    parts = urlsplit(pg_server_url)
    yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
    conn = await asyncpg.connect(pg_server_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


def _write(d: Path, name: str, sql: str) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(sql)


async def test_order_across_dirs_and_idempotent(empty_db: str, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _write(a, "0001_first.sql", "CREATE TABLE t (x int);")
    _write(b, "0100_third.sql", "INSERT INTO t VALUES (3);")
    _write(a, "0002_second.sql", "INSERT INTO t VALUES (2);")
    _write(a, "notes.txt", "ignored")
    assert [n for _, n, _ in discover([a, b, tmp_path / "missing"])] == [
        "0001_first.sql", "0002_second.sql", "0100_third.sql"]
    conn = await asyncpg.connect(empty_db)
    try:
        assert await migrate(conn, [b, a]) == ["0001_first.sql", "0002_second.sql",
                                                "0100_third.sql"]
        assert await migrate(conn, [b, a]) == []
        assert [r["x"] for r in await conn.fetch("SELECT x FROM t ORDER BY x")] == [2, 3]
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 3
    finally:
        await conn.close()


async def test_failed_migration_rolls_back(empty_db: str, tmp_path: Path) -> None:
    _write(tmp_path, "0001_ok.sql", "CREATE TABLE ok (x int);")
    _write(tmp_path, "0002_bad.sql", "CREATE TABLE half (x int); SELECT nonsense FROM nowhere;")
    conn = await asyncpg.connect(empty_db)
    try:
        with pytest.raises(asyncpg.PostgresError):
            await migrate(conn, [tmp_path])
        tables = {r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert "ok" in tables and "half" not in tables
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 1
        # The lock was released: a fixed file applies later.
        _write(tmp_path, "0002_bad.sql", "CREATE TABLE half (x int);")
        assert await migrate(conn, [tmp_path]) == ["0002_bad.sql"]
    finally:
        await conn.close()


async def test_duplicate_numbers_refused(tmp_path: Path) -> None:
    _write(tmp_path / "a", "0007_x.sql", "")
    _write(tmp_path / "b", "0007_y.sql", "")
    with pytest.raises(RuntimeError, match="duplicate"):
        discover([tmp_path / "a", tmp_path / "b"])


async def test_concurrent_migrations_do_not_race(empty_db: str) -> None:
    pools = [await create_pool(empty_db, min_size=1, max_size=1) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(p, MIGRATION_DIRS) for p in pools))
        applied = [r for r in results if r]
        assert len(applied) == 1  # exactly one process applied them
        total = await pools[0].fetchval("SELECT count(*) FROM schema_migrations")
        assert total == len(discover(MIGRATION_DIRS))
    finally:
        for p in pools:
            await p.close()


async def test_jsonb_codec(database_url: str) -> None:
    pool = await create_pool(database_url)
    try:
        value = await pool.fetchval("SELECT $1::jsonb", {"a": [1, 2.5, "x"]})
        assert value == {"a": [1, 2.5, "x"]}
    finally:
        await pool.close()


def test_embedded_server_start_twice_and_stale_pid(tmp_path_factory: pytest.TempPathFactory
                                                   ) -> None:
    """Two concurrent starters share one server; a stale postmaster.pid is survived."""
    var = Path("/tmp") / f"mt-emb-{secrets.token_hex(3)}"  # short: unix socket path limit
    var.mkdir()
    try:
        code = (
            "import asyncio, sys; from pathlib import Path\n"
            "from microtome.catalog.db import start_embedded\n"
            "async def main():\n"
            "    a, b = await asyncio.gather(start_embedded(Path(sys.argv[1])),"
            " start_embedded(Path(sys.argv[1])))\n"
            "    assert a == b, (a, b)\n"
            "    import asyncpg\n"
            "    c = await asyncpg.connect(a); print(await c.fetchval('SELECT 41 + 1'));"
            " await c.close()\n"
            "asyncio.run(main())\n")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        out = subprocess.run([sys.executable, "-c", code, str(var)], env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip().endswith("42")
        # The server stopped with its last user; leave a stale pid file behind
        # naming a live process that is not postgres (pid 1, init).
        pidfile = var / "pg" / "postmaster.pid"
        assert not pidfile.exists()
        lines = ["1", str(var / "pg"), "0", "5432", str(var / "pg"), "", "0 0", "ready"]
        pidfile.write_text("\n".join(lines) + "\n")
        if os.geteuid() == 0:
            shutil.chown(pidfile, "pgserver", "pgserver")
        out = subprocess.run([sys.executable, "-c", code, str(var)], env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip().endswith("42")
        assert not pidfile.exists()  # stopped again by its last user
    finally:
        _stop_if_running(var / "pg")
        shutil.rmtree(var, ignore_errors=True)


def _stop_if_running(pgdata: Path) -> None:
    """Stop the postmaster this test started, by its pid, if a failure left it running."""
    import signal

    from microtome.catalog.db import _pid_is_postgres

    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if _pid_is_postgres(pid):
        os.kill(pid, signal.SIGTERM)


async def test_home_project_backfilled_from_the_earliest_link(empty_db: str,
                                                              tmp_path: Path) -> None:
    """0003 gives images that predate it their earliest project as home project."""
    old = tmp_path / "old"
    for _, name, path in discover(MIGRATION_DIRS):
        if name < "0003":
            _write(old, name, path.read_text())
    conn = await asyncpg.connect(empty_db)
    try:
        await migrate(conn, [old])
        p1, p2 = [await conn.fetchval("INSERT INTO projects (name) VALUES ($1) RETURNING id", n)
                  for n in ("home", "linked")]
        image = await conn.fetchval("INSERT INTO images (name) VALUES ('x') RETURNING id")
        loose = await conn.fetchval("INSERT INTO images (name) VALUES ('y') RETURNING id")
        await conn.execute("INSERT INTO project_images (project_id, image_id, added_at)"
                           " VALUES ($1, $3, now() - interval '1 day'), ($2, $3, now())",
                           p1, p2, image)
        assert "0003_image_home_project.sql" in await migrate(conn, MIGRATION_DIRS)
        homes = dict(await conn.fetch("SELECT id, home_project_id FROM images"))
        assert homes == {image: p1, loose: None}
    finally:
        await conn.close()
