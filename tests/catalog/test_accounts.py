"""Accounts a lab can run (issue 14, item 5): the first-run password obeys the same
rule as every other password; administrators see when each account last logged in."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.catalog.helpers import ANON, PASSWORD, call, login


async def test_first_run_password_rule_and_last_login(client: TestClient) -> None:
    for weak in ("x", "seven77"):
        status, body = await call(client, ANON, "POST", "/api/setup",
                                  {"username": "admin", "password": weak})
        assert status == 400 and "at least 8 characters" in body["error"], body
    _, state = await call(client, ANON, "GET", "/api/setup", expect=200)
    assert state["needs_setup"] is True  # a refused setup creates nobody
    resp = await client.post("/api/setup", json={"username": "admin", "password": PASSWORD})
    assert resp.status == 201
    admin = await login(client, "admin")
    _, user = await call(client, admin, "POST", "/api/users",
                         {"username": "tech", "password": PASSWORD}, expect=201)
    assert user["last_login_at"] is None
    _, users = await call(client, admin, "GET", "/api/users", expect=200)
    seen = {u["username"]: u["last_login_at"] for u in users["items"]}
    assert seen["admin"] is not None and seen["tech"] is None
    await login(client, "tech")
    _, tech = await call(client, admin, "GET", f"/api/users/{user['id']}", expect=200)
    assert tech["last_login_at"] is not None and tech["last_login_at"] >= seen["admin"]


async def test_share_links_record_their_last_use(client: TestClient) -> None:
    from microtome.catalog.access import forget_all
    from tests.catalog.helpers import Actor, setup_admin

    admin = await setup_admin(client)
    _, project = await call(client, admin, "POST", "/api/projects", {"name": "P"}, expect=201)
    _, link = await call(client, admin, "POST", "/api/share-links",
                         {"project_id": project["id"], "expires_in": 3600}, expect=201)
    _, links = await call(client, admin, "GET", "/api/share-links", expect=200)
    assert links["items"][0]["last_used_at"] is None
    forget_all(client.app)
    await call(client, Actor("guest", share=link["token"]), "GET", "/api/share", expect=200)
    _, links = await call(client, admin, "GET", "/api/share-links", expect=200)
    assert links["items"][0]["last_used_at"] is not None
