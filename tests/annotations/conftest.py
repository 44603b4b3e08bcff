"""Fixtures for annotation tests: a connection to a fresh migrated database and
a seeded image (with a project, its members and terms)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from catalog.db import connect


@dataclass
class Seed:
    image_id: int
    project_id: int
    manager: int
    contributor: int
    viewer: int
    outsider: int


async def seed_catalog(conn: asyncpg.Connection, width: int = 100_000, height: int = 80_000,
                       pixel_size_um: float | None = 0.25) -> Seed:
    users = {}
    for name in ("manager", "contributor", "viewer", "outsider"):
        users[name] = await conn.fetchval(
            "INSERT INTO users (username) VALUES ($1) RETURNING id", name)
    pid = await conn.fetchval("INSERT INTO projects (name) VALUES ('p1') RETURNING id")
    for name in ("manager", "contributor", "viewer"):
        await conn.execute("INSERT INTO project_members VALUES ($1, $2, $3)",
                           pid, users[name], name)
    iid = await conn.fetchval(
        """INSERT INTO images (name, width, height, pixel_size_um, status)
           VALUES ('slide', $1, $2, $3, 'ready') RETURNING id""", width, height, pixel_size_um)
    await conn.execute("INSERT INTO project_images (project_id, image_id) VALUES ($1, $2)",
                       pid, iid)
    return Seed(iid, pid, users["manager"], users["contributor"], users["viewer"],
                users["outsider"])


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await connect(database_url)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def seed(conn: asyncpg.Connection) -> Seed:
    return await seed_catalog(conn)
