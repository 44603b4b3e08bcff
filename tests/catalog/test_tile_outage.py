"""Tiles while PostgreSQL is really stopped: what a credential could read stays
readable for the configured grace, everything else is a clear 503, and all
recovers by itself when the database is back."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient

from microtome.catalog.access import ACCESS
from microtome.catalog.images import register_image, storage_relpath
from microtome.catalog.state import CATALOG
from tests.catalog.conftest import ClientFactory, make_app, make_settings
from tests.catalog.helpers import Actor, call, create_user, login, setup_admin

GRACE_S = 4.0


class OwnPostgres:
    """A PostgreSQL of this test alone (pgserver's binaries), stopped and started at will."""

    def __init__(self, pgdata: Path) -> None:
        import pgserver

        self._pgserver = pgserver
        self.server = pgserver.get_server(pgdata, cleanup_mode="delete")
        self.url = self.server.get_uri("postgres")

    def stop(self) -> None:
        self._pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata,
                              user=self.server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()
        assert self.server.get_uri("postgres") == self.url


@pytest.fixture
def own_pg() -> Iterator[OwnPostgres]:
    # Short path: the unix socket lives in the data directory.
    pg = OwnPostgres(Path("/tmp") / f"mt-outage-{os.getpid()}-{secrets.token_hex(3)}")
    try:
        yield pg
    finally:
        pg.server.cleanup()


async def _add_image(url: str, images_dir: Path, pyramid: Path, project_id: int) -> int:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    try:
        image_id = await register_image(pool, name="slide", relpath="pending", width=700,
                                        height=500, levels=2, project_id=project_id)
        await pool.execute("UPDATE images SET storage_path = $2 WHERE id = $1", image_id,
                           storage_relpath(image_id))
    finally:
        await pool.close()
    dst = images_dir / storage_relpath(image_id)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(pyramid, dst)
    return image_id


def _tile(image_id: int, n: int = 0) -> str:
    return f"/dzi/{image_id}_files/9/{n % 2}_0.jpg"


async def _get(client: TestClient, actor: Actor, path: str) -> tuple[int, Any]:
    resp = await client.get(path, headers=actor.headers("GET"))
    body = await resp.read()
    if resp.status != 200:
        assert resp.content_type == "application/json", (resp.status, body[:100])
        return resp.status, await resp.json()
    assert body[:2] == b"\xff\xd8"
    return 200, None


async def test_tiles_during_a_database_outage(own_pg: OwnPostgres, aiohttp_client: ClientFactory,
                                              tmp_path: Path, small_pyramid: Path) -> None:
    settings = make_settings(tmp_path, own_pg.url, outage_grace_s=GRACE_S)
    client = await aiohttp_client(make_app(settings, tiles=True), cookie_jar=DummyCookieJar())
    app = client.app
    admin = await setup_admin(client)
    alice = await create_user(client, admin, "alice")
    bob = await create_user(client, admin, "bob")
    _, project = await call(client, alice, "POST", "/api/projects", {"name": "P"}, expect=201)
    await call(client, alice, "POST", f"/api/projects/{project['id']}/members",
               {"username": "bob", "role": "viewer"}, expect=201)
    _, key = await call(client, alice, "POST", "/api/api-keys", {"name": "k"}, expect=201)
    by_key = Actor("alice-key", api_key=key["key"])
    alice2 = await login(client, "alice")  # a second session, logged out before the outage
    seen, unseen = [await _add_image(own_pg.url, settings.images_dir, small_pyramid,
                                     project["id"]) for _ in range(2)]
    # Short caches, so that the outage outlasts them within seconds (default ~10 s).
    for cache in (app[CATALOG].images, app[CATALOG].access, app[ACCESS].principals):
        cache.ttl = 0.3

    for actor in (alice, by_key, alice2):
        assert (await _get(client, actor, _tile(seen)))[0] == 200
    await call(client, alice2, "DELETE", "/api/session", expect=204)
    last_check = time.monotonic()

    await asyncio.to_thread(own_pg.stop)
    try:
        await asyncio.sleep(0.6)  # every short-lived cache entry has expired

        # Light load: four clients keep reading what they read before.
        async def reader(actor: Actor, n: int) -> list[int]:
            out = []
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                out.append((await _get(client, actor, _tile(seen, n)))[0])
                n += 1
            return out

        runs = await asyncio.gather(*(reader(a, i) for i, a in
                                      enumerate((alice, by_key, alice, by_key))))
        assert all(s == 200 for run in runs for s in run) and sum(map(len, runs)) > 8
        # Anything not granted before the outage is refused, with a reason.
        for actor, image_id in ((alice, unseen), (by_key, unseen), (bob, seen),
                                (alice2, seen), (Actor("anon"), seen)):
            status, body = await _get(client, actor, _tile(image_id))
            assert status == 503, (actor.name, image_id, status)
            assert "database unavailable" in body["error"]
        status, _ = await call(client, alice, "GET", "/api/images")
        assert status == 503
        # The grace is bounded: past it, even known tiles are refused.
        await asyncio.sleep(max(0.0, last_check + GRACE_S + 0.3 - time.monotonic()))
        assert (await _get(client, alice, _tile(seen)))[0] == 503
    finally:
        await asyncio.to_thread(own_pg.start)

    # Back by itself once the database is.
    deadline = time.monotonic() + 30
    while (await _get(client, alice, _tile(seen)))[0] != 200:
        assert time.monotonic() < deadline, "tiles did not recover"
        await asyncio.sleep(0.2)
    for actor, image_id in ((alice, unseen), (by_key, seen), (bob, seen)):
        assert (await _get(client, actor, _tile(image_id)))[0] == 200
