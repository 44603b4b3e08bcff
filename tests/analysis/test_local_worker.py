"""`microtome serve`'s local workers: their system user appears only after the
first-run set-up (else the set-up page would vanish), each start gets a new
key and revokes the old ones; the URL a local process reaches the server at."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from microtome.catalog.db import DB_POOL
from microtome.catalog.security import digest
from microtome.local_worker import USERNAME, local_url, worker_key


async def test_worker_user_waits_for_setup_and_keys_rotate(api: TestClient) -> None:
    pool = api.app[DB_POOL]
    assert await worker_key(pool) is None
    assert await pool.fetchval("SELECT count(*) FROM users") == 0  # set-up still needed
    await pool.execute("INSERT INTO users (username, is_admin) VALUES ('first', true)")
    k1 = await worker_key(pool)
    k2 = await worker_key(pool)
    assert k1 and k2 and k1 != k2
    user = await pool.fetchrow("SELECT id, is_admin, password_hash FROM users"
                               " WHERE username = $1", USERNAME)
    assert user["is_admin"] and user["password_hash"] is None  # cannot log in
    live = await pool.fetch("SELECT key_hash FROM api_keys WHERE user_id = $1"
                            " AND revoked_at IS NULL", user["id"])
    assert [r["key_hash"] for r in live] == [digest(k2)]
    resp = await api.get("/api/analyses/1", headers={"Authorization": f"Bearer {k1}"})
    assert resp.status == 401
    resp = await api.get("/api/apps", headers={"Authorization": f"Bearer {k2}"})
    assert resp.status == 200


def test_local_url() -> None:
    assert local_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert local_url("::", 80) == "http://[::1]:80"
    assert local_url("127.0.0.1", 9) == "http://127.0.0.1:9"
    assert local_url("lab.example", 8000) == "http://lab.example:8000"
