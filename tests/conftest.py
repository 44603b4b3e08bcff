"""Shared fixtures: real sample files and a real PostgreSQL.

PostgreSQL: the server named by DATABASE_URL when set (a fresh database per
test run and per test is created on it; existing data is never touched),
otherwise an embedded pgserver instance in a temporary directory.  A template
database is migrated once per session; each test gets a copy of it, which is
much faster than migrating per test.
"""

from __future__ import annotations

import asyncio
import contextlib
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
def cmu_pyramid(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CMU-1-Small-Region.svs converted by our converter (default options), once per
    session for every folder that serves or reads a real slide.  Shared: read it, or
    copy it (shutil.copytree) before changing or serving it; its folder holds nothing else."""
    from microtome.converters import convert

    out = tmp_path_factory.mktemp("cmu-pyramid") / "CMU-1-Small-Region.ome.zarr"
    convert(testdata / "CMU-1-Small-Region.svs", out)
    return out


@pytest.fixture(scope="session")
def fluo_pyramid(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """multi-channel-z-series.ome.tif (3 channels, 5 planes) converted once per session;
    shared like ``cmu_pyramid``."""
    from microtome.converters import convert

    out = tmp_path_factory.mktemp("fluo-pyramid") / "multi-channel-z-series.ome.zarr"
    convert(testdata / "multi-channel-z-series.ome.tif", out)
    return out


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


@contextlib.contextmanager
def embedded_server(prefix: str) -> Iterator[str]:
    """An embedded pgserver for this test process; its 'postgres' database URL."""
    import pgserver

    # Short path: the server's unix socket lives in the data directory and
    # socket paths are limited to ~100 bytes.
    pgdata = Path("/tmp") / f"{prefix}-{os.getpid()}"
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    try:
        yield server.get_uri("postgres")
    finally:
        server.cleanup()


@contextlib.contextmanager
def migrated_template(server_url: str, prefix: str) -> Iterator[str]:
    """Name of a database on the server with every migration applied, dropped at the end."""
    from microtome.app import MIGRATION_DIRS
    from microtome.catalog.migrate import migrate

    name = f"{prefix}_{secrets.token_hex(4)}"
    asyncio.run(_execute(server_url, f'CREATE DATABASE "{name}"'))

    async def _migrate() -> None:
        conn = await asyncpg.connect(with_database(server_url, name))
        try:
            await migrate(conn, MIGRATION_DIRS)
        finally:
            await conn.close()

    asyncio.run(_migrate())
    try:
        yield name
    finally:
        asyncio.run(_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def copy_of(server_url: str, template: str, prefix: str) -> Iterator[str]:
    """URL of a fresh database copied from the template, dropped at the end."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    asyncio.run(_execute(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield with_database(server_url, name)
    finally:
        asyncio.run(_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server where tests may CREATE DATABASE; its 'postgres' database URL."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield with_database(external, "postgres")
        return
    with embedded_server("microtome-test-pg") as url:
        yield url


@pytest.fixture(scope="session")
def template_database(pg_server_url: str) -> Iterator[str]:
    """Name of a database with every migration applied, dropped at the end."""
    with migrated_template(pg_server_url, "microtome_tmpl") as name:
        yield name


@pytest.fixture
def database_url(pg_server_url: str, template_database: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    with copy_of(pg_server_url, template_database, "microtome_test") as url:
        yield url
