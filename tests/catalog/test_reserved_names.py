"""The local analysis worker's system account name cannot be taken by a person."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.catalog.helpers import call, setup_admin


async def test_the_local_worker_name_is_reserved(client: TestClient) -> None:
    admin = await setup_admin(client)
    for name in ("local-worker", "Local-Worker"):
        status, body = await call(client, admin, "POST", "/api/users",
                                  {"username": name, "password": "a-long-password-1"})
        assert status == 400 and "reserved" in body["error"], body
    await call(client, admin, "POST", "/api/users",
               {"username": "local-workers", "password": "a-long-password-1"}, expect=201)
