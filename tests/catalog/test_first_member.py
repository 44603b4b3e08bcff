"""A project without any member (`microtome import` without --owner) gets its first
member from an administrator, in any role; the last manager still cannot leave."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from microtome.catalog.db import connect
from tests.catalog.helpers import call
from tests.catalog.world import _direct_user


async def test_admin_adds_any_first_member(client: TestClient, database_url: str) -> None:
    from tests.catalog.helpers import setup_admin

    admin = await setup_admin(client)
    viewer = await _direct_user(database_url, "viewer")
    manager = await _direct_user(database_url, "manager")
    conn = await connect(database_url)
    try:
        pid = await conn.fetchval("INSERT INTO projects (name) VALUES ('Imported') RETURNING id")
    finally:
        await conn.close()
    _, member = await call(client, admin, "POST", f"/api/projects/{pid}/members",
                           {"username": "viewer", "role": "viewer"}, expect=201)
    assert member["role"] == "viewer"
    await call(client, admin, "PUT", f"/api/projects/{pid}/members/{manager.user_id}",
               {"role": "manager"}, expect=200)
    # From now on the project has a manager, and keeps one.
    status, body = await call(client, admin, "PUT",
                              f"/api/projects/{pid}/members/{manager.user_id}",
                              {"role": "viewer"})
    assert status == 409 and "at least one manager" in body["error"]
    status, _ = await call(client, admin, "DELETE",
                           f"/api/projects/{pid}/members/{manager.user_id}")
    assert status == 409
    await call(client, viewer, "GET", f"/api/projects/{pid}", expect=200)
