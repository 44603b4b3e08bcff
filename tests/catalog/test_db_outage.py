"""The database going away under load: 503s (never 500s), recovery, nothing half-written."""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp.test_utils import TestClient

from tests.catalog.helpers import call, setup_admin


async def _kill_backends(database_url: str) -> int:
    """What clients see when PostgreSQL restarts: every session of the database dies."""
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    finally:
        await conn.close()


async def test_backends_killed_under_load(client: TestClient, database_url: str) -> None:
    admin = await setup_admin(client)
    # Warm the pool so that there are connections to lose.
    await asyncio.gather(*(call(client, admin, "GET", "/api/projects", expect=200)
                           for _ in range(8)))
    statuses: list[int] = []

    async def writer(i: int) -> None:
        for j in range(6):
            status, _ = await call(client, admin, "POST", "/api/projects",
                                   {"name": f"p-{i}-{j}"})
            statuses.append(status)

    async def chaos() -> None:
        for _ in range(4):
            await _kill_backends(database_url)
            await asyncio.sleep(0.05)

    await asyncio.gather(chaos(), *(writer(i) for i in range(6)))
    assert set(statuses) <= {201, 503}, statuses
    # The API recovers by itself once the database is back.
    status = 0
    for _ in range(20):
        status, _ = await call(client, admin, "GET", "/api/projects?limit=500")
        if status == 200:
            break
        await asyncio.sleep(0.1)
    assert status == 200
    conn = await asyncpg.connect(database_url)
    try:
        created = await conn.fetchval("SELECT count(*) FROM projects")
        orphans = await conn.fetchval(
            "SELECT count(*) FROM projects p WHERE NOT EXISTS (SELECT 1 FROM project_members m"
            " WHERE m.project_id = p.id AND m.role = 'manager')")
    finally:
        await conn.close()
    # Every project that exists is whole (it has its manager), and each 201 made one.
    assert orphans == 0
    assert created >= statuses.count(201)
