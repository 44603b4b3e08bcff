"""The analysis API through the real application: apps listed, analyses created
with parameters checked against the app's schema, read, cancelled, deleted with
their results; roles enforced. Every answer is checked against the OpenAPI document."""

from __future__ import annotations

import asyncpg
from aiohttp.test_utils import TestClient

from microtome.catalog.db import connect
from tests.catalog.helpers import call
from tests.catalog.world import World


async def test_apps_listed_with_their_schemas(api: TestClient, world: World) -> None:
    _, body = await call(api, world.actors["viewer"], "GET", "/api/apps", expect=200)
    apps = {a["name"]: a for a in body["items"]}
    assert {"tissue_detection", "nucleus_detection"} <= set(apps)
    schema = apps["tissue_detection"]["params_schema"]
    assert schema["properties"]["min_area"]["minimum"] == 0
    await call(api, world.actors["anonymous"], "GET", "/api/apps", expect=401)


async def test_create_read_list_cancel_delete(api: TestClient, world: World,
                                              database_url: str) -> None:
    c = world.actors["contributor"]
    path = f"/api/images/{world.image_id}/analyses"
    _, a = await call(api, c, "POST", path, {"app": "tissue_detection",
                                             "params": {"min_area": 500},
                                             "region": {"x": 0, "y": 0, "w": 300, "h": 200}},
                      expect=201)
    assert a["status"] == "queued" and a["progress"] == 0
    assert a["version"] == "1.0.0" and a["user_id"] == c.user_id
    assert a["params"]["min_area"] == 500 and a["params"]["method"] == "saturation"
    _, got = await call(api, world.actors["viewer"], "GET", f"/api/analyses/{a['id']}",
                        expect=200)
    assert got == a
    _, page = await call(api, world.actors["viewer"], "GET", path, expect=200)
    assert [x["id"] for x in page["items"]] == [a["id"]] and page["total"] == 1

    # Results are annotations carrying the analysis id; deleting removes them too.
    conn: asyncpg.Connection = await connect(database_url)
    try:
        await conn.execute(
            """INSERT INTO annotations (image_id, kind, geom, sbox, n_vertices, area_px,
                                        perimeter_px, analysis_id)
               VALUES ($1, 'polygon', '\\x00', box(point(0,0), point(1,1)), 4, 1, 4, $2)""",
            world.image_id, a["id"])
        _, cancelled = await call(api, c, "POST", f"/api/analyses/{a['id']}/cancel",
                                  expect=200)
        assert cancelled["status"] == "cancelled" and cancelled["finished_at"]
        assert await conn.fetchval("SELECT count(*) FROM annotations WHERE analysis_id = $1",
                                   a["id"]) == 0
        status, body = await call(api, c, "POST", f"/api/analyses/{a['id']}/cancel")
        assert status == 409 and "cancelled" in body["error"]

        _, b = await call(api, c, "POST", path, {"app": "nucleus_detection"}, expect=201)
        await conn.execute(
            """INSERT INTO annotations (image_id, kind, geom, sbox, n_vertices, area_px,
                                        perimeter_px, analysis_id)
               VALUES ($1, 'polygon', '\\x00', box(point(0,0), point(1,1)), 4, 1, 4, $2)""",
            world.image_id, b["id"])
        await call(api, c, "DELETE", f"/api/analyses/{b['id']}", expect=204)
        assert await conn.fetchval("SELECT count(*) FROM annotations WHERE analysis_id = $1",
                                   b["id"]) == 0
        await call(api, c, "GET", f"/api/analyses/{b['id']}", expect=404)
    finally:
        await conn.close()


async def test_bad_parameters_are_named_field_by_field(api: TestClient, world: World) -> None:
    c = world.actors["contributor"]
    path = f"/api/images/{world.image_id}/analyses"
    _, body = await call(api, c, "POST", path,
                         {"app": "tissue_detection",
                          "params": {"smoothing": 99, "method": "magic", "nope": 1,
                                     "min_area": "big"}}, expect=400)
    assert set(body["detail"]["fields"]) == {"smoothing", "method", "nope", "min_area"}
    _, body = await call(api, c, "POST", path, {"app": "no_such_app"}, expect=400)
    assert "unknown app" in body["error"] and "app" in body["detail"]["fields"]
    _, body = await call(api, c, "POST", path, {"app": "tissue_detection", "version": "9"},
                         expect=400)
    assert "version" in body["error"]
    _, body = await call(api, c, "POST", path,
                         {"app": "tissue_detection",
                          "region": {"x": 600, "y": 0, "w": 200, "h": 10}}, expect=400)
    assert "outside" in body["error"]
    await call(api, c, "POST", path, {"app": "tissue_detection", "region": {"x": -1}},
               expect=400)
    await call(api, c, "POST", path, {"params": {}}, expect=400)
    await call(api, c, "POST", path, [1, 2], expect=400)
    resp = await api.post(path, data=b"{not json", headers=c.headers("POST"))
    assert resp.status == 400 and (await resp.json())["error"] == "malformed JSON body"
    _, page = await call(api, c, "GET", path, expect=200)
    assert page["total"] == 0  # nothing recorded by refused requests


async def test_roles(api: TestClient, world: World) -> None:
    path = f"/api/images/{world.image_id}/analyses"
    run = {"app": "tissue_detection"}
    await call(api, world.actors["viewer"], "POST", path, run, expect=403)
    await call(api, world.actors["outsider"], "POST", path, run, expect=404)
    await call(api, world.actors["anonymous"], "POST", path, run, expect=401)
    _, a = await call(api, world.actors["manager"], "POST", path, run, expect=201)
    await call(api, world.actors["outsider"], "GET", f"/api/analyses/{a['id']}", expect=404)
    await call(api, world.actors["viewer"], "POST", f"/api/analyses/{a['id']}/cancel",
               expect=403)
    await call(api, world.actors["viewer"], "DELETE", f"/api/analyses/{a['id']}", expect=403)
    await call(api, world.actors["outsider"], "DELETE", f"/api/analyses/{a['id']}",
               expect=404)
    await call(api, world.actors["viewer"], "GET", "/api/analyses/999999", expect=404)


async def test_worker_routes_refuse_bad_input(api: TestClient, world: World) -> None:
    admin, c = world.actors["admin"], world.actors["contributor"]
    await call(api, admin, "POST", "/api/analysis-queue/claim", {"apps": "x"}, expect=400)
    _, a = await call(api, c, "POST", f"/api/images/{world.image_id}/analyses",
                      {"app": "tissue_detection"}, expect=201)
    # Only the named apps are claimed.
    await call(api, admin, "POST", "/api/analysis-queue/claim",
               {"apps": ["nucleus_detection"]}, expect=204)
    await call(api, admin, "POST", f"/api/analyses/{a['id']}/finish",
               {"status": "done", "attempt": 1}, expect=409)  # still queued: nobody runs it
    await call(api, c, "POST", f"/api/analyses/{a['id']}/progress", {"progress": 0.1},
               expect=403)
    for bad in ({"progress": 2}, {"progress": "half"}, {}, {"progress": 0.1, "x": 1}):
        await call(api, admin, "POST", f"/api/analyses/{a['id']}/progress", bad, expect=400)
    for bad in ({"status": "great", "attempt": 1}, {"status": "done"},
                {"status": "done", "attempt": 0}):
        await call(api, admin, "POST", f"/api/analyses/{a['id']}/finish", bad, expect=400)
    await call(api, admin, "POST", "/api/analyses/999999/progress", {"progress": 0.1},
               expect=404)
    _, claimed = await call(api, admin, "POST", "/api/analysis-queue/claim",
                            {"apps": ["tissue_detection"]}, expect=200)
    _, failed = await call(api, admin, "POST", f"/api/analyses/{claimed['id']}/finish",
                           {"status": "failed", "attempt": claimed["attempts"],
                            "error": "boom", "log": "step 1",
                            "traceback": "Traceback (most recent call last): ..."},
                           expect=200)
    assert failed["status"] == "failed" and failed["error"] == "boom"
    assert failed["result_count"] is None and failed["log"].endswith("step 1")
    # The traceback is for the image's managers; the others see the error message.
    path = f"/api/analyses/{claimed['id']}"
    _, seen = await call(api, world.actors["manager"], "GET", path, expect=200)
    assert seen["traceback"].startswith("Traceback")
    for who in ("contributor", "viewer"):
        _, seen = await call(api, world.actors[who], "GET", path, expect=200)
        assert seen["traceback"] is None and seen["error"] == "boom"
    _, page = await call(api, c, "GET", f"/api/images/{world.image_id}/analyses", expect=200)
    assert all(x["traceback"] is None for x in page["items"])
