"""One-time password reset links, the forced change after a reset, my sessions and
the administrator's role switch (issue 14, accounts a lab can run)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from microtome.catalog.access import PASSWORD_CHANGE_REASON, forget_all
from microtome.catalog.api_accounts import RESET_FAILURES
from tests.catalog.helpers import ANON, PASSWORD, Actor, call, create_user, login, setup_admin

NEW = "a brand new password"


async def _reset_link(client: TestClient, admin: Actor, user: Actor) -> str:
    _, link = await call(client, admin, "POST", f"/api/users/{user.user_id}/reset-link",
                         expect=201)
    assert link["path"] == f"/reset#token={link['token']}"
    assert link["url"].endswith(link["path"]) and link["username"] == user.name
    return str(link["token"])


async def _forced(client: TestClient, actor: Actor) -> bool:
    """Whether `actor` is held at the password change (403 with the JSON reason)."""
    status, body = await call(client, actor, "GET", "/api/projects")
    if status == 200:
        return False
    assert status == 403 and body["detail"]["reason"] == PASSWORD_CHANGE_REASON, body
    return True


async def test_reset_link_is_single_use_and_forces_a_new_password(
        client: TestClient, database_url: str) -> None:
    admin = await setup_admin(client)
    nina = await create_user(client, admin, "nina")
    _, key = await call(client, nina, "POST", "/api/api-keys", {"name": "k"}, expect=201)
    script = Actor("script", api_key=key["key"])
    token = await _reset_link(client, admin, nina)
    conn = await asyncpg.connect(database_url)
    try:  # only the hash is stored
        stored = await conn.fetchval("SELECT token_hash FROM password_resets")
        assert token.encode() not in stored and len(stored) == 32
    finally:
        await conn.close()
    # Her sessions and keys ended at once.
    await call(client, nina, "GET", "/api/session", expect=401)
    await call(client, script, "GET", "/api/projects", expect=401)
    # Signing in with the old password works, but nothing else does until she changes it.
    held = await login(client, "nina")
    _, me = await call(client, held, "GET", "/api/session", expect=200)
    assert me["user"]["must_change_password"] is True
    assert await _forced(client, held)
    for method, path, body in (("POST", "/api/projects", {"name": "x"}),
                               ("POST", "/api/api-keys", {"name": "k2"}),
                               ("GET", f"/api/users/{held.user_id}", None)):
        status, got = await call(client, held, method, path, body)
        assert status == 403 and got["detail"]["reason"] == PASSWORD_CHANGE_REASON, got
    # The link: whose it is, then the password rule, then once only.
    _, info = await call(client, ANON, "POST", "/api/password-reset/check", {"token": token},
                         expect=200)
    assert info["username"] == "nina"
    status, body = await call(client, ANON, "POST", "/api/password-reset",
                              {"token": token, "new_password": "short"})
    assert status == 400, body
    await call(client, ANON, "POST", "/api/password-reset",
               {"token": token, "new_password": NEW}, expect=204)
    status, body = await call(client, ANON, "POST", "/api/password-reset",
                              {"token": token, "new_password": "yet another one"})
    assert status == 404 and body["detail"]["reason"] == "used", body
    status, body = await call(client, ANON, "POST", "/api/password-reset/check",
                              {"token": token})
    assert status == 404 and body["detail"]["reason"] == "used"
    # The session held at the change ended; the old password is gone; the new one works.
    await call(client, held, "GET", "/api/session", expect=401)
    resp = await client.post("/api/session", json={"username": "nina", "password": PASSWORD})
    assert resp.status == 401
    nina = await login(client, "nina", password=NEW)
    assert not await _forced(client, nina)
    _, users = await call(client, admin, "GET", "/api/users", expect=200)
    assert {u["username"]: u["must_change_password"] for u in users["items"]}["nina"] is False


async def test_newer_link_or_a_password_change_ends_a_link(client: TestClient) -> None:
    admin = await setup_admin(client)
    nina = await create_user(client, admin, "nina")
    first = await _reset_link(client, admin, nina)
    second = await _reset_link(client, admin, nina)
    status, body = await call(client, ANON, "POST", "/api/password-reset",
                              {"token": first, "new_password": NEW})
    assert status == 404 and body["detail"]["reason"] == "superseded", body
    # She signs in with her old password and changes it herself: the link dies.
    held = await login(client, "nina")
    assert await _forced(client, held)
    await call(client, held, "POST", "/api/account/password",
               {"current_password": PASSWORD, "new_password": NEW}, expect=204)
    assert not await _forced(client, held)  # this session goes on
    status, body = await call(client, ANON, "POST", "/api/password-reset",
                              {"token": second, "new_password": "another password"})
    assert status == 404 and body["detail"]["reason"] == "superseded", body
    await login(client, "nina", password=NEW)
    # No link for yourself; only administrators make links; unknown users are 404.
    await call(client, admin, "POST", f"/api/users/{admin.user_id}/reset-link", expect=409)
    await call(client, held, "POST", f"/api/users/{admin.user_id}/reset-link", expect=403)
    await call(client, admin, "POST", "/api/users/999999/reset-link", expect=404)
    status, _ = await call(client, admin, "POST", f"/api/users/{nina.user_id}/reset-link",
                           {"unexpected": 1})
    assert status == 400


async def test_expired_and_wrong_tokens(aiohttp_client: Any, tmp_path: Path,
                                        database_url: str) -> None:
    from aiohttp import DummyCookieJar

    from tests.catalog.conftest import make_app, make_settings

    settings = make_settings(tmp_path, database_url, reset_link_hours=5)
    client = await aiohttp_client(make_app(settings), cookie_jar=DummyCookieJar())
    admin = await setup_admin(client)
    nina = await create_user(client, admin, "nina")
    _, link = await call(client, admin, "POST", f"/api/users/{nina.user_id}/reset-link",
                         expect=201)
    left = dt.datetime.fromisoformat(link["expires_at"]) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(hours=4, minutes=55) < left <= dt.timedelta(hours=5)
    token = link["token"]
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE password_resets SET expires_at = now() - interval '1 s'")
    finally:
        await conn.close()
    for path, body in (("/api/password-reset/check", {"token": token}),
                       ("/api/password-reset", {"token": token, "new_password": NEW})):
        status, got = await call(client, ANON, "POST", path, body)
        assert status == 404 and got["detail"]["reason"] == "expired", got
    resp = await client.post("/api/session", json={"username": "nina", "password": NEW})
    assert resp.status == 401  # nothing was set
    # Malformed tokens are 400, unknown well-formed ones 404 — all JSON.
    for bad in ({"token": "short"}, {"token": "a" * 40 + "/.."}, {"token": 12345678901234567},
                {}, {"token": "a" * 129}):
        status, got = await call(client, ANON, "POST", "/api/password-reset/check", bad)
        assert status == 400, (bad, got)
    status, got = await call(client, ANON, "POST", "/api/password-reset",
                             {"token": "b" * 43, "new_password": NEW})
    assert status == 404 and got["detail"]["reason"] == "unknown"


async def test_guessing_tokens_is_throttled_per_address(client: TestClient) -> None:
    admin = await setup_admin(client)
    nina = await create_user(client, admin, "nina")
    token = await _reset_link(client, admin, nina)
    for i in range(RESET_FAILURES.limit):
        await call(client, ANON, "POST", "/api/password-reset/check",
                   {"token": f"guess{i:04d}" + "x" * 30}, expect=404)
    status, body = await call(client, ANON, "POST", "/api/password-reset/check",
                              {"token": "guess-more" + "x" * 30})
    assert status == 429 and body["detail"]["retry_after"] > 0
    # From this address even the right token waits (the answer tells nothing).
    status, _ = await call(client, ANON, "POST", "/api/password-reset",
                           {"token": token, "new_password": NEW})
    assert status == 429


async def test_temporary_password_also_forces_a_change(client: TestClient) -> None:
    admin = await setup_admin(client)
    nina = await create_user(client, admin, "nina")
    await call(client, admin, "POST", f"/api/users/{nina.user_id}/password",
               {"password": "temporary pw 1"}, expect=204)
    held = await login(client, "nina", password="temporary pw 1")
    assert await _forced(client, held)
    status, _ = await call(client, held, "POST", "/api/account/password",
                           {"current_password": "wrong password", "new_password": NEW})
    assert status == 403
    await call(client, held, "POST", "/api/account/password",
               {"current_password": "temporary pw 1", "new_password": NEW}, expect=204)
    assert not await _forced(client, held)
    # An administrator may also ask for a change at the first sign-in.
    _, user = await call(client, admin, "POST", "/api/users",
                         {"username": "omar", "password": PASSWORD,
                          "must_change_password": True}, expect=201)
    assert user["must_change_password"] is True
    assert await _forced(client, await login(client, "omar"))


async def test_my_sessions_and_sign_out_everywhere(client: TestClient) -> None:
    admin = await setup_admin(client)
    here = await create_user(client, admin, "nina")
    there = await login(client, "nina")
    _, key = await call(client, here, "POST", "/api/api-keys", {"name": "k"}, expect=201)
    _, mine = await call(client, here, "GET", "/api/account/sessions", expect=200)
    assert mine["total"] == 2 and [s["current"] for s in mine["items"]].count(True) == 1
    _, theirs = await call(client, admin, "GET", "/api/account/sessions", expect=200)
    assert theirs["total"] == 1  # only one's own
    await call(client, ANON, "GET", "/api/account/sessions", expect=401)
    resp = await client.delete("/api/account/sessions", headers=here.headers("DELETE"))
    assert resp.status == 204
    assert resp.cookies["microtome_session"].value == ""
    for who in (here, there):
        await call(client, who, "GET", "/api/session", expect=401)
    forget_all(client.app)
    await call(client, Actor("script", api_key=key["key"]), "GET", "/api/account/sessions",
               expect=200)  # keys are not sessions
    await call(client, admin, "GET", "/api/session", expect=200)


async def test_admin_changes_roles(client: TestClient) -> None:
    admin = await setup_admin(client)
    nina = await create_user(client, admin, "nina")
    await call(client, nina, "GET", "/api/users", expect=403)
    _, user = await call(client, admin, "PATCH", f"/api/users/{nina.user_id}",
                         {"is_admin": True}, expect=200)
    assert user["is_admin"] is True and user["disabled"] is False
    forget_all(client.app)
    await call(client, nina, "GET", "/api/users", expect=200)
    await call(client, admin, "PATCH", f"/api/users/{admin.user_id}", {"is_admin": False},
               expect=409)
    await call(client, admin, "PATCH", f"/api/users/{nina.user_id}", {}, expect=400)
    await call(client, nina, "PATCH", f"/api/users/{admin.user_id}", {"is_admin": False},
               expect=200)  # another administrator may
    forget_all(client.app)
    await call(client, admin, "GET", "/api/users", expect=403)
