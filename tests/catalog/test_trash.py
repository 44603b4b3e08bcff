"""The trash: deletes of projects, images and annotation sets are restorable, exactly,
by the right people, until purged (by hand or by the purge job).

Real application, real PostgreSQL, real files; responses checked against the
OpenAPI document by `call`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from microtome.catalog import jobs, trash
from microtome.catalog.db import connect
from microtome.catalog.images import storage_relpath
from microtome.catalog.worker import process_job
from tests.annotations.conftest import api, world  # noqa: F401
from tests.catalog.helpers import Actor, call
from tests.catalog.world import World

#: Every table whose rows a project or image delete touches, compared row for row.
TABLES = ("projects", "project_members", "project_images", "images", "terms", "annotations",
          "share_links", "annotation_density")


def square(x: float, y: float, s: float = 40) -> dict[str, Any]:
    return {"type": "Polygon",
            "coordinates": [[[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]]}


async def snapshot(database_url: str) -> dict[str, list[str]]:
    conn = await connect(database_url)
    try:
        # A share link's last use changes whenever it is checked: not part of the state.
        return {t: sorted(r[0] for r in await conn.fetch(
                    f"SELECT (to_jsonb(t) - 'last_used_at')::text FROM {t} t"))
                for t in TABLES}
    finally:
        await conn.close()


async def annotate(api: TestClient, world: World) -> list[int]:  # noqa: F811
    """Two authors, a term with a parent, three annotations; a project share link."""
    a, pid, iid = world.actors, world.project_id, world.image_id
    _, parent = await call(api, a["contributor"], "POST", f"/api/projects/{pid}/terms",
                           {"name": "Tissue"}, expect=201)
    _, term = await call(api, a["contributor"], "POST", f"/api/projects/{pid}/terms",
                         {"name": "Tumor", "parent_id": parent["id"]}, expect=201)
    ids = []
    for who, x in (("contributor", 10), ("contributor", 100), ("manager", 200)):
        _, ann = await call(api, a[who], "POST", f"/api/images/{iid}/annotations",
                            {"geometry": square(x, 10), "terms": [term["id"]],
                             "data": {"note": who}}, expect=201)
        ids.append(ann["id"])
    await call(api, a["manager"], "POST", "/api/share-links",
               {"project_id": pid, "expires_in": 3600}, expect=201)
    return ids


async def only_item(api: TestClient, actor: Actor, kind: str) -> dict[str, Any]:  # noqa: F811
    _, page = await call(api, actor, "GET", f"/api/trash?kind={kind}", expect=200)
    assert page["total"] == 1, page
    return page["items"][0]  # type: ignore[no-any-return]


async def test_project_delete_then_restore_brings_back_everything(
        api: TestClient, world: World, database_url: str) -> None:  # noqa: F811
    a, pid, iid = world.actors, world.project_id, world.image_id
    await annotate(api, world)
    _, preview = await call(api, a["manager"], "GET", f"/api/trash/preview?project_id={pid}",
                            expect=200)
    assert (preview["images"], preview["annotations"], preview["authors"]) == (1, 3, 2)
    assert preview["trash_days"] == 30
    await call(api, a["contributor"], "GET", f"/api/trash/preview?project_id={pid}", expect=403)
    before = await snapshot(database_url)

    await call(api, a["manager"], "DELETE", f"/api/projects/{pid}", expect=204)
    # Gone everywhere: the project, its annotations, its terms.
    await call(api, a["manager"], "GET", f"/api/projects/{pid}", expect=404)
    _, counts = await call(api, a["admin"], "GET", f"/api/images/{iid}/annotations/counts",
                           expect=200)
    assert counts["total"] == 0
    _, projects = await call(api, a["viewer"], "GET", "/api/projects", expect=200)
    assert projects["total"] == 0

    item = await only_item(api, a["manager"], "project")
    assert item["ids"] == [pid] and item["name"] == "Private"
    assert item["summary"]["annotations"] == 3 and item["summary"]["authors"] == 2
    assert item["deleted_by_name"] == "manager"
    await only_item(api, a["admin"], "project")
    for who in ("viewer", "contributor", "outsider"):
        _, page = await call(api, a[who], "GET", "/api/trash", expect=200)
        assert page["items"] == [], who
    restore = f"/api/trash/{item['id']}/restore"
    await call(api, a["anonymous"], "GET", "/api/trash", expect=401)
    await call(api, a["anonymous"], "POST", restore, expect=401)
    await call(api, a["viewer"], "POST", restore, expect=403)
    await call(api, a["contributor"], "POST", restore, expect=403)
    await call(api, a["outsider"], "POST", restore, expect=404)
    status, _ = await call(api, a["share"], "POST", restore)
    assert status in (401, 403)  # a share link never restores
    await call(api, a["contributor"], "DELETE", f"/api/trash/{item['id']}", expect=403)
    await call(api, a["outsider"], "DELETE", f"/api/trash/{item['id']}", expect=404)

    _, done = await call(api, a["manager"], "POST", restore, expect=200)
    assert done["kind"] == "project" and done["ids"] == [pid] and done["dropped"] == {}
    assert await snapshot(database_url) == before
    _, counts = await call(api, a["viewer"], "GET", f"/api/images/{iid}/annotations/counts",
                           expect=200)
    assert counts["total"] == 3
    await call(api, a["manager"], "POST", restore, expect=404)
    _, page = await call(api, a["manager"], "GET", "/api/trash", expect=200)
    assert page["total"] == 0


async def test_image_trash_hides_tiles_and_restores_them(
        api: TestClient, world: World, database_url: str, tmp_path: Path) -> None:  # noqa: F811
    a, iid = world.actors, world.image_id
    await annotate(api, world)
    before = await snapshot(database_url)
    tile = f"/iiif/3/{iid}/0,0,256,256/256,/0/default.jpg"
    assert (await api.get(tile, headers=a["viewer"].headers("GET"))).status == 200
    await call(api, a["contributor"], "DELETE", f"/api/images/{iid}", expect=403)
    await call(api, a["manager"], "DELETE", f"/api/images/{iid}", expect=204)
    assert (await api.get(tile, headers=a["viewer"].headers("GET"))).status == 404
    assert (await api.get(tile, headers=a["share"].headers("GET"))).status in (401, 403, 404)
    await call(api, a["viewer"], "GET", f"/api/images/{iid}", expect=404)
    _, listed = await call(api, a["manager"], "GET", "/api/images", expect=200)
    assert listed["total"] == 0
    item = await only_item(api, a["manager"], "image")
    assert item["image_id"] == iid and item["summary"]["annotations"] == 3
    # The files stay while the image is in the trash.
    image_dir = tmp_path / "var" / "images" / storage_relpath(iid)
    assert image_dir.exists()

    await call(api, a["manager"], "POST", f"/api/trash/{item['id']}/restore", expect=200)
    assert await snapshot(database_url) == before
    assert (await api.get(tile, headers=a["viewer"].headers("GET"))).status == 200
    assert (await api.get(tile, headers=a["share"].headers("GET"))).status == 200

    # Purged by hand: no way back, files gone.
    await call(api, a["manager"], "DELETE", f"/api/images/{iid}", expect=204)
    item = await only_item(api, a["manager"], "image")
    await call(api, a["manager"], "DELETE", f"/api/trash/{item['id']}", expect=204)
    assert not image_dir.exists()
    await call(api, a["manager"], "POST", f"/api/trash/{item['id']}/restore", expect=404)


async def test_restore_needs_its_project(api: TestClient, world: World) -> None:  # noqa: F811
    a, pid, iid = world.actors, world.project_id, world.image_id
    await annotate(api, world)
    await call(api, a["manager"], "DELETE", f"/api/images/{iid}", expect=204)
    image_item = await only_item(api, a["manager"], "image")
    await call(api, a["manager"], "DELETE", f"/api/projects/{pid}", expect=204)
    project_item = await only_item(api, a["manager"], "project")
    restore = f"/api/trash/{image_item['id']}/restore"
    status, body = await call(api, a["manager"], "POST", restore)
    assert status == 409 and "is in the trash: restore it first" in body["error"], body
    assert "Private" in body["error"]

    await call(api, a["admin"], "DELETE", f"/api/trash/{project_item['id']}", expect=204)
    status, body = await call(api, a["manager"], "POST", restore)
    assert status == 409 and "was purged" in body["error"], body
    # Its project's managers at the time keep the right to decide; with force the
    # image comes back without what belonged to the purged project.
    _, done = await call(api, a["manager"], "POST", restore + "?force=true", expect=200)
    # The manager's own annotations were accepted on creation: their review
    # records belonged to the purged project too.
    assert done["dropped"]["annotations"] == 3 and done["dropped"]["project_images"] == 1
    assert set(done["dropped"]) <= {"annotations", "project_images", "annotation_reviews"}
    _, image = await call(api, a["admin"], "GET", f"/api/images/{iid}", expect=200)
    assert image["status"] == "ready"


async def test_two_managers_restoring_at_once(api: TestClient, world: World,  # noqa: F811
                                              database_url: str) -> None:
    a, iid = world.actors, world.image_id
    await call(api, a["manager"], "DELETE", f"/api/images/{iid}", expect=204)
    item = await only_item(api, a["admin"], "image")
    restore = f"/api/trash/{item['id']}/restore"
    results = await asyncio.gather(
        call(api, a["manager"], "POST", restore), call(api, a["admin"], "POST", restore),
        call(api, a["admin"], "DELETE", f"/api/trash/{item['id']}"))
    statuses = sorted(s for s, _ in results)
    assert statuses.count(404) == 2 and statuses[0] in (200, 204), statuses
    conn = await connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM trash") == 0
        assert await conn.fetchval("SELECT count(*) FROM trash_rows") == 0
    finally:
        await conn.close()


async def test_annotation_set_goes_to_the_trash(api: TestClient, world: World) -> None:  # noqa: F811
    a, iid = world.actors, world.image_id
    ids = await annotate(api, world)
    # A contributor may delete only their own: all or nothing.
    await call(api, a["contributor"], "POST", f"/api/images/{iid}/annotations/delete",
               {"ids": ids}, expect=403)
    _, gone = await call(api, a["contributor"], "POST", f"/api/images/{iid}/annotations/delete",
                         {"ids": ids[:2]}, expect=200)
    assert gone["deleted"] == 2
    _, counts = await call(api, a["viewer"], "GET", f"/api/images/{iid}/annotations/counts",
                           expect=200)
    assert counts["total"] == 1
    _, page = await call(api, a["contributor"], "GET", "/api/trash", expect=200)
    assert page["items"] == []  # managers restore
    item = await only_item(api, a["manager"], "annotations")
    assert item["id"] == gone["trash_id"] and item["name"] == "2 annotations on slide-1"
    await call(api, a["manager"], "POST", f"/api/trash/{item['id']}/restore", expect=200)
    _, counts = await call(api, a["viewer"], "GET", f"/api/images/{iid}/annotations/counts",
                           expect=200)
    assert counts["total"] == 3
    _, ann = await call(api, a["viewer"], "GET", f"/api/annotations/{ids[0]}", expect=200)
    assert ann["properties"]["data"] == {"note": "contributor"}


async def test_purge_job_removes_what_is_due(api: TestClient, world: World,  # noqa: F811
                                             database_url: str, tmp_path: Path) -> None:
    a, pid, iid = world.actors, world.project_id, world.image_id
    await call(api, a["manager"], "DELETE", f"/api/images/{iid}", expect=204)
    _, other = await call(api, a["manager"], "POST", "/api/projects", {"name": "Other"},
                          expect=201)
    await call(api, a["manager"], "DELETE", f"/api/projects/{other['id']}", expect=204)
    image_dir = tmp_path / "var" / "images" / storage_relpath(iid)
    conn = await connect(database_url)
    try:
        assert await trash.enqueue_purge(conn) is None  # nothing due yet
        await conn.execute("UPDATE trash SET purge_after = now() - interval '1 second'"
                           " WHERE kind = 'image'")
        job_id = await trash.enqueue_purge(conn)
        assert job_id is not None and await trash.enqueue_purge(conn) is None  # one at a time
        job = await jobs.claim(conn, "test:1:0")
        assert job is not None and job["id"] == job_id
        status = await process_job(conn, job, "test:1:0", tmp_path / "var" / "images")
        assert status == "done"
        row = await conn.fetchrow("SELECT status, options FROM jobs WHERE id = $1", job_id)
        assert row["status"] == "done" and row["options"] == {"purged": 1}
        kinds = [r["kind"] for r in await conn.fetch("SELECT kind FROM trash")]
        assert kinds == ["project"]  # not due: kept
        assert not await conn.fetchval("SELECT count(*) FROM trash_rows WHERE tbl = 'images'")
    finally:
        await conn.close()
    assert not image_dir.exists()
    await call(api, a["manager"], "GET", f"/api/images/{iid}", expect=404)
    assert pid  # the image's project itself was never deleted


async def test_bad_input(api: TestClient, world: World) -> None:  # noqa: F811
    a = world.actors
    await call(api, a["manager"], "GET", "/api/trash?kind=user", expect=400)
    await call(api, a["manager"], "GET", "/api/trash/preview", expect=400)
    await call(api, a["manager"], "GET", "/api/trash/preview?image_id=x", expect=400)
    await call(api, a["manager"], "POST", "/api/trash/abc/restore", expect=404)
    await call(api, a["manager"], "POST", "/api/trash/999999/restore", expect=404)
    await call(api, a["manager"], "DELETE", "/api/trash/999999", expect=404)


async def test_restore_of_a_project_whose_name_was_taken(
        api: TestClient, world: World) -> None:  # noqa: F811
    a, pid = world.actors, world.project_id
    await call(api, a["manager"], "DELETE", f"/api/projects/{pid}", expect=204)
    await call(api, a["manager"], "POST", "/api/projects", {"name": "private"}, expect=201)
    item = await only_item(api, a["manager"], "project")
    status, body = await call(api, a["manager"], "POST", f"/api/trash/{item['id']}/restore")
    assert status == 409 and "same name" in body["error"]


async def test_restore_refuses_a_body_it_would_ignore(api: TestClient, world: World) -> None:  # noqa: F811
    a, iid = world.actors, world.image_id
    await call(api, a["manager"], "DELETE", f"/api/images/{iid}", expect=204)
    item = await only_item(api, a["manager"], "image")
    restore = f"/api/trash/{item['id']}/restore"
    deep = b"[" * 426 + b"]" * 426
    status, body = await call(api, a["manager"], "POST", restore, data=deep)
    assert status == 400 and isinstance(body["error"], str)
    status, body = await call(api, a["manager"], "POST", restore, {"force": "yes please"})
    assert status == 400 and "no request body" in body["error"]
    await call(api, a["manager"], "POST", restore, {}, expect=200)
