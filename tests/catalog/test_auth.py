"""Sessions, CSRF, API keys, first-run setup, users."""

from __future__ import annotations

import asyncpg
from aiohttp.test_utils import TestClient

from microtome.catalog.security import digest
from tests.catalog.helpers import ANON, PASSWORD, Actor, call, create_user, login, setup_admin


async def test_first_run_setup_only_once(client: TestClient) -> None:
    _, body = await call(client, ANON, "GET", "/api/setup", expect=200)
    assert body == {"needs_setup": True}
    admin = await setup_admin(client)
    _, body = await call(client, ANON, "GET", "/api/setup", expect=200)
    assert body == {"needs_setup": False}
    await call(client, ANON, "POST", "/api/setup",
               {"username": "mallory", "password": PASSWORD}, expect=409)
    _, me = await call(client, admin, "GET", "/api/session", expect=200)
    assert me["user"]["username"] == "admin" and me["user"]["is_admin"] is True
    assert me["csrf_token"] == admin.csrf


async def test_login_cookie_flags_and_logout(client: TestClient, database_url: str) -> None:
    await setup_admin(client)
    resp = await client.post("/api/session", json={"username": "ADMIN", "password": PASSWORD})
    assert resp.status == 200
    morsel = resp.cookies["microtome_session"]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Lax"
    token = morsel.value
    # Only a digest of the token is stored.
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval("SELECT count(*) FROM sessions WHERE token_hash = $1",
                                     digest(token))
        plain = await conn.fetchval("SELECT count(*) FROM sessions WHERE csrf_token = $1 "
                                    "OR encode(token_hash, 'escape') = $1", token)
    finally:
        await conn.close()
    assert stored == 1 and plain == 0
    actor = Actor("admin", cookie=token, csrf=(await resp.json())["csrf_token"])
    await call(client, actor, "GET", "/api/session", expect=200)
    await call(client, actor, "DELETE", "/api/session", expect=204)
    await call(client, actor, "GET", "/api/session", expect=401)


async def test_wrong_password_and_unknown_user(client: TestClient) -> None:
    await setup_admin(client)
    for creds in ({"username": "admin", "password": "nope"},
                  {"username": "ghost", "password": PASSWORD}):
        status, body = await call(client, ANON, "POST", "/api/session", creds)
        assert status == 401 and body["error"] == "wrong user name or password"


async def test_csrf_required_for_cookie_writes(client: TestClient) -> None:
    admin = await setup_admin(client)
    no_csrf = Actor("admin", cookie=admin.cookie)
    status, body = await call(client, no_csrf, "POST", "/api/projects", {"name": "P"})
    assert status == 403 and "CSRF" in body["error"]
    bad = Actor("admin", cookie=admin.cookie, csrf="forged")
    await call(client, bad, "POST", "/api/projects", {"name": "P"}, expect=403)
    await call(client, admin, "POST", "/api/projects", {"name": "P"}, expect=201)
    # Reads need no CSRF token.
    await call(client, no_csrf, "GET", "/api/projects", expect=200)


async def test_expired_session_is_anonymous(client: TestClient, database_url: str) -> None:
    admin = await setup_admin(client)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE sessions SET expires_at = now() - interval '1 second'")
    finally:
        await conn.close()
    from microtome.catalog.access import forget_all

    forget_all(client.app)
    await call(client, admin, "GET", "/api/session", expect=401)
    await call(client, admin, "POST", "/api/projects", {"name": "X"}, expect=401)


async def test_api_keys_shown_once_and_revocable(client: TestClient, database_url: str) -> None:
    admin = await setup_admin(client)
    _, created = await call(client, admin, "POST", "/api/api-keys", {"name": "script"},
                            expect=201)
    key = created["key"]
    assert key.startswith("mt_") and created["prefix"] == key[:10]
    _, listed = await call(client, admin, "GET", "/api/api-keys", expect=200)
    assert listed["total"] == 1 and "key" not in listed["items"][0]
    bearer = Actor("script", api_key=key)
    _, me = await call(client, bearer, "GET", "/api/session", expect=200)
    assert me["user"]["username"] == "admin"
    # Bearer writes need no CSRF token (no ambient credential).
    await call(client, bearer, "POST", "/api/projects", {"name": "from-script"}, expect=201)
    await call(client, admin, "DELETE", f"/api/api-keys/{created['id']}", expect=204)
    status, body = await call(client, bearer, "GET", "/api/projects")
    assert status == 401 and "revoked" in body["error"]
    await call(client, Actor("x", api_key="mt_wrong"), "GET", "/api/images", expect=401)
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM api_keys WHERE key_hash = $1",
                                   digest(key)) == 1
    finally:
        await conn.close()


async def test_users_admin_only(client: TestClient) -> None:
    admin = await setup_admin(client)
    alice = await create_user(client, admin, "alice")
    await call(client, alice, "GET", "/api/users", expect=403)
    await call(client, alice, "POST", "/api/users",
               {"username": "eve", "password": PASSWORD}, expect=403)
    await call(client, alice, "GET", f"/api/users/{alice.user_id}", expect=200)
    await call(client, alice, "GET", f"/api/users/{admin.user_id}", expect=404)
    _, users = await call(client, admin, "GET", "/api/users?limit=1", expect=200)
    assert users["total"] == 2 and len(users["items"]) == 1
    await call(client, admin, "POST", "/api/users",
               {"username": "Alice", "password": PASSWORD}, expect=409)
    await call(client, admin, "DELETE", f"/api/users/{alice.user_id}", expect=204)
    await call(client, alice, "GET", "/api/session", expect=401)
    await call(client, admin, "DELETE", f"/api/users/{admin.user_id}", expect=409)
    relog = await login(client, "admin")
    await call(client, relog, "GET", "/api/session", expect=200)
