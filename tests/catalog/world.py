"""A populated catalog: one private project with one real image and one actor per role."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestClient

from microtome.catalog.access import forget_all
from microtome.catalog.images import register_image, storage_relpath
from microtome.catalog.security import digest, new_token, share_token
from microtome.core.settings import Settings
from tests.catalog.helpers import ANON, SECRET, Actor, call, setup_admin


@dataclass
class World:
    project_id: int
    image_id: int
    actors: dict[str, Actor]


async def _direct_user(database_url: str, name: str) -> Actor:
    """A user with a session, written straight to the database: argon2 is slow by
    design and the API path for users and logins has its own tests (test_auth)."""
    token, csrf = new_token(), new_token(16)
    conn = await asyncpg.connect(database_url)
    try:
        user_id = await conn.fetchval(
            "INSERT INTO users (username, password_hash) VALUES ($1, NULL) RETURNING id", name)
        await conn.execute(
            "INSERT INTO sessions (token_hash, csrf_token, user_id, expires_at)"
            " VALUES ($1, $2, $3, now() + interval '1 hour')", digest(token), csrf, user_id)
    finally:
        await conn.close()
    return Actor(name, user_id, cookie=token, csrf=csrf)


async def build_world(client: TestClient, settings: Settings, database_url: str,
                      pyramid: Path) -> World:
    admin = await setup_admin(client)
    manager, contributor, viewer, outsider = [
        await _direct_user(database_url, n)
        for n in ("manager", "contributor", "viewer", "outsider")]
    _, project = await call(client, manager, "POST", "/api/projects",
                            {"name": "Private", "description": "secret slides"}, expect=201)
    pid = project["id"]
    for actor, role in ((contributor, "contributor"), (viewer, "viewer")):
        await call(client, manager, "PUT", f"/api/projects/{pid}/members/{actor.user_id}",
                   {"role": role}, expect=200)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        image_id = await register_image(pool, name="slide-1", relpath="pending", width=700,
                                        height=500, levels=2, project_id=pid)
        await pool.execute("UPDATE images SET storage_path = $2 WHERE id = $1", image_id,
                           storage_relpath(image_id))
    finally:
        await pool.close()
    dst = settings.images_dir / storage_relpath(image_id)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(pyramid, dst)

    _, link = await call(client, manager, "POST", "/api/share-links",
                         {"image_id": image_id, "expires_in": 3600}, expect=201)
    _, old = await call(client, manager, "POST", "/api/share-links",
                        {"image_id": image_id, "expires_in": 3600}, expect=201)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE share_links SET expires_at = now() - interval '1 minute'"
                           " WHERE id = $1", old["id"])
    finally:
        await conn.close()
    expired_token = share_token(SECRET, old["id"], int(time.time()) - 60)
    _, key = await call(client, manager, "POST", "/api/api-keys", {"name": "old"}, expect=201)
    await call(client, manager, "DELETE", f"/api/api-keys/{key['id']}", expect=204)
    forget_all(client.app)
    actors = {
        "anonymous": ANON, "outsider": outsider, "viewer": viewer,
        "contributor": contributor, "manager": manager, "admin": admin,
        "share": Actor("share", share=link["token"]),
        "share_expired": Actor("share_expired", share=expired_token),
        "revoked_key": Actor("revoked_key", api_key=key["key"]),
    }
    return World(pid, image_id, actors)
