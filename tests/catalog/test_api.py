"""Projects, members, images: behaviour, pagination, and bad input (never a 500)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestClient

from microtome.catalog.images import register_image
from tests.catalog.helpers import Actor, call, create_user, login, setup_admin


async def _images(database_url: str, project_id: int, names: list[str]) -> list[int]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        return [await register_image(pool, name=n, relpath=f"x/{n}", width=10, height=10,
                                     levels=1, project_id=project_id) for n in names]
    finally:
        await pool.close()


async def test_project_crud_and_roles(client: TestClient) -> None:
    admin = await setup_admin(client)
    bob = await create_user(client, admin, "bob")
    _, p = await call(client, bob, "POST", "/api/projects", {"name": "Lung"}, expect=201)
    assert p["role"] == "manager" and p["image_count"] == 0 and p["public"] is False
    await call(client, bob, "POST", "/api/projects", {"name": "lung"}, expect=409)
    _, p2 = await call(client, bob, "PATCH", f"/api/projects/{p['id']}",
                       {"name": "Lung cohort", "public": True}, expect=200)
    assert p2["name"] == "Lung cohort" and p2["public"] is True
    # A public project is readable by anyone, writable by nobody anonymous.
    anon = Actor("anon")
    await call(client, anon, "GET", f"/api/projects/{p['id']}", expect=200)
    await call(client, anon, "PATCH", f"/api/projects/{p['id']}", {"name": "x"}, expect=401)
    # The last manager cannot be demoted or removed.
    await call(client, bob, "PUT", f"/api/projects/{p['id']}/members/{bob.user_id}",
               {"role": "viewer"}, expect=409)
    await call(client, bob, "DELETE", f"/api/projects/{p['id']}/members/{bob.user_id}",
               expect=409)
    await call(client, bob, "PUT", f"/api/projects/{p['id']}/members/999999",
               {"role": "viewer"}, expect=404)
    _, members = await call(client, bob, "GET", f"/api/projects/{p['id']}/members", expect=200)
    assert [(m["username"], m["role"]) for m in members["items"]] == [("bob", "manager")]


async def test_manager_adds_member_by_name(client: TestClient) -> None:
    admin = await setup_admin(client)
    mia = await create_user(client, admin, "Mia")
    await create_user(client, admin, "noah")
    _, p = await call(client, mia, "POST", "/api/projects", {"name": "Team"}, expect=201)
    members = f"/api/projects/{p['id']}/members"
    # Mia manages the project but is no admin: the user list stays closed to her...
    await call(client, mia, "GET", "/api/users", expect=403)
    # ...yet she adds Noah by his exact name (case-insensitive, like login).
    _, added = await call(client, mia, "POST", members, {"username": "NOAH", "role": "viewer"},
                          expect=201)
    assert added["username"] == "noah" and added["role"] == "viewer"
    # Again with another role: a role change of an existing member (200).
    _, changed = await call(client, mia, "POST", members,
                            {"username": "noah", "role": "contributor"}, expect=200)
    assert changed["user_id"] == added["user_id"] and changed["role"] == "contributor"
    _, listed = await call(client, mia, "GET", members, expect=200)
    assert sorted((m["username"], m["role"]) for m in listed["items"]) == [
        ("Mia", "manager"), ("noah", "contributor")]
    # Exact names only: no prefix or pattern matching, and unknown names are a JSON 404.
    for name in ("noa", "no%", "noah_", "%"):
        status, body = await call(client, mia, "POST", members,
                                  {"username": name, "role": "viewer"})
        assert status == 404 and body["error"] == "no user with this name", (name, body)
    # Bad bodies are 400s; the last manager cannot demote herself by name either.
    for bad in ({"username": "noah"}, {"role": "viewer"}, {"username": "", "role": "viewer"},
                {"username": "noah", "role": "owner"}, {"username": 7, "role": "viewer"},
                {"username": "noah", "role": "viewer", "user_id": 1}):
        await call(client, mia, "POST", members, bad, expect=400)
    await call(client, mia, "POST", members, {"username": "mia", "role": "viewer"},
               expect=409)
    # Noah (contributor) may not add anyone; a missing project is a 404.
    noah = await login(client, "noah")
    await call(client, noah, "POST", members, {"username": "admin", "role": "viewer"},
               expect=403)
    await call(client, mia, "POST", "/api/projects/999999/members",
               {"username": "noah", "role": "viewer"}, expect=404)


async def test_image_listing_pagination_sort_filter(client: TestClient,
                                                    database_url: str) -> None:
    admin = await setup_admin(client)
    _, p = await call(client, admin, "POST", "/api/projects", {"name": "P"}, expect=201)
    names = [f"slide-{i:02d}" for i in range(12)] + ["100%_done", "other"]
    await _images(database_url, p["id"], names)
    _, page1 = await call(client, admin, "GET",
                          f"/api/projects/{p['id']}/images?limit=5&sort=name", expect=200)
    assert page1["total"] == 14 and len(page1["items"]) == 5
    assert [i["name"] for i in page1["items"]] == sorted(names, key=str.lower)[:5]
    _, page3 = await call(client, admin, "GET",
                          f"/api/projects/{p['id']}/images?limit=5&offset=10&sort=-name",
                          expect=200)
    assert [i["name"] for i in page3["items"]] == sorted(names, key=str.lower,
                                                         reverse=True)[10:]
    _, found = await call(client, admin, "GET", "/api/images?q=SLIDE-1", expect=200)
    assert sorted(i["name"] for i in found["items"]) == ["slide-10", "slide-11"]
    # LIKE wildcards in the query are literal.
    _, pct = await call(client, admin, "GET", "/api/images?q=%25_", expect=200)
    assert [i["name"] for i in pct["items"]] == ["100%_done"]
    _, ready = await call(client, admin, "GET", "/api/images?status=ready&limit=1", expect=200)
    assert ready["total"] == 14
    img = page1["items"][0]
    assert img["urls"]["dzi"] == f"/dzi/{img['id']}.dzi"
    for bad in ("limit=0", "limit=501", "limit=x", "offset=-1", "sort=password_hash",
                "status=weird", "q=" + "x" * 201, "q=%00"):
        await call(client, admin, "GET", f"/api/images?{bad}", expect=400)


async def test_rename_add_remove_image(client: TestClient, database_url: str) -> None:
    admin = await setup_admin(client)
    _, a = await call(client, admin, "POST", "/api/projects", {"name": "A"}, expect=201)
    _, b = await call(client, admin, "POST", "/api/projects", {"name": "B"}, expect=201)
    (iid,) = await _images(database_url, a["id"], ["one"])
    _, img = await call(client, admin, "PATCH", f"/api/images/{iid}", {"name": "renamed"},
                        expect=200)
    assert img["name"] == "renamed"
    await call(client, admin, "POST", f"/api/projects/{b['id']}/images", {"image_id": iid},
               expect=201)
    _, pb = await call(client, admin, "GET", f"/api/projects/{b['id']}", expect=200)
    assert pb["image_count"] == 1
    await call(client, admin, "DELETE", f"/api/projects/{b['id']}/images/{iid}", expect=204)
    await call(client, admin, "DELETE", f"/api/projects/{b['id']}/images/{iid}", expect=404)
    await call(client, admin, "POST", f"/api/projects/{b['id']}/images",
               {"image_id": 424242}, expect=404)


async def test_bad_input_is_4xx_with_json(client: TestClient) -> None:
    admin = await setup_admin(client)
    bodies = [
        b"{not json", b"[1, 2]", b'"string"', b"null",
        b'{"name": 5}', b'{"name": ""}', b'{"name": "' + b"x" * 201 + b'"}',
        b'{"name": "ok", "owner": 1}',          # unknown field
        b'{"name": "ok", "public": "yes"}',      # wrong type
        b'{"name": "\\u0000"}', b'{"name": "ok\\u0000", "description": "x"}',
    ]
    for raw in bodies:
        status, body = await call(client, admin, "POST", "/api/projects", data=raw)
        assert status == 400, (raw, status, body)
    # SQL-looking strings are just names.
    sql = "x'); DROP TABLE projects; --"
    _, p = await call(client, admin, "POST", "/api/projects", {"name": sql}, expect=201)
    _, again = await call(client, admin, "GET", f"/api/projects/{p['id']}", expect=200)
    assert again["name"] == sql
    # Ids that are not ids are 404s, not 500s.
    for path in ("/api/projects/abc", "/api/projects/-1", "/api/images/1e9",
                 "/api/images/99999999999999999999999", "/api/projects/0"):
        status, _ = await call(client, admin, "GET", path, validate=False)
        assert status == 404, path
    await call(client, admin, "POST", "/api/projects", data=b"{" + b" " * 300_000 + b"}",
               expect=413)
    await call(client, admin, "PUT", f"/api/projects/{p['id']}/members/{admin.user_id}",
               {"role": "owner"}, expect=400)
    await call(client, admin, "POST", "/api/share-links",
               {"image_id": 1, "project_id": 1, "expires_in": 600}, expect=400)
    await call(client, admin, "POST", "/api/share-links", {"image_id": 1, "expires_in": 5},
               expect=400)
    await call(client, admin, "POST", "/api/users",
               {"username": "has space", "password": "long enough"}, expect=400)


async def test_delete_image_being_converted_is_409(client: TestClient,
                                                  database_url: str) -> None:
    admin = await setup_admin(client)
    _, p = await call(client, admin, "POST", "/api/projects", {"name": "P"}, expect=201)
    (iid,) = await _images(database_url, p["id"], ["busy"])
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO jobs (image_id, status, source_path, worker) "
            "VALUES ($1, 'running', '/nonexistent', 'elsewhere:1:0')", iid)
        status, body = await call(client, admin, "DELETE", f"/api/images/{iid}")
        assert status == 409 and "converted" in body["error"]
        await conn.execute("UPDATE jobs SET status = 'done'")
    finally:
        await conn.close()
    await call(client, admin, "DELETE", f"/api/images/{iid}", expect=204)


async def test_openapi_document_is_valid_31(client: TestClient) -> None:
    from jsonschema import Draft202012Validator

    _, spec = await call(client, Actor("anon"), "GET", "/api/openapi.json", validate=False)
    assert spec["openapi"] == "3.1.0"
    for schema in spec["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    # Every /api route of the app is documented.
    documented = set(spec["paths"])
    for resource in client.app.router.resources():
        path = resource.canonical
        if path.startswith("/api/") and path != "/api/openapi.json":
            assert path in documented, path


async def test_uploader_may_delete_own_image(client: TestClient, database_url: str) -> None:
    admin = await setup_admin(client)
    carl = await create_user(client, admin, "carl")
    dora = await create_user(client, admin, "dora")
    _, p = await call(client, admin, "POST", "/api/projects", {"name": "P"}, expect=201)
    for who in (carl, dora):
        await call(client, admin, "PUT", f"/api/projects/{p['id']}/members/{who.user_id}",
                   {"role": "contributor"}, expect=200)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        iid = await register_image(pool, name="carl's", relpath="x/1", width=1, height=1,
                                   levels=1, project_id=p["id"], owner_id=carl.user_id)
    finally:
        await pool.close()
    await call(client, dora, "DELETE", f"/api/images/{iid}", expect=403)
    await call(client, carl, "DELETE", f"/api/images/{iid}", expect=204)


async def test_json_body_arriving_in_pieces(client: TestClient) -> None:
    admin = await setup_admin(client)

    async def pieces():  # type: ignore[no-untyped-def]
        body = b'{"name": "slow", "description": "' + b"d" * 4000 + b'"}'
        for i in range(0, len(body), 700):
            yield body[i:i + 700]
            await asyncio.sleep(0.01)

    resp = await client.post("/api/projects", data=pieces(), headers={
        "Cookie": f"microtome_session={admin.cookie}", "X-CSRF-Token": admin.csrf or "",
        "Content-Type": "application/json"})
    assert resp.status == 201, await resp.text()
    assert len((await resp.json())["description"]) == 4000


async def test_download_original_when_kept(client: TestClient, database_url: str,
                                           testdata: Path) -> None:
    admin = await setup_admin(client)
    _, p = await call(client, admin, "POST", "/api/projects", {"name": "P"}, expect=201)
    kept, gone = await _images(database_url, p["id"], ["kept", "uploaded"])
    src = testdata / "small.svs"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE images SET source_filename = 'small.svs' WHERE id = $1", kept)
        await conn.execute(
            "INSERT INTO jobs (image_id, status, source_path, delete_source) VALUES"
            " ($1, 'done', $2, false), ($3, 'done', '/gone/upload', true)",
            kept, str(src), gone)
    finally:
        await conn.close()
    resp = await client.get(f"/api/images/{kept}/original",
                            headers={"Cookie": f"microtome_session={admin.cookie}"})
    assert resp.status == 200
    assert await resp.read() == src.read_bytes()
    assert 'filename="small.svs"' in resp.headers["Content-Disposition"]
    status, body = await call(client, admin, "GET", f"/api/images/{gone}/original")
    assert status == 404 and "not kept" in body["error"]
    await call(client, Actor("anon"), "GET", f"/api/images/{kept}/original", expect=401)
