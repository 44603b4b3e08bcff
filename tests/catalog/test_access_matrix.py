"""Who may do what: every actor against every endpoint and the tile URLs of a private image.

Actors: anonymous, a user outside the project, viewer, contributor, manager,
admin, a valid share link (for the image), an expired share link, a revoked
API key.  Denials are 401 (no/invalid credentials), 403 (known but not
allowed), or 404 where admitting the object exists would leak.  Every
response is JSON and documented (helpers.call checks it against OpenAPI).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from microtome.catalog.access import ACCESS as ACCESS_KEY
from microtome.catalog.state import CATALOG
from microtome.core.settings import Settings
from tests.catalog.helpers import ANON as ANON_ACTOR
from tests.catalog.helpers import Actor, call
from tests.catalog.world import World, build_world

ORDER = ("anonymous", "outsider", "viewer", "contributor", "manager", "admin", "share")
BAD_CREDENTIALS = {"share_expired": 401, "revoked_key": 401}


def exp(*codes: int | None) -> dict[str, int | None]:
    """Expected status per actor, in ORDER; None = not run (destructive success)."""
    return {**dict(zip(ORDER, codes, strict=True)), **BAD_CREDENTIALS}


READ_PROJECT = exp(401, 404, 200, 200, 200, 200, 404)
READ_IMAGE = exp(401, 404, 200, 200, 200, 200, 200)
MANAGE_PROJECT = exp(401, 404, 403, 403, 200, 200, 404)
WRITE_IMAGE = exp(401, 404, 403, 200, 200, 200, 403)
USER_ONLY = exp(401, 200, 200, 200, 200, 200, 403)
ADMIN_ONLY = exp(401, 403, 403, 403, 403, 200, 403)
LIST = exp(200, 200, 200, 200, 200, 200, 200)

# (method, path, JSON body, expectations); {P} project, {I} image, {V} viewer's user id.
API_CASES: list[tuple[str, str, Any, dict[str, int | None]]] = [
    ("GET", "/api/projects", None, LIST),
    ("GET", "/api/images", None, LIST),
    ("GET", "/api/projects/{P}", None, READ_PROJECT),
    ("GET", "/api/projects/{P}/images", None, READ_PROJECT),
    ("GET", "/api/projects/{P}/members", None, READ_PROJECT),
    ("PATCH", "/api/projects/{P}", {"description": "changed"}, MANAGE_PROJECT),
    ("PUT", "/api/projects/{P}/members/{V}", {"role": "viewer"}, MANAGE_PROJECT),
    ("POST", "/api/projects/{P}/members", {"username": "viewer", "role": "viewer"},
     MANAGE_PROJECT),
    ("DELETE", "/api/projects/{P}", None, exp(401, 404, 403, 403, None, None, 404)),
    ("POST", "/api/projects/{P}/images", {"image_id": "{I}"},
     exp(401, 404, 403, 201, 201, 201, 404)),
    ("DELETE", "/api/projects/{P}/images/{I}", None, exp(401, 404, 403, None, None, None, 404)),
    ("GET", "/api/images/{I}", None, READ_IMAGE),
    ("GET", "/api/images/{I}/jobs", None, READ_IMAGE),
    ("PATCH", "/api/images/{I}", {"name": "slide-1"}, WRITE_IMAGE),
    ("DELETE", "/api/images/{I}", None, exp(401, 404, 403, 403, None, None, 403)),
    ("POST", "/api/images/{I}/signed-url", {}, exp(401, 404, 200, 200, 200, 200, 403)),
    ("POST", "/api/share-links", {"image_id": "{I}", "expires_in": 600},
     exp(401, 404, 403, 201, 201, 201, 403)),
    ("POST", "/api/share-links", {"project_id": "{P}", "expires_in": 600},
     exp(401, 404, 403, 403, 201, 201, 404)),
    ("GET", "/api/share-links", None, USER_ONLY),
    ("GET", "/api/jobs", None, USER_ONLY),
    ("GET", "/api/api-keys", None, USER_ONLY),
    ("POST", "/api/api-keys", {"name": "k"}, exp(401, 201, 201, 201, 201, 201, 403)),
    ("GET", "/api/users", None, ADMIN_ONLY),
    ("POST", "/api/users", {"username": "newbie", "password": "long enough pw"},
     exp(401, 403, 403, 403, 403, None, 403)),
    ("GET", "/api/session", None, exp(401, 200, 200, 200, 200, 200, 403)),
    ("GET", "/api/share", None, exp(401, 401, 401, 401, 401, 401, 200)),
]

TILE_PATHS = ["/dzi/{I}.dzi", "/dzi/{I}_files/8/0_0.jpg", "/iiif/3/{I}/info.json",
              "/iiif/3/{I}/full/64,/0/default.jpg", "/images/{I}/metadata",
              "/images/{I}/thumbnail.jpg?size=64"]


def _fill(value: Any, world: World) -> Any:
    subst = {"{P}": world.project_id, "{I}": world.image_id,
             "{V}": world.actors["viewer"].user_id}
    if isinstance(value, str):
        if value in subst:
            return subst[value]
        for k, v in subst.items():
            value = value.replace(k, str(v))
        return value
    if isinstance(value, dict):
        return {k: _fill(v, world) for k, v in value.items()}
    return value


@pytest.fixture
async def world(tile_client: TestClient, settings: Settings, database_url: str,
                small_pyramid: Path) -> World:
    return await build_world(tile_client, settings, database_url, small_pyramid)


async def test_api_access_matrix(tile_client: TestClient, world: World) -> None:
    failures = []
    for method, template, body, expected in API_CASES:
        path = _fill(template, world)
        for name, want in expected.items():
            if want is None:
                continue
            status, got = await call(tile_client, world.actors[name], method, path,
                                     _fill(body, world))
            if status != want:
                failures.append(f"{name:13} {method} {template}: {status} (want {want}) {got}")
    assert not failures, "\n".join(failures)


async def test_lists_show_only_what_each_actor_may_see(tile_client: TestClient,
                                                       world: World) -> None:
    seen = {}
    for name in ORDER:
        _, images = await call(tile_client, world.actors[name], "GET", "/api/images",
                               expect=200)
        _, projects = await call(tile_client, world.actors[name], "GET", "/api/projects",
                                 expect=200)
        seen[name] = (images["total"], projects["total"])
    assert seen == {"anonymous": (0, 0), "outsider": (0, 0), "viewer": (1, 1),
                    "contributor": (1, 1), "manager": (1, 1), "admin": (1, 1),
                    "share": (1, 0)}
    _, project = await call(tile_client, world.actors["contributor"], "GET",
                            f"/api/projects/{world.project_id}", expect=200)
    assert project["role"] == "contributor" and project["image_count"] == 1


async def test_tile_urls_of_a_private_image(tile_client: TestClient, world: World) -> None:
    failures = []
    for template in TILE_PATHS:
        path = _fill(template, world)
        for name, want in READ_IMAGE.items():
            status, body = await call(tile_client, world.actors[name], "GET", path)
            if status != want:
                failures.append(f"{name:13} GET {template}: {status} (want {want}) {body}")
    assert not failures, "\n".join(failures)


async def test_share_token_inside_the_image_id(tile_client: TestClient, world: World) -> None:
    """A third-party viewer only knows URLs: the share token rides in the image id."""
    token = world.actors["share"].share
    anon = Actor("anon")
    ident = f"{world.image_id}~{token}"
    resp = await tile_client.get(f"/iiif/3/{ident}/info.json")
    assert resp.status == 200, await resp.text()
    info = orjson.loads(await resp.read())
    assert info["id"].endswith(f"/iiif/3/{ident}"), info["id"]
    resp = await tile_client.get(f"/dzi/{ident}_files/8/0_0.jpg")
    assert resp.status == 200 and (await resp.read())[:2] == b"\xff\xd8"
    expired = world.actors["share_expired"].share
    status, _ = await call(tile_client, anon, "GET", f"/dzi/{world.image_id}~{expired}.dzi")
    assert status == 401


async def test_signed_tile_urls(tile_client: TestClient, world: World) -> None:
    viewer = world.actors["viewer"]
    _, signed = await call(tile_client, viewer, "POST",
                           f"/api/images/{world.image_id}/signed-url", {"expires_in": 60},
                           expect=200)
    anon = Actor("anon")
    status, body = await call(tile_client, anon, "GET", signed["iiif"])
    assert status == 200, body
    status, _ = await call(tile_client, anon, "GET", signed["dzi"])
    assert status == 200
    status, _ = await call(tile_client, anon, "GET",
                          f"/dzi/{world.image_id}.dzi?token={signed['token']}")
    assert status == 200
    # Tampering with the payload (e.g. a later expiry) breaks the signature.
    payload, mac = signed["token"].split("~")
    raw = base64.urlsafe_b64decode(payload + "==").replace(b'"e":', b'"e":9')
    forged = base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + "~" + mac
    status, _ = await call(tile_client, anon, "GET", f"/dzi/{world.image_id}~{forged}.dzi")
    assert status == 401
    # A token for one image opens no other image.
    status, _ = await call(tile_client, anon, "GET",
                           f"/dzi/{world.image_id + 1}~{signed['token']}.dzi")
    assert status in (403, 404)


async def test_expired_signed_url(tile_client: TestClient, world: World) -> None:
    from microtome.catalog.security import tile_token
    from tests.catalog.helpers import SECRET

    token = tile_token(SECRET, world.image_id, "1", expires=1)
    status, body = await call(tile_client, Actor("anon"), "GET",
                              f"/dzi/{world.image_id}~{token}.dzi")
    assert status == 401 and "expired" in body["error"]


async def test_project_share_link(tile_client: TestClient, world: World) -> None:
    manager = world.actors["manager"]
    _, link = await call(tile_client, manager, "POST", "/api/share-links",
                         {"project_id": world.project_id, "expires_in": 600}, expect=201)
    guest = Actor("guest", share=link["token"])
    _, info = await call(tile_client, guest, "GET", "/api/share", expect=200)
    assert info["project_id"] == world.project_id
    assert [i["id"] for i in info["images"]] == [world.image_id]
    await call(tile_client, guest, "GET", f"/api/projects/{world.project_id}", expect=200)
    await call(tile_client, guest, "GET", f"/api/projects/{world.project_id}/images",
               expect=200)
    await call(tile_client, guest, "PATCH", f"/api/projects/{world.project_id}",
               {"description": "x"}, expect=403)
    status, _ = await call(tile_client, guest, "GET", f"/dzi/{world.image_id}.dzi")
    assert status == 200
    # Revocation takes effect at once in this process.
    await call(tile_client, manager, "DELETE", f"/api/share-links/{link['id']}", expect=204)
    await call(tile_client, guest, "GET", "/api/share", expect=401)
    status, _ = await call(tile_client, guest, "GET", f"/dzi/{world.image_id}.dzi")
    assert status == 401


async def test_membership_change_applies_to_tiles(tile_client: TestClient,
                                                  world: World) -> None:
    viewer = world.actors["viewer"]
    status, _ = await call(tile_client, viewer, "GET", f"/dzi/{world.image_id}.dzi")
    assert status == 200
    await call(tile_client, world.actors["manager"], "DELETE",
               f"/api/projects/{world.project_id}/members/{viewer.user_id}", expect=204)
    status, _ = await call(tile_client, viewer, "GET", f"/dzi/{world.image_id}.dzi")
    assert status == 404


async def test_destructive_successes(tile_client: TestClient, world: World,
                                     settings: Settings) -> None:
    manager = world.actors["manager"]
    image_dir = settings.images_dir / str(world.image_id)
    assert image_dir.is_dir()
    _, signed = await call(tile_client, manager, "POST",
                           f"/api/images/{world.image_id}/signed-url", {}, expect=200)
    await call(tile_client, manager, "DELETE", f"/api/images/{world.image_id}", expect=204)
    # A still-valid signed URL of a deleted image is a clean 404.
    status, _ = await call(tile_client, Actor("anon"), "GET", signed["dzi"])
    assert status == 404
    assert image_dir.exists()  # in the trash: files kept until the purge
    await call(tile_client, manager, "GET", f"/api/images/{world.image_id}", expect=404)
    status, _ = await call(tile_client, manager, "GET", f"/dzi/{world.image_id}.dzi")
    assert status == 404
    await call(tile_client, world.actors["admin"], "DELETE",
               f"/api/projects/{world.project_id}", expect=204)
    await call(tile_client, manager, "GET", f"/api/projects/{world.project_id}", expect=404)
    _, trash = await call(tile_client, manager, "GET", "/api/trash?kind=image", expect=200)
    await call(tile_client, manager, "DELETE", f"/api/trash/{trash['items'][0]['id']}",
               expect=204)
    assert not image_dir.exists()


async def test_tiles_need_no_database_round_trip(tile_client: TestClient, world: World,
                                                 database_url: str, pg_server_url: str) -> None:
    """Once the caller and the image are known, tiles are served with the database
    unreachable: access and image lookups come from the in-memory caches."""
    import asyncpg

    viewer = world.actors["viewer"]
    i = world.image_id
    _, signed = await call(tile_client, viewer, "POST", f"/api/images/{i}/signed-url", {},
                           expect=200)
    status, _ = await call(tile_client, viewer, "GET", f"/dzi/{i}.dzi")
    assert status == 200
    from urllib.parse import urlsplit

    dbname = urlsplit(database_url).path.lstrip("/")
    conn = await asyncpg.connect(pg_server_url)
    try:
        await conn.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           " WHERE datname = $1", dbname)
        for path in (f"/dzi/{i}_files/9/0_0.jpg", f"/dzi/{i}_files/8/0_0.jpg",
                     f"/iiif/3/{i}/full/32,/0/default.jpg"):
            status, body = await call(tile_client, viewer, "GET", path)
            assert status == 200, (path, body)
        status, _ = await call(tile_client, Actor("anon"), "GET",
                               signed["dzi"].replace(".dzi", "_files/9/0_0.jpg"))
        assert status == 200
        # The API itself does need the database: a clean 503, not a 500.
        status, _ = await call(tile_client, viewer, "GET", "/api/projects")
        assert status == 503
    finally:
        await conn.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
        await conn.close()


async def test_upload_creation_matrix(tile_client: TestClient, world: World) -> None:
    """tus creation in the private project: contributors and up only."""
    want = exp(401, 404, 403, 201, 201, 201, 403)
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in
                    (("filename", "x.tif"), ("project_id", str(world.project_id))))
    failures = []
    for name, expected in want.items():
        actor = world.actors[name]
        headers = {**actor.headers("POST"), "Tus-Resumable": "1.0.0", "Upload-Length": "3",
                   "Upload-Metadata": meta}
        resp = await tile_client.post("/api/uploads", headers=headers)
        if resp.status != expected:
            failures.append(f"{name}: {resp.status} (want {expected}) {await resp.text()}")
        elif resp.status >= 400:
            assert "error" in await resp.json()
    assert not failures, "\n".join(failures)


# --- Issue 11 F1: an image cannot be taken over from a project it is linked into ---

async def _own_project(client: TestClient, actor: Actor, name: str, public: bool = False) -> int:
    _, project = await call(client, actor, "POST", "/api/projects",
                            {"name": name, "public": public}, expect=201)
    return int(project["id"])


async def _owner_actions_refused(client: TestClient, actor: Actor, image_id: int,
                                 home_viewer: bool = False) -> list[str]:
    """Every owner-level action on the image, as `actor`; the failures.  A viewer of
    the home project may still mint signed URLs (read-only, tied to their access)."""
    want = 403
    cases = [("PATCH", f"/api/images/{image_id}", {"name": "pwned"}),
             ("POST", "/api/share-links", {"image_id": image_id, "expires_in": 31_536_000}),
             ("DELETE", f"/api/images/{image_id}", None)]
    if not home_viewer:
        cases.insert(2, ("POST", f"/api/images/{image_id}/signed-url", {}))
    failures = []
    for method, path, body in cases:
        status, got = await call(client, actor, method, path, body)
        if status != want:
            failures.append(f"{actor.name} {method} {path}: {status} (want {want}) {got}")
    return failures


async def test_viewer_cannot_take_over_an_image(tile_client: TestClient, world: World,
                                                settings: Settings) -> None:
    viewer, i = world.actors["viewer"], world.image_id
    own = await _own_project(tile_client, viewer, "Mine")
    status, body = await call(tile_client, viewer, "POST", f"/api/projects/{own}/images",
                              {"image_id": i})
    assert status == 403, body
    await call(tile_client, viewer, "PATCH", f"/api/projects/{own}", {"public": True},
               expect=200)
    failures = await _owner_actions_refused(tile_client, viewer, i, home_viewer=True)
    assert not failures, "\n".join(failures)
    # Nothing changed: still private, same name, files on disk.
    status, _ = await call(tile_client, ANON_ACTOR, "GET", f"/api/images/{i}")
    assert status == 401
    _, image = await call(tile_client, world.actors["manager"], "GET", f"/api/images/{i}",
                          expect=200)
    assert image["name"] == "slide-1"
    assert (settings.images_dir / str(i)).is_dir()


async def test_non_member_cannot_take_over_an_image_of_a_public_project(
        tile_client: TestClient, world: World, settings: Settings) -> None:
    manager, outsider, i = world.actors["manager"], world.actors["outsider"], world.image_id
    await call(tile_client, manager, "PATCH", f"/api/projects/{world.project_id}",
               {"public": True}, expect=200)
    await call(tile_client, outsider, "GET", f"/api/images/{i}", expect=200)
    own = await _own_project(tile_client, outsider, "Grab")
    status, body = await call(tile_client, outsider, "POST", f"/api/projects/{own}/images",
                              {"image_id": i})
    assert status == 403, body
    failures = await _owner_actions_refused(tile_client, outsider, i)
    assert not failures, "\n".join(failures)
    assert (settings.images_dir / str(i)).is_dir()


async def test_a_linked_project_grants_reading_only(tile_client: TestClient, world: World,
                                                    database_url: str) -> None:
    """Even where the link exists (made before the fix, or by a contributor), the
    managers of the project it was linked into get no owner rights, and a public
    project never makes it writable."""
    import asyncpg

    outsider, i = world.actors["outsider"], world.image_id
    own = await _own_project(tile_client, outsider, "Linked before the fix", public=True)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO project_images (project_id, image_id) VALUES ($1, $2)",
                           own, i)
    finally:
        await conn.close()
    tile_client.app[CATALOG].forget_access()
    await call(tile_client, outsider, "GET", f"/api/images/{i}", expect=200)
    await call(tile_client, ANON_ACTOR, "GET", f"/api/images/{i}", expect=200)
    failures = await _owner_actions_refused(tile_client, outsider, i)
    assert not failures, "\n".join(failures)


async def test_contributor_links_and_the_link_grants_reading(tile_client: TestClient,
                                                            world: World) -> None:
    contributor, outsider, i = (world.actors["contributor"], world.actors["outsider"],
                                world.image_id)
    own = await _own_project(tile_client, contributor, "Teaching")
    await call(tile_client, contributor, "POST", f"/api/projects/{own}/images",
               {"image_id": i}, expect=201)
    await call(tile_client, contributor, "PUT", f"/api/projects/{own}/members/"
               f"{outsider.user_id}", {"role": "manager"}, expect=200)
    await call(tile_client, outsider, "GET", f"/api/images/{i}", expect=200)
    status, _ = await call(tile_client, outsider, "GET", f"/dzi/{i}.dzi")
    assert status == 200
    failures = await _owner_actions_refused(tile_client, outsider, i)
    assert not failures, "\n".join(failures)
    # The contributor keeps their home-project rights (rename is contributor-level).
    await call(tile_client, contributor, "PATCH", f"/api/images/{i}", {"name": "renamed"},
               expect=200)


# --- Issue 11 item 2: signed URLs and share links follow their creator's access ---

@pytest.fixture
async def other_process(aiohttp_client: Any, settings: Settings) -> TestClient:
    """A second application on the same database: its own caches and listener, as
    a second `microtome serve` process would have."""
    from aiohttp import DummyCookieJar

    from tests.catalog.conftest import make_app

    return await aiohttp_client(make_app(settings, tiles=True), cookie_jar=DummyCookieJar())


async def _status_soon(client: TestClient, path: str, want: int, within: float = 3.0) -> int:
    """Poll `path` anonymously until it answers `want`; the last status.  `within`
    is well under the caches' 10 s TTL, so passing means the change was pushed."""
    import asyncio
    import time

    deadline = time.monotonic() + within
    while True:
        status, _ = await call(client, Actor("anon"), "GET", path)
        if status == want or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.05)


async def test_signed_url_ends_with_its_creators_access(
        tile_client: TestClient, other_process: TestClient, world: World) -> None:
    viewer, manager, i = world.actors["viewer"], world.actors["manager"], world.image_id
    _, signed = await call(tile_client, viewer, "POST", f"/api/images/{i}/signed-url", {},
                           expect=200)
    tile = signed["dzi"].replace(".dzi", "_files/8/0_0.jpg")
    for client in (tile_client, other_process):  # both processes cache "allowed"
        status, _ = await call(client, Actor("anon"), "GET", tile)
        assert status == 200
    await call(tile_client, manager, "DELETE",
               f"/api/projects/{world.project_id}/members/{viewer.user_id}", expect=204)
    assert await _status_soon(tile_client, tile, 401, within=0) == 401
    assert await _status_soon(other_process, tile, 401) == 401


async def test_signed_url_ends_when_its_creator_is_deleted(
        tile_client: TestClient, other_process: TestClient, world: World) -> None:
    viewer, i = world.actors["viewer"], world.image_id
    _, signed = await call(tile_client, viewer, "POST", f"/api/images/{i}/signed-url", {},
                           expect=200)
    status, _ = await call(other_process, Actor("anon"), "GET", signed["dzi"])
    assert status == 200
    await call(tile_client, world.actors["admin"], "DELETE", f"/api/users/{viewer.user_id}",
               expect=204)
    assert await _status_soon(other_process, signed["dzi"], 401) == 401


async def test_deleted_image_is_gone_in_every_process(
        tile_client: TestClient, other_process: TestClient, world: World) -> None:
    manager, i = world.actors["manager"], world.image_id
    _, signed = await call(tile_client, manager, "POST", f"/api/images/{i}/signed-url", {},
                           expect=200)
    tile = signed["dzi"].replace(".dzi", "_files/8/0_0.jpg")
    status, _ = await call(other_process, Actor("anon"), "GET", tile)
    assert status == 200
    await call(tile_client, manager, "DELETE", f"/api/images/{i}", expect=204)
    assert await _status_soon(other_process, tile, 404) == 404


async def test_signed_url_lifetime(tile_client: TestClient, world: World,
                                   settings: Settings) -> None:
    import time

    viewer, i = world.actors["viewer"], world.image_id
    _, signed = await call(tile_client, viewer, "POST", f"/api/images/{i}/signed-url", {},
                           expect=200)
    import datetime as dt

    left = dt.datetime.fromisoformat(signed["expires_at"]).timestamp() - time.time()
    assert 0 < left <= settings.signed_url_default_seconds + 5
    too_long = settings.signed_url_max_seconds + 60
    status, body = await call(tile_client, viewer, "POST", f"/api/images/{i}/signed-url",
                              {"expires_in": too_long})
    assert status == 400 and body["detail"]["max"] == settings.signed_url_max_seconds


async def test_share_link_ends_with_its_creators_rights(
        tile_client: TestClient, other_process: TestClient, world: World) -> None:
    contributor, manager, i = (world.actors["contributor"], world.actors["manager"],
                               world.image_id)
    _, link = await call(tile_client, contributor, "POST", "/api/share-links",
                         {"image_id": i, "expires_in": 3600}, expect=201)
    path = f"/dzi/{i}.dzi?share={link['token']}"
    status, _ = await call(other_process, Actor("anon"), "GET", path)
    assert status == 200
    # Demoted to viewer: no longer allowed to share, so the link stops.
    await call(tile_client, manager, "PUT",
               f"/api/projects/{world.project_id}/members/{contributor.user_id}",
               {"role": "viewer"}, expect=200)
    assert await _status_soon(tile_client, path, 401, within=0) == 401
    assert await _status_soon(other_process, path, 401) == 401


async def test_managers_list_and_revoke_every_link(tile_client: TestClient,
                                                   world: World) -> None:
    contributor, manager, viewer, admin = (world.actors[n] for n in
                                           ("contributor", "manager", "viewer", "admin"))
    i, p = world.image_id, world.project_id
    _, link = await call(tile_client, contributor, "POST", "/api/share-links",
                         {"image_id": i, "expires_in": 3600}, expect=201)
    for actor in (manager, admin):
        _, listed = await call(tile_client, actor, "GET", f"/api/share-links?image_id={i}",
                               expect=200)
        assert link["id"] in [x["id"] for x in listed["items"]]
        assert {x["created_by"] for x in listed["items"]} >= {contributor.user_id}
    _, mine = await call(tile_client, viewer, "GET", "/api/share-links", expect=200)
    assert mine["total"] == 0
    await call(tile_client, viewer, "DELETE", f"/api/share-links/{link['id']}", expect=404)
    _, active = await call(tile_client, manager, "GET",
                           f"/api/share-links?project_id={p}&active=true", expect=200)
    assert all(x["revoked_at"] is None for x in active["items"])
    await call(tile_client, manager, "DELETE", f"/api/share-links/{link['id']}", expect=204)
    status, _ = await call(tile_client, Actor("anon"), "GET",
                           f"/dzi/{i}.dzi?share={link['token']}")
    assert status == 401


# --- Issue 11 item 6: no cross-site login, setup or writes ---

async def test_first_run_setup_refuses_foreign_sites(client: TestClient) -> None:
    creds = orjson.dumps({"username": "mallory", "password": "long enough password"})
    for headers in ({"Content-Type": "application/x-www-form-urlencoded"},
                    {"Content-Type": "text/plain"}, {},
                    {"Content-Type": "application/json", "Origin": "https://evil.example"},
                    {"Content-Type": "application/json", "Origin": "null"},
                    {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}):
        resp = await client.post("/api/setup", data=creds, headers=headers)
        assert resp.status in (403, 415), (headers, resp.status, await resp.text())
        assert "error" in await resp.json()
    _, status = await call(client, Actor("anon"), "GET", "/api/setup", expect=200)
    assert status["needs_setup"] is True  # nobody became the administrator
    own = f"http://{client.server.host}:{client.server.port}"
    resp = await client.post("/api/setup", data=creds, headers={
        "Content-Type": "application/json", "Origin": own, "Sec-Fetch-Site": "same-origin"})
    assert resp.status == 201, await resp.text()


async def test_login_csrf_refused(client: TestClient) -> None:
    from tests.catalog.helpers import PASSWORD, setup_admin

    await setup_admin(client)
    form = f"username=admin&password={PASSWORD}".encode()
    resp = await client.post("/api/session", data=form,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 415 and "microtome_session" not in resp.cookies
    creds = orjson.dumps({"username": "admin", "password": PASSWORD})
    resp = await client.post("/api/session", data=creds, headers={
        "Content-Type": "application/json", "Origin": "https://evil.example"})
    assert resp.status == 403 and "microtome_session" not in resp.cookies
    resp = await client.post("/api/session", data=creds,
                             headers={"Content-Type": "application/json"})
    assert resp.status == 200


async def test_cookie_writes_from_another_site_refused(tile_client: TestClient,
                                                       world: World) -> None:
    manager = world.actors["manager"]
    evil = Actor("manager-via-evil", manager.user_id, cookie=manager.cookie, csrf=manager.csrf,
                 extra={"Origin": "https://evil.example"})
    status, _ = await call(tile_client, evil, "PATCH", f"/api/projects/{world.project_id}",
                           {"public": True})
    assert status == 403
    # A script with an API key may call from anywhere (no ambient credential).
    _, key = await call(tile_client, manager, "POST", "/api/api-keys", {"name": "ci"},
                        expect=201)
    script = Actor("script", api_key=key["key"], extra={"Origin": "https://ci.example"})
    await call(tile_client, script, "PATCH", f"/api/projects/{world.project_id}",
               {"description": "from CI"}, expect=200)


def test_post_login_redirect_stays_on_this_origin() -> None:
    """The login page's `next` check, run in node against the hostile forms."""
    import json
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    module = Path(__file__).resolve().parents[2] / "frontend/static/js/nexturl.js"
    cases = {"/": "/", "/projects/3?x=1#v": "/projects/3?x=1#v", "//evil.example": "/",
             "/\\evil.example": "/", "/\t/evil.example": "/",
             "/%09/evil.example": "/%09/evil.example",
             "https://evil.example/": "/", "javascript:alert(1)": "/", "/\\/evil": "/",
             " /x": "/"}
    script = (f"import {{ safeNext }} from {json.dumps(module.as_uri())};"
              f"const cases = {json.dumps(list(cases))};"
              "console.log(JSON.stringify(cases.map((c) => safeNext(c, 'https://lab.example'))));")
    out = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    assert dict(zip(cases, json.loads(out), strict=True)) == cases


# --- Issue 11 item 9: accounts: password change, reset, disable, session lifetime ---

async def _session_ok(client: TestClient, actor: Actor) -> int:
    status, _ = await call(client, actor, "GET", "/api/session")
    return status


async def test_password_change_ends_my_other_sessions(client: TestClient) -> None:
    from tests.catalog.helpers import PASSWORD, create_user, login, setup_admin

    admin = await setup_admin(client)
    here = await create_user(client, admin, "lena")
    there = await login(client, "lena")
    _, key = await call(client, here, "POST", "/api/api-keys", {"name": "k"}, expect=201)
    script = Actor("script", api_key=key["key"])
    status, _ = await call(client, here, "POST", "/api/account/password",
                           {"current_password": "wrong one!", "new_password": "new password 1"})
    assert status == 403
    await call(client, here, "POST", "/api/account/password",
               {"current_password": PASSWORD, "new_password": "new password 1"}, expect=204)
    assert await _session_ok(client, here) == 200
    assert await _session_ok(client, there) == 401
    assert await _session_ok(client, script) == 200  # keys are not passwords
    resp = await client.post("/api/session", json={"username": "lena", "password": PASSWORD})
    assert resp.status == 401
    await login(client, "lena", password="new password 1")


async def test_admin_reset_and_disable_end_access_at_once(
        tile_client: TestClient, other_process: TestClient, world: World) -> None:
    from tests.catalog.helpers import PASSWORD, create_user, login

    admin, i = world.actors["admin"], world.image_id
    await call(tile_client, admin, "PUT", f"/api/projects/{world.project_id}/members/"
               f"{(await create_user(tile_client, admin, 'olga')).user_id}",
               {"role": "viewer"}, expect=200)
    olga = await login(tile_client, "olga")
    _, key = await call(tile_client, olga, "POST", "/api/api-keys", {"name": "k"}, expect=201)
    script = Actor("script", api_key=key["key"])
    for client in (tile_client, other_process):
        for who in (olga, script):
            status, _ = await call(client, who, "GET", f"/dzi/{i}.dzi")
            assert status == 200
    await call(tile_client, admin, "POST", f"/api/users/{olga.user_id}/password",
               {"password": "reset password 1"}, expect=204)
    for who in (olga, script):
        assert await _session_ok(tile_client, who) == 401
        status, _ = await call(tile_client, who, "GET", f"/dzi/{i}.dzi")
        assert status == 401
    for who in (olga, script):  # the other process learns it at once too
        assert await _status_of_soon(other_process, who, f"/dzi/{i}.dzi", 401) == 401

    olga = await login(tile_client, "olga", password="reset password 1")
    _, user = await call(tile_client, admin, "PATCH", f"/api/users/{olga.user_id}",
                         {"disabled": True}, expect=200)
    assert user["disabled"] is True
    assert await _session_ok(tile_client, olga) == 401
    resp = await tile_client.post("/api/session",
                                  json={"username": "olga", "password": "reset password 1"})
    assert resp.status == 403
    await call(tile_client, admin, "PATCH", f"/api/users/{admin.user_id}",
               {"disabled": True}, expect=409)
    await call(tile_client, olga, "PATCH", f"/api/users/{olga.user_id}", {"disabled": False},
               expect=401)
    await call(tile_client, admin, "PATCH", f"/api/users/{olga.user_id}", {"disabled": False},
               expect=200)
    await login(tile_client, "olga", password="reset password 1")
    assert PASSWORD  # the original password no longer matters


async def _status_of_soon(client: TestClient, actor: Actor, path: str, want: int) -> int:
    import asyncio
    import time

    deadline = time.monotonic() + 3.0
    while True:
        status, _ = await call(client, actor, "GET", path)
        if status == want or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.05)


async def test_session_lifetime_and_idle_timeout(aiohttp_client: Any, tmp_path: Path,
                                                 database_url: str) -> None:
    import datetime as dt

    import asyncpg
    from aiohttp import DummyCookieJar

    from tests.catalog.conftest import make_app, make_settings

    settings = make_settings(tmp_path, database_url, session_hours=2, session_idle_minutes=30)
    client = await aiohttp_client(make_app(settings), cookie_jar=DummyCookieJar())
    resp = await client.post("/api/setup", json={"username": "root",
                                                 "password": "long enough password"})
    body = await resp.json()
    left = dt.datetime.fromisoformat(body["expires_at"]) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(hours=1, minutes=55) < left <= dt.timedelta(hours=2)
    assert resp.cookies["microtome_session"]["max-age"] == str(2 * 3600)
    root = Actor("root", body["user"]["id"], cookie=resp.cookies["microtome_session"].value,
                 csrf=body["csrf_token"])
    assert await _session_ok(client, root) == 200
    conn = await asyncpg.connect(database_url)
    try:  # 31 minutes without a request
        await conn.execute("UPDATE sessions SET last_seen_at = now() - interval '31 minutes'")
    finally:
        await conn.close()
    client.app[ACCESS_KEY].principals.clear()
    assert await _session_ok(client, root) == 401


# --- Issue 11 item 8: enumeration and exposure ---

async def test_login_of_an_unknown_user_takes_as_long(client: TestClient) -> None:
    """An unknown name is checked against a dummy hash: its answer is not faster
    than a wrong password (which costs a whole argon2 verification)."""
    import statistics
    import time

    from tests.catalog.helpers import setup_admin

    await setup_admin(client)

    async def timed(name: str) -> float:
        t0 = time.perf_counter()
        resp = await client.post("/api/session", json={"username": name, "password": "nope"})
        assert resp.status == 401
        return time.perf_counter() - t0

    await timed("nobody-0")  # the dummy hash is made on first use
    known = [await timed("admin") for _ in range(2)]
    unknown = [await timed(f"nobody-{i}") for i in range(1, 3)]
    # Generous (a loaded machine is noisy); without the dummy hash it is ~1%.
    assert min(unknown) > 0.25 * statistics.median(known), (known, unknown)


async def test_member_lists_are_for_members(tile_client: TestClient, world: World) -> None:
    p = world.project_id
    await call(tile_client, world.actors["manager"], "PATCH", f"/api/projects/{p}",
               {"public": True}, expect=200)
    want = {"anonymous": 401, "outsider": 403, "viewer": 200, "manager": 200, "admin": 200}
    got = {name: (await call(tile_client, world.actors[name], "GET",
                             f"/api/projects/{p}/members"))[0] for name in want}
    assert got == want


async def test_adding_members_by_name_reveals_and_allows_little(tile_client: TestClient,
                                                                world: World) -> None:
    from microtome.catalog.ratelimit import MEMBER_LOOKUP_LIMIT

    p, manager = world.project_id, world.actors["manager"]
    # Non-managers learn nothing about which names exist.
    for name in ("outsider", "viewer"):
        for username in ("admin", "no-such-person"):
            status, _ = await call(tile_client, world.actors[name], "POST",
                                   f"/api/projects/{p}/members",
                                   {"username": username, "role": "viewer"})
            assert status == (404 if name == "outsider" else 403)
    for i in range(MEMBER_LOOKUP_LIMIT):
        await call(tile_client, manager, "POST", f"/api/projects/{p}/members",
                   {"username": f"guess-{i}", "role": "viewer"}, expect=404)
    status, body = await call(tile_client, manager, "POST", f"/api/projects/{p}/members",
                              {"username": "outsider", "role": "viewer"})
    assert status == 429 and body["detail"]["retry_after"] > 0


async def test_metrics_are_for_admins_or_a_local_listener(
        aiohttp_client: Any, tmp_path: Path, database_url: str, world: World,
        tile_client: TestClient) -> None:
    import socket

    import aiohttp

    from microtome.app import create_app
    from tests.catalog.conftest import make_settings
    from tests.livesrv import live_app

    for name, want in (("anonymous", 401), ("viewer", 403), ("admin", 200)):
        resp = await tile_client.get("/metrics", headers=world.actors[name].headers("GET"))
        assert resp.status == want, name
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = make_settings(tmp_path / "other", database_url, metrics_port=port)
    with live_app(lambda: create_app(settings)) as base:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/metrics") as resp:
                assert resp.status == 401
            async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert resp.status == 200 and "microtome_tile" in await resp.text()


# --- Issue 11 items 7 and 10: concurrent role changes; uploads end with access ---

async def test_concurrent_demotions_keep_a_manager(tile_client: TestClient,
                                                   world: World) -> None:
    import asyncio

    p, admin = world.project_id, world.actors["admin"]
    a, b = world.actors["manager"], world.actors["contributor"]
    for round_ in range(6):
        for who in (a, b):
            await call(tile_client, admin, "PUT", f"/api/projects/{p}/members/{who.user_id}",
                       {"role": "manager"}, expect=200)
        if round_ % 2:
            ops = [(a, "PUT", b, {"role": "viewer"}), (b, "PUT", a, {"role": "viewer"})]
        else:
            ops = [(a, "DELETE", b, None), (b, "DELETE", a, None)]
        results = await asyncio.gather(*(
            call(tile_client, actor, method, f"/api/projects/{p}/members/{target.user_id}",
                 body) for actor, method, target, body in ops))
        _, members = await call(tile_client, admin, "GET", f"/api/projects/{p}/members",
                                expect=200)
        managers = [m for m in members["items"] if m["role"] == "manager"]
        assert len(managers) >= 1, (round_, results, members["items"])
        assert sorted(s for s, _ in results)[-1] in (403, 404, 409), results
        # Put the removed one back for the next round.
        for who in (a, b):
            if who.user_id not in {m["user_id"] for m in members["items"]}:
                await call(tile_client, admin, "PUT",
                           f"/api/projects/{p}/members/{who.user_id}", {"role": "viewer"},
                           expect=200)


async def _start_upload(client: TestClient, actor: Actor, project_id: int,
                        length: int = 10) -> str:
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in
                    (("filename", "x.tif"), ("project_id", str(project_id))))
    resp = await client.post("/api/uploads", headers={
        **actor.headers("POST"), "Tus-Resumable": "1.0.0", "Upload-Length": str(length),
        "Upload-Metadata": meta})
    assert resp.status == 201, await resp.text()
    url = resp.headers["Location"]
    resp = await client.patch(url, data=b"12345", headers={
        **actor.headers("PATCH"), "Tus-Resumable": "1.0.0", "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream"})
    assert resp.status == 204, await resp.text()
    return url


async def test_removed_member_cannot_finish_an_upload(tile_client: TestClient, world: World,
                                                      settings: Settings) -> None:
    contributor, manager, p = world.actors["contributor"], world.actors["manager"], \
        world.project_id
    url = await _start_upload(tile_client, contributor, p)
    partial = settings.uploads_dir / url.rsplit("/", 1)[1]
    assert partial.is_file()
    await call(tile_client, manager, "DELETE", f"/api/projects/{p}/members/"
               f"{contributor.user_id}", expect=204)
    resp = await tile_client.patch(url, data=b"67890", headers={
        **contributor.headers("PATCH"), "Tus-Resumable": "1.0.0", "Upload-Offset": "5",
        "Content-Type": "application/offset+octet-stream"})
    assert resp.status in (403, 404), await resp.text()
    assert not partial.exists()
    _, listed = await call(tile_client, manager, "GET", f"/api/projects/{p}/images",
                           expect=200)
    assert listed["total"] == 1  # only the world's image


async def test_partial_uploads_go_with_their_project_or_user(
        tile_client: TestClient, world: World, settings: Settings,
        aiohttp_client: Any) -> None:
    from aiohttp import DummyCookieJar

    from tests.catalog.conftest import make_app

    admin, manager, contributor = (world.actors[n] for n in ("admin", "manager", "contributor"))
    own = await _own_project(tile_client, manager, "Scratch")
    by_project = await _start_upload(tile_client, manager, own)
    by_user = await _start_upload(tile_client, contributor, world.project_id)
    files = [settings.uploads_dir / u.rsplit("/", 1)[1] for u in (by_project, by_user)]
    assert all(f.is_file() for f in files)
    await call(tile_client, manager, "DELETE", f"/api/projects/{own}", expect=204)
    assert not files[0].exists()
    await call(tile_client, admin, "DELETE", f"/api/users/{contributor.user_id}", expect=204)
    assert not files[1].exists()
    # Files left without a row (an older version, a crash) are swept at start-up.
    stray = settings.uploads_dir / "leftover-from-before"
    stray.write_bytes(b"x" * 100)
    await aiohttp_client(make_app(settings), cookie_jar=DummyCookieJar())
    assert not stray.exists()


# --- Routes of the later sessions (trash, review, properties, attachments, description
# and tags, activity, live, alignments, per-project analyses and app switches) and the
# account routes.  The full application (annotations, analyses, alignments) with a
# reviewer among the actors.  A refused write must leave the database as it was: every
# table is compared before and after (columns that record mere use excluded).  The
# matrix test takes ~50 s at load 22: about twenty argon2 hashes and verifications
# (the password routes, for every actor) are deliberately slow. ---

ORDER2 = ("anonymous", "outsider", "viewer", "contributor", "reviewer", "manager", "admin",
          "share")
#: Public routes: no credential is looked at, so a bad one changes nothing.
PUBLIC_BAD = {"share_expired": None, "revoked_key": None}


def exp2(*codes: int | None, bad: dict[str, int | None] | None = None
         ) -> dict[str, int | None]:
    return {**dict(zip(ORDER2, codes, strict=True)), **(BAD_CREDENTIALS if bad is None else bad)}


R_PROJECT = exp2(401, 404, 200, 200, 200, 200, 200, 404)
R_IMAGE = exp2(401, 404, 200, 200, 200, 200, 200, 200)
M_PROJECT = exp2(401, 404, 403, 403, 403, 200, 200, 404)
M_IMAGE = exp2(401, 404, 403, 403, 403, 200, 200, 403)
W_IMAGE = exp2(401, 404, 403, 200, 200, 200, 200, 403)
USER = exp2(401, 200, 200, 200, 200, 200, 200, 403)
ADMIN = exp2(401, 403, 403, 403, 403, 403, 200, 403)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@dataclass
class Full:
    client: TestClient
    world: World
    database_url: str
    ids: dict[str, Any] = field(default_factory=dict)
    seq: list[int] = field(default_factory=lambda: [0])
    conn: Any = None  # for the table snapshots, opened on first use

    def next(self) -> int:
        self.seq[0] += 1
        return self.seq[0]


#: Per-actor preparation of a case whose success changes the world: fresh objects
#: (substitutions) and, optionally, the credentials to call with.
Prepare = Callable[[Full, str], Awaitable[tuple[dict[str, Any], Actor | None]]]


async def _db(full: Full, sql: str, *args: Any) -> Any:
    import asyncpg

    conn = await asyncpg.connect(full.database_url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def _new_image(full: Full) -> int:
    import asyncpg

    from microtome.catalog.images import register_image, storage_relpath

    pool = await asyncpg.create_pool(full.database_url, min_size=1, max_size=1)
    try:
        image_id = await register_image(pool, name=f"extra-{full.next()}", relpath="pending",
                                        width=700, height=500, levels=2,
                                        project_id=full.world.project_id)
        await pool.execute("UPDATE images SET storage_path = $2, status = 'ready'"
                           " WHERE id = $1", image_id, storage_relpath(image_id))
    finally:
        await pool.close()
    full.client.app[CATALOG].forget_access()
    return int(image_id)


async def _annotation(full: Full) -> dict[str, Any]:
    _, ann = await call(full.client, full.world.actors["contributor"], "POST",
                        f"/api/images/{full.world.image_id}/annotations",
                        {"geometry": {"type": "Point", "coordinates": [5, 5 + full.next()]}},
                        expect=201, validate=False)
    return dict(ann)


async def _fresh_annotation(full: Full, _name: str) -> tuple[dict[str, Any], Actor | None]:
    ann = await _annotation(full)
    return {"{A}": ann["id"], "{AT}": ann["properties"]["updated_at"]}, None


async def _fresh_trash(full: Full, _name: str) -> tuple[dict[str, Any], Actor | None]:
    image_id = await _new_image(full)
    manager = full.world.actors["manager"]
    await call(full.client, manager, "DELETE", f"/api/images/{image_id}", expect=204)
    _, items = await call(full.client, manager, "GET", "/api/trash?kind=image", expect=200)
    mine = [t for t in items["items"] if image_id in t["ids"]]
    return {"{T}": mine[0]["id"]}, None


async def _fresh_attachment(full: Full, _name: str) -> tuple[dict[str, Any], Actor | None]:
    _, att = await call(full.client, full.world.actors["contributor"], "POST",
                        f"/api/images/{full.world.image_id}/attachments?filename=r.pdf",
                        data=PDF, content_type="application/octet-stream", expect=201)
    return {"{F}": att["id"]}, None


async def _fresh_user(full: Full, _name: str) -> tuple[dict[str, Any], Actor | None]:
    user = await _direct_user_of(full, f"target-{full.next()}")
    return {"{X}": user.user_id}, None


async def _direct_user_of(full: Full, name: str) -> Actor:
    from tests.catalog.world import _direct_user

    return await _direct_user(full.database_url, name)


async def _fresh_reset_token(full: Full, _name: str) -> tuple[dict[str, Any], Actor | None]:
    user = await _direct_user_of(full, f"forgetful-{full.next()}")
    _, link = await call(full.client, full.world.actors["admin"], "POST",
                         f"/api/users/{user.user_id}/reset-link", expect=201)
    return {"{TOKEN}": link["token"]}, None


async def _own_fresh_session(full: Full, name: str) -> tuple[dict[str, Any], Actor | None]:
    """Signing out everywhere ends the caller's sessions: call with a spare one."""
    from microtome.catalog.security import digest, new_token

    actor = full.world.actors[name]
    if actor.cookie is None or actor.user_id is None:
        return {}, None
    token, csrf = new_token(), new_token(16)
    await _db(full, "INSERT INTO sessions (token_hash, csrf_token, user_id, expires_at)"
              " VALUES ($1, $2, $3, now() + interval '1 hour') RETURNING id",
              digest(token), csrf, actor.user_id)
    return {}, Actor(f"{name}-spare", actor.user_id, cookie=token, csrf=csrf)


# (method, path, body, expectations, per-actor preparation).  {P} project, {I} image,
# {J} a second image of the project, {A}/{AT} an annotation of the contributor and its
# version, {T} a trash item (an image of the project), {F} an attachment of the
# contributor, {X} a user nobody else uses, {V} the viewer, {APP} an installed app.
LATER_CASES: list[tuple[str, str, Any, dict[str, int | None], Prepare | None]] = [
    # trash
    ("GET", "/api/trash", None, USER, None),
    ("GET", "/api/trash/preview?project_id={P}", None, M_PROJECT, None),
    ("GET", "/api/trash/preview?image_id={I}", None, W_IMAGE, None),
    ("POST", "/api/trash/{T}/restore", None, exp2(401, 404, 403, 403, 403, 200, 200, 403),
     _fresh_trash),
    ("DELETE", "/api/trash/{T}", None, exp2(401, 404, 403, 403, 403, 204, 204, 403),
     _fresh_trash),
    # review
    ("POST", "/api/annotations/{A}/review", {"action": "accept", "updated_at": "{AT}"},
     exp2(401, 404, 403, 403, 200, 200, 200, 403), _fresh_annotation),
    ("POST", "/api/annotations/{A}/review",
     {"action": "reject", "updated_at": "{AT}", "reason": "not a nucleus"},
     exp2(401, 404, 403, 403, 200, 200, 200, 403), _fresh_annotation),
    ("GET", "/api/annotations/{A}/reviews", None, R_IMAGE, None),
    ("GET", "/api/images/{I}/review", None, R_IMAGE, None),
    ("GET", "/api/projects/{P}/review", None, R_PROJECT, None),
    ("PUT", "/api/projects/{P}/review", {"requires_review": True}, M_PROJECT, None),
    # properties, description and tags
    ("GET", "/api/images/{I}/properties", None, R_IMAGE, None),
    ("PATCH", "/api/images/{I}/properties", {"stain": "HE"}, M_IMAGE, None),
    ("GET", "/api/images/{I}/about", None, R_IMAGE, None),
    ("PATCH", "/api/images/{I}/about", {"description": "*liver*", "tags": ["liver"]},
     M_IMAGE, None),
    ("GET", "/api/projects/{P}/properties", None, R_PROJECT, None),
    ("PATCH", "/api/projects/{P}/properties", {"cohort": "A"}, M_PROJECT, None),
    ("GET", "/api/projects/{P}/property-keys", None, R_PROJECT, None),
    ("GET", "/api/projects/{P}/about", None, R_PROJECT, None),
    ("PATCH", "/api/projects/{P}/about", {"description": "*cohort A*"}, M_PROJECT, None),
    # saved layer colours: every reader of the project keeps their own
    ("GET", "/api/projects/{P}/layer-colors", None, R_PROJECT, None),
    ("PATCH", "/api/projects/{P}/layer-colors", {"user:1": "#aabbcc"}, R_PROJECT, None),
    ("GET", "/api/annotations/{A}/properties", None, R_IMAGE, None),
    ("PATCH", "/api/annotations/{A}/properties", {"grade": 2},
     exp2(401, 404, 403, 200, 200, 200, 200, 403), None),
    # attachments
    ("GET", "/api/images/{I}/attachments", None, R_IMAGE, None),
    ("GET", "/api/attachments/{F}", None, R_IMAGE, None),
    ("DELETE", "/api/attachments/{F}", None, exp2(401, 404, 403, 204, 403, 204, 204, 403),
     _fresh_attachment),
    # activity
    ("GET", "/api/images/{I}/activity", None, M_IMAGE, None),
    ("GET", "/api/images/{I}/activity/sessions", None, M_IMAGE, None),
    ("GET", "/api/projects/{P}/dashboard", None, M_PROJECT, None),
    ("GET", "/api/live/users", None, USER, None),
    # image alignments (both images in the project; the share link opens only {I})
    ("GET", "/api/images/{I}/alignments/{J}", None, exp2(401, 404, 200, 200, 200, 200, 200,
                                                         404), None),
    ("PUT", "/api/images/{I}/alignments/{J}", {"tx": 10, "ty": -5},
     exp2(401, 404, 403, 200, 200, 200, 200, 403), None),
    ("DELETE", "/api/images/{I}/alignments/{J}", None,
     exp2(401, 404, 403, 204, 204, 204, 204, 403), None),
    # per-project analyses and app switches
    ("GET", "/api/projects/{P}/analyses", None, R_PROJECT, None),
    ("GET", "/api/projects/{P}/apps", None, R_PROJECT, None),
    ("PUT", "/api/projects/{P}/apps/{APP}", {"enabled": False}, M_PROJECT, None),
    ("GET", "/api/projects/{P}/classifier-models", None, R_PROJECT, None),
    # accounts
    ("GET", "/api/users/{V}", None, exp2(401, 404, 200, 404, 404, 404, 200, 403), None),
    ("PATCH", "/api/users/{X}", {"is_admin": True}, ADMIN, _fresh_user),
    ("PATCH", "/api/users/{X}", {"disabled": True}, ADMIN, _fresh_user),
    ("DELETE", "/api/users/{X}", None, exp2(401, 403, 403, 403, 403, 403, 204, 403),
     _fresh_user),
    ("POST", "/api/users/{X}/password", {"password": "temporary password"},
     exp2(401, 403, 403, 403, 403, 403, 204, 403), _fresh_user),
    ("POST", "/api/users/{X}/reset-link", None, exp2(401, 403, 403, 403, 403, 403, 201, 403),
     _fresh_user),
    ("POST", "/api/account/password",
     {"current_password": "not my password", "new_password": "long enough"},
     exp2(401, 403, 403, 403, 403, 403, 403, 403), None),
    ("GET", "/api/account/sessions", None, USER, None),
    ("POST", "/api/password-reset/check", {"token": "{TOKEN}"},
     exp2(*[200] * 8, bad={"share_expired": 200, "revoked_key": 200}), _fresh_reset_token),
    ("POST", "/api/password-reset", {"token": "{TOKEN}", "new_password": "chosen by me"},
     exp2(*[204] * 8, bad={"share_expired": 204, "revoked_key": 204}), _fresh_reset_token),
    # Last: signing out everywhere ends every session of the user, the world's too.
    ("DELETE", "/api/account/sessions", None, exp2(401, 204, 204, 204, 204, 204, 204, 403),
     _own_fresh_session),
]


_SNAPSHOT_SQL: list[str] = []


async def _snapshot(full: Full) -> dict[str, str]:
    """A digest of every table's rows, without the columns that only record use."""
    import asyncpg

    if full.conn is None:
        full.conn = await asyncpg.connect(full.database_url)
    conn = full.conn
    if not _SNAPSHOT_SQL:
        tables = [r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'throttle_counters' ORDER BY tablename")]
        _SNAPSHOT_SQL.append(" UNION ALL ".join(
            f"""SELECT '{t}' AS t, md5(coalesce(string_agg(j, '|' ORDER BY j), ''))
                  FROM (SELECT (to_jsonb(x) - 'last_seen_at' - 'last_used_at')::text AS j
                          FROM "{t}" x) s""" for t in tables))
    return {r[0]: r[1] for r in await conn.fetch(_SNAPSHOT_SQL[0])}


@pytest.fixture
async def full(aiohttp_client: Any, settings: Settings, database_url: str,
               small_pyramid: Path) -> AsyncIterator[Full]:
    from aiohttp import DummyCookieJar

    from microtome.app import create_app
    from tests.catalog.world import _direct_user

    client = await aiohttp_client(create_app(settings), cookie_jar=DummyCookieJar())
    world = await build_world(client, settings, database_url, small_pyramid)
    out = Full(client, world, database_url)
    reviewer = await _direct_user(database_url, "reviewer")
    manager = world.actors["manager"]
    await call(client, manager, "PUT",
               f"/api/projects/{world.project_id}/members/{reviewer.user_id}",
               {"role": "reviewer"}, expect=200)
    world.actors["reviewer"] = reviewer
    await call(client, manager, "PUT", f"/api/projects/{world.project_id}/review",
               {"requires_review": True}, expect=200)
    ann = await _annotation(out)
    _, att = await call(client, world.actors["contributor"], "POST",
                        f"/api/images/{world.image_id}/attachments?filename=r.pdf",
                        data=PDF, content_type="application/octet-stream", expect=201)
    _, apps = await call(client, manager, "GET", "/api/apps", expect=200)
    out.ids = {"{P}": world.project_id, "{I}": world.image_id, "{J}": await _new_image(out),
               "{A}": ann["id"], "{AT}": ann["properties"]["updated_at"], "{F}": att["id"],
               "{V}": world.actors["viewer"].user_id, "{APP}": apps["items"][0]["name"]}
    yield out
    if out.conn is not None:
        await out.conn.close()


def _subst(value: Any, ids: dict[str, Any]) -> Any:
    if isinstance(value, str):
        if value in ids:
            return ids[value]
        for k, v in ids.items():
            value = value.replace(k, str(v))
        return value
    if isinstance(value, dict):
        return {k: _subst(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_subst(v, ids) for v in value]
    return value


async def test_later_routes_access_matrix(full: Full) -> None:
    # The comparison sees a write (else "unchanged" would prove nothing).
    before = await _snapshot(full)
    await call(full.client, full.world.actors["manager"], "PATCH",
               f"/api/images/{full.world.image_id}/about", {"tags": ["seen"]}, expect=200)
    assert before != await _snapshot(full)
    failures = []
    for method, template, body, expected, prepare in LATER_CASES:
        for name, want in expected.items():
            if want is None:
                continue
            ids, actor = dict(full.ids), full.world.actors[name]
            if prepare is not None:
                fresh, spare = await prepare(full, name)
                ids.update(fresh)
                actor = spare or actor
            path = _subst(template, ids)
            refused_write = method != "GET" and want >= 400
            before = await _snapshot(full) if refused_write else None
            status, got = await call(full.client, actor, method, path, _subst(body, ids))
            if status != want:
                failures.append(f"{name:13} {method} {template}: {status} (want {want}) {got}")
            if before is not None:
                after = await _snapshot(full)
                changed = sorted(t for t in after if after[t] != before.get(t))
                if changed:
                    failures.append(f"{name:13} {method} {template}: refused ({status}) but"
                                    f" changed {changed}")
    assert not failures, "\n".join(failures)


async def test_live_socket_matrix(full: Full) -> None:
    """The live-viewer socket opens for readers of the image only."""
    import aiohttp

    want = {"anonymous": 401, "outsider": 404, "viewer": 101, "contributor": 101,
            "reviewer": 101, "manager": 101, "admin": 101, "share": 101,
            "share_expired": 401, "revoked_key": 401}
    got = {}
    base = str(full.client.make_url("/"))
    for name, _ in want.items():
        actor = full.world.actors[name]
        headers = {**actor.headers("GET"), "Origin": base.rstrip("/")}
        try:
            ws = await full.client.ws_connect(f"/api/live?image_id={full.world.image_id}",
                                              headers=headers)
            got[name] = 101
            await ws.close()
        except aiohttp.WSServerHandshakeError as e:
            got[name] = e.status
    assert got == want
