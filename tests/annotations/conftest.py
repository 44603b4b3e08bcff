"""Fixtures for annotation tests: a connection to a fresh migrated database and
a seeded image (with a project, its members and terms)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from microtome.catalog.db import connect


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


# -- HTTP: the real application on a populated catalog ------------------------------

from pathlib import Path  # noqa: E402

from aiohttp import DummyCookieJar  # noqa: E402
from aiohttp.test_utils import TestClient  # noqa: E402

from microtome.app import create_app  # noqa: E402
from tests.catalog.conftest import make_settings, small_pyramid  # noqa: E402, F401
from tests.catalog.world import World  # noqa: E402


@pytest.fixture
async def api(aiohttp_client: object, tmp_path: Path, database_url: str) -> TestClient:
    settings = make_settings(tmp_path, database_url)
    return await aiohttp_client(create_app(settings),  # type: ignore[operator, no-any-return]
                                cookie_jar=DummyCookieJar())


@pytest.fixture
async def world(api: TestClient, tmp_path: Path, database_url: str,
                small_pyramid: Path) -> World:  # noqa: F811
    """Users with roles (API keys, no password hashing: fast), a private project with a
    real 700x500 image, a share link to it."""
    import shutil
    import time

    from microtome.catalog.images import storage_relpath
    from microtome.catalog.security import digest, new_api_key, share_token
    from tests.catalog.helpers import ANON, SECRET, Actor

    settings = make_settings(tmp_path, database_url)
    conn = await connect(database_url)
    try:
        actors: dict[str, Actor] = {"anonymous": ANON}
        for name in ("manager", "contributor", "viewer", "outsider", "admin"):
            uid = await conn.fetchval(
                "INSERT INTO users (username, is_admin) VALUES ($1, $2) RETURNING id",
                name, name == "admin")
            key = new_api_key()
            await conn.execute("INSERT INTO api_keys (user_id, name, prefix, key_hash) "
                               "VALUES ($1, 'test', $2, $3)", uid, key[:8], digest(key))
            actors[name] = Actor(name, uid, api_key=key)
        pid = await conn.fetchval("INSERT INTO projects (name) VALUES ('Private') RETURNING id")
        for name in ("manager", "contributor", "viewer"):
            await conn.execute("INSERT INTO project_members VALUES ($1, $2, $3)",
                               pid, actors[name].user_id, name)
        iid = await conn.fetchval(
            """INSERT INTO images (name, width, height, levels, status, pixel_size_um,
                                  home_project_id)
               VALUES ('slide-1', 700, 500, 2, 'ready', 0.5, $1) RETURNING id""", pid)
        await conn.execute("UPDATE images SET storage_path = $2 WHERE id = $1", iid,
                           storage_relpath(iid))
        await conn.execute("INSERT INTO project_images VALUES ($1, $2)", pid, iid)
        expires = int(time.time()) + 3600
        sid = await conn.fetchval(
            """INSERT INTO share_links (image_id, created_by, expires_at)
               VALUES ($1, $2, to_timestamp($3)) RETURNING id""",
            iid, actors["manager"].user_id, expires)
        actors["share"] = Actor("share", share=share_token(SECRET, sid, expires))
    finally:
        await conn.close()
    dst = settings.images_dir / storage_relpath(iid)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(small_pyramid, dst)
    return World(pid, iid, actors)
