"""The tile path remembers checked resolutions for a moment (catalog/resolver.py): a
revocation made here still ends access at the very next tile, and a signed URL
still stops at its expiry."""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg
from aiohttp import DummyCookieJar

from microtome.catalog import security
from tests.catalog.conftest import ClientFactory, make_app, make_settings
from tests.catalog.helpers import Actor, call, create_user, login, setup_admin
from tests.catalog.test_tile_outage import _add_image, _get, _tile


async def test_revocations_end_tile_access_at_the_next_tile(
        aiohttp_client: ClientFactory, tmp_path: Path, database_url: str,
        small_pyramid: Path) -> None:
    settings = make_settings(tmp_path, database_url)
    client = await aiohttp_client(make_app(settings, tiles=True), cookie_jar=DummyCookieJar())
    admin = await setup_admin(client)
    alice = await create_user(client, admin, "alice")
    bob = await create_user(client, admin, "bob")
    _, project = await call(client, alice, "POST", "/api/projects", {"name": "P"}, expect=201)
    await call(client, alice, "POST", f"/api/projects/{project['id']}/members",
               {"username": "bob", "role": "viewer"}, expect=201)
    _, key = await call(client, alice, "POST", "/api/api-keys", {"name": "k"}, expect=201)
    by_key = Actor("alice-key", api_key=key["key"])
    alice2 = await login(client, "alice")
    image = await _add_image(database_url, settings.images_dir, small_pyramid, project["id"])
    tile = _tile(image)

    for actor in (alice, alice2, by_key, bob):
        for _ in range(3):  # the later ones come from the memo
            assert (await _get(client, actor, tile))[0] == 200, actor.name

    # Each revocation, then at once the same tile with the same credential: refused.
    await call(client, alice2, "DELETE", "/api/session", expect=204)
    assert (await _get(client, alice2, tile))[0] == 401
    await call(client, alice, "DELETE", f"/api/api-keys/{key['id']}", expect=204)
    assert (await _get(client, by_key, tile))[0] == 401
    await call(client, alice, "DELETE", f"/api/projects/{project['id']}/members/{bob.user_id}",
               expect=204)
    assert (await _get(client, bob, tile))[0] == 404
    # Those who kept their access still read (and the memo was only a shortcut).
    assert (await _get(client, alice, tile))[0] == 200

    # A signed URL stops at its expiry, however warm.
    conn = await asyncpg.connect(database_url)
    try:
        version = await conn.fetchval("SELECT version FROM images WHERE id = $1", image)
    finally:
        await conn.close()
    expires = int(time.time()) + 2
    token = security.tile_token(settings.secret_key, image, version, expires,
                                user=alice.user_id)
    signed = f"/dzi/{image}~{token}_files/9/0_0.jpg"
    anon = Actor("anon")
    seen_after = 0
    while time.time() < expires + 1.2:
        started = time.time()
        status = (await _get(client, anon, signed))[0]
        if started > expires + 0.001:
            assert status == 401, f"{started - expires:.3f} s after expiry"
            seen_after += 1
        elif time.time() < expires:  # answered before the expiry
            assert status == 200
    assert seen_after > 0
