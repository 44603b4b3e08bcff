"""Shared fixtures: real sample files and a real PostgreSQL.

PostgreSQL: the server named by DATABASE_URL when set (a fresh database per
test run and per test is created on it; existing data is never touched),
otherwise an embedded pgserver instance in a temporary directory.  A template
database is migrated once per session; each test gets a copy of it, which is
much faster than migrating per test.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

REPO = Path(__file__).resolve().parent.parent
TESTDATA = REPO.parent / "shared" / "testdata"


@pytest.fixture(scope="session")
def testdata() -> Path:
    if not (TESTDATA / "CMU-1-Small-Region.svs").exists():
        pytest.fail(f"sample files missing: expected ../shared/testdata beside the repo "
                    f"({TESTDATA})")
    return TESTDATA


@pytest.fixture(scope="session")
def s3() -> Iterator[object]:
    """One real S3 API server (moto's, tests/storage/s3server.py) per session, shared by
    tests/storage and tests/scaleout so a run starts it once."""
    from tests.storage import s3server

    server = s3server.start()
    try:
        yield server
    finally:
        server.stop()


def with_database(url: str, dbname: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


async def _execute(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server where tests may CREATE DATABASE; its 'postgres' database URL."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield with_database(external, "postgres")
        return
    import pgserver

    # Short path: the server's unix socket lives in the data directory and
    # socket paths are limited to ~100 bytes.
    pgdata = Path("/tmp") / f"microtome-test-pg-{os.getpid()}"
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    try:
        yield server.get_uri("postgres")
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def template_database(pg_server_url: str) -> Iterator[str]:
    """Name of a database with every migration applied, dropped at the end."""
    from microtome.app import MIGRATION_DIRS
    from microtome.catalog.migrate import migrate

    name = f"microtome_tmpl_{secrets.token_hex(4)}"
    asyncio.run(_execute(pg_server_url, f'CREATE DATABASE "{name}"'))

    async def _migrate() -> None:
        conn = await asyncpg.connect(with_database(pg_server_url, name))
        try:
            await migrate(conn, MIGRATION_DIRS)
        finally:
            await conn.close()

    asyncio.run(_migrate())
    try:
        yield name
    finally:
        asyncio.run(_execute(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def database_url(pg_server_url: str, template_database: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    name = f"microtome_test_{secrets.token_hex(6)}"
    asyncio.run(_execute(pg_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    try:
        yield with_database(pg_server_url, name)
    finally:
        asyncio.run(_execute(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
