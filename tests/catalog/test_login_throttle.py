"""Failed logins are throttled per user name and per client address (429 + Retry-After)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from microtome.catalog.ratelimit import CLIENT_LIMIT, USER_LIMIT, WINDOW, LoginThrottle
from microtome.core.settings import Settings
from microtome.pyramid.errors import TooManyRequests
from tests.catalog.helpers import ANON, PASSWORD, call, create_user, login, setup_admin


async def _login_status(client: TestClient, username: str, password: str) -> int:
    status, _ = await call(client, ANON, "POST", "/api/session",
                           {"username": username, "password": password})
    return status


async def test_failed_logins_for_one_name_get_429(client: TestClient) -> None:
    admin = await setup_admin(client)
    await create_user(client, admin, "bob")
    for _ in range(USER_LIMIT):
        assert await _login_status(client, "bob", "wrong guess") == 401
    # The name is now locked, whatever the password (it is not even checked)
    # and whatever the case of the name.
    resp = await client.post("/api/session", json={"username": "BOB", "password": PASSWORD})
    assert resp.status == 429
    body = await resp.json()
    retry = int(resp.headers["Retry-After"])
    assert 1 <= retry <= WINDOW and body["detail"] == {"retry_after": retry}
    assert body["error"].startswith("too many failed logins")
    # Documented in the OpenAPI document (call() validates the body against it).
    assert await _login_status(client, "bob", PASSWORD) == 429
    # An unknown name is throttled the same way: 429 does not reveal who exists.
    for _ in range(USER_LIMIT):
        assert await _login_status(client, "ghost", "x") == 401
    assert await _login_status(client, "ghost", "x") == 429
    # Other names from the same client still work; a success clears nothing of bob's.
    await login(client, "admin")
    assert await _login_status(client, "bob", PASSWORD) == 429


async def test_success_resets_the_name_and_many_names_lock_the_client(
        client: TestClient) -> None:
    admin = await setup_admin(client)
    await create_user(client, admin, "carol")
    for _ in range(USER_LIMIT - 1):
        assert await _login_status(client, "carol", "wrong") == 401
    await login(client, "carol")  # a success forgets carol's failures
    for _ in range(USER_LIMIT - 1):
        assert await _login_status(client, "carol", "wrong") == 401
    await login(client, "carol")
    # Spraying many names from one address fills the client's counter
    # (USER_LIMIT - 1 failures per name, so no name is locked by itself).
    failures = 2 * (USER_LIMIT - 1)
    n = 0
    while failures < CLIENT_LIMIT:
        for _ in range(min(USER_LIMIT - 1, CLIENT_LIMIT - failures)):
            assert await _login_status(client, f"spray{n}", "x") == 401
            failures += 1
        n += 1
    assert await _login_status(client, "admin", PASSWORD) == 429
    assert await _login_status(client, "never-tried", "x") == 429


async def test_throttle_windows_expire_and_the_table_is_cleaned(client: TestClient) -> None:
    """Counted in PostgreSQL: windows close by the database clock, closed ones are deleted."""
    import asyncio

    from microtome.catalog.db import DB_POOL
    from microtome.catalog.ratelimit import cleanup

    pool = client.app[DB_POOL]
    t = LoginThrottle(user_limit=2, client_limit=3, window=1.0)
    await t.begin(pool, "eve", "10.0.0.1")
    await t.begin(pool, "Eve", "10.0.0.2")
    try:
        await t.begin(pool, "EVE", "10.0.0.3")
    except TooManyRequests as exc:
        assert exc.retry_after == 1 and exc.detail == {"retry_after": 1}  # rounded up, never 0
    else:
        raise AssertionError("third attempt for eve was allowed")
    await asyncio.sleep(1.1)
    await t.begin(pool, "eve", "10.0.0.3")  # the window closed: a fresh one
    # A verdict-less attempt (database down) is given back.
    await t.abandoned(pool, "eve", "10.0.0.3")
    await t.begin(pool, "eve", "10.0.0.3")
    for i in range(30):
        await t.begin(pool, f"user{i}", f"192.0.2.{i}")
    await asyncio.sleep(1.1)
    # Every window has closed: the cleanup leaves an empty table (bounded by one window).
    assert await cleanup(pool) >= 30
    assert await pool.fetchval("SELECT count(*) FROM throttle_counters") == 0


async def test_a_throttle_counted_on_one_process_applies_on_another(
        aiohttp_client: Any, settings: Settings) -> None:
    """Two applications (as two `serve` processes) on one database share the counters."""
    from aiohttp import DummyCookieJar

    from tests.catalog.conftest import make_app

    first = await aiohttp_client(make_app(settings), cookie_jar=DummyCookieJar())
    second = await aiohttp_client(make_app(settings), cookie_jar=DummyCookieJar())
    admin = await setup_admin(first)
    await create_user(first, admin, "dave")
    for i in range(USER_LIMIT):
        assert await _login_status(first if i % 2 else second, "dave", "wrong") == 401
    assert await _login_status(second, "dave", PASSWORD) == 429
    assert await _login_status(first, "dave", PASSWORD) == 429
