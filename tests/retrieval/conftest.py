"""Retrieval fixtures: a PostgreSQL server WITH pgvector, the sample slide converted
once, and an app with two users whose projects each hold a copy of it.

pgvector: the session's server (DATABASE_URL or the embedded pgserver) is used
when it offers the `vector` extension; otherwise (Debian's PostgreSQL 15) these
tests start their own embedded pgserver, which ships it.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient

from microtome.app import create_app
from microtome.catalog.db import connect
from microtome.core.settings import Settings
from tests.catalog.conftest import make_settings
from tests.catalog.helpers import ANON, Actor
from tests.conftest import copy_of, embedded_server, migrated_template
from tests.retrieval.labelled_tiles import LABELS, TILE


async def _offers_vector(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')"))
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def vector_server_url(pg_server_url: str) -> Iterator[str]:
    if asyncio.run(_offers_vector(pg_server_url)):
        yield pg_server_url
        return
    with embedded_server("microtome-test-pgv") as url:
        yield url


@pytest.fixture(scope="session")
def vector_template(vector_server_url: str) -> Iterator[str]:
    with migrated_template(vector_server_url, "microtome_vtmpl") as name:
        yield name


@pytest.fixture
def vector_database_url(vector_server_url: str, vector_template: str) -> Iterator[str]:
    with copy_of(vector_server_url, vector_template, "microtome_vtest") as url:
        yield url


@pytest.fixture(scope="session")
def slide_pyramid(cmu_pyramid: Path) -> Path:
    """CMU-1-Small-Region.svs (2220 x 2967, 0.499 µm/px) as OME-Zarr: the session's shared
    conversion (tests/conftest.py); each side gets its own copy of it."""
    return cmu_pyramid


@dataclass
class Side:
    """One user's world: a project with a copy of the slide and its terms."""

    actor: Actor
    project_id: int
    image_id: int
    terms: dict[str, int]


@dataclass
class RWorld:
    client: TestClient
    alice: Side
    bob: Side
    anonymous: Actor
    database_url: str
    settings: Settings


async def _side(conn: asyncpg.Connection, settings: Settings, pyramid: Path, name: str) -> Side:
    from microtome.catalog.images import storage_relpath
    from microtome.catalog.security import digest, new_api_key

    uid = await conn.fetchval("INSERT INTO users (username) VALUES ($1) RETURNING id", name)
    key = new_api_key()
    await conn.execute("INSERT INTO api_keys (user_id, name, prefix, key_hash) "
                       "VALUES ($1, 'test', $2, $3)", uid, key[:8], digest(key))
    pid = await conn.fetchval("INSERT INTO projects (name) VALUES ($1) RETURNING id",
                              f"{name}'s project")
    await conn.execute("INSERT INTO project_members VALUES ($1, $2, 'manager')", pid, uid)
    iid = await conn.fetchval(
        """INSERT INTO images (name, width, height, levels, status, pixel_size_um,
                              home_project_id, owner_id)
           VALUES ($1, 2220, 2967, 4, 'ready', 0.499, $2, $3) RETURNING id""",
        f"{name}-slide", pid, uid)
    await conn.execute("UPDATE images SET storage_path = $2 WHERE id = $1", iid,
                       storage_relpath(iid))
    await conn.execute("INSERT INTO project_images VALUES ($1, $2)", pid, iid)
    terms = {}
    for label in LABELS:
        terms[label] = await conn.fetchval(
            "INSERT INTO terms (project_id, name) VALUES ($1, $2) RETURNING id", pid, label)
    dst = settings.images_dir / storage_relpath(iid)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(pyramid, dst)
    return Side(Actor(name, uid, api_key=key), pid, iid, terms)


async def make_world(aiohttp_client: object, tmp_path: Path, database_url: str,
                     pyramid: Path, **overrides: object) -> RWorld:
    """The app on `database_url` with alice's and bob's sides (settings overridable)."""
    settings = make_settings(tmp_path, database_url, **overrides)
    client = await aiohttp_client(create_app(settings),  # type: ignore[operator]
                                  cookie_jar=DummyCookieJar())
    conn = await connect(database_url)
    try:
        alice = await _side(conn, settings, pyramid, "alice")
        bob = await _side(conn, settings, pyramid, "bob")
    finally:
        await conn.close()
    return RWorld(client, alice, bob, ANON, database_url, settings)


@pytest.fixture
async def rworld(aiohttp_client: object, tmp_path: Path, vector_database_url: str,
                 slide_pyramid: Path) -> RWorld:
    """No background indexing (the tests' default): requests describe what they need
    (deterministic counts)."""
    return await make_world(aiohttp_client, tmp_path, vector_database_url, slide_pyramid)


def tile_polygon(gx: int, gy: int) -> dict[str, object]:
    x0, y0 = gx * TILE, gy * TILE
    x1, y1 = x0 + TILE, y0 + TILE
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1],
                                                [x0, y0]]]}


async def annotate(w: RWorld, side: Side, cells: dict[str, list[tuple[int, int]]]
                   ) -> dict[int, str]:
    """Rectangles over the labelled tiles on the side's image, termed by label:
    {annotation id: label}."""
    items, labels = [], []
    for label, cs in cells.items():
        for gx, gy in cs:
            items.append({"geometry": tile_polygon(gx, gy), "terms": [side.terms[label]]})
            labels.append(label)
    resp = await w.client.post(f"/api/images/{side.image_id}/annotations/batch",
                               json={"annotations": items, "project_id": side.project_id},
                               headers=side.actor.headers("POST"))
    assert resp.status == 201, await resp.text()
    ids = (await resp.json())["ids"]
    return dict(zip(ids, labels, strict=True))
