"""Analyses seen from a project (the Analyses tab), apps switched off and on per
project by its managers, one analysis' results exported as GeoJSON; and the
long-poll claim that an idle worker waits in, woken by LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import time

import orjson
from aiohttp.test_utils import TestClient

from microtome.catalog.db import connect
from tests.catalog.helpers import call
from tests.catalog.world import World

_INSERT_RESULT = """INSERT INTO annotations (image_id, kind, geom, sbox, n_vertices, area_px,
                                             perimeter_px, analysis_id)
                    VALUES ($1, 'polygon', $2, box(point(0,0), point(1,1)), 4, 1, 4, $3)"""


async def test_project_lists_every_run_with_who_and_duration(
        api: TestClient, world: World, database_url: str) -> None:
    c = world.actors["contributor"]
    _, a = await call(api, c, "POST", f"/api/images/{world.image_id}/analyses",
                      {"app": "tissue_detection", "params": {"min_area": 500}}, expect=201)
    _, b = await call(api, c, "POST", f"/api/images/{world.image_id}/analyses",
                      {"app": "nucleus_detection"}, expect=201)
    conn = await connect(database_url)
    try:
        # Stored as JSON objects (queryable), not as strings holding JSON.
        assert await conn.fetchval("SELECT jsonb_typeof(params) FROM analyses WHERE id = $1",
                                   a["id"]) == "object"
        await conn.execute("UPDATE analyses SET status = 'done', started_at = now() - "
                           "interval '90 seconds', finished_at = now(), result_count = 0"
                           " WHERE id = $1", a["id"])
    finally:
        await conn.close()
    path = f"/api/projects/{world.project_id}/analyses"
    _, page = await call(api, world.actors["viewer"], "GET", path, expect=200)
    assert page["total"] == 2 and [x["id"] for x in page["items"]] == [b["id"], a["id"]]
    done = page["items"][1]
    assert done["username"] == "contributor" and done["image_name"] == "slide-1"
    assert 89 <= done["duration_s"] <= 92 and done["params"]["min_area"] == 500
    assert page["items"][0]["duration_s"] is None and page["items"][0]["status"] == "queued"
    _, one = await call(api, c, "GET", f"{path}?limit=1&offset=1", expect=200)
    assert [x["id"] for x in one["items"]] == [a["id"]]
    await call(api, world.actors["outsider"], "GET", path, expect=404)
    await call(api, world.actors["anonymous"], "GET", path, expect=401)


async def test_managers_disable_an_app_and_it_cannot_run(api: TestClient, world: World) -> None:
    m, c = world.actors["manager"], world.actors["contributor"]
    apps_path = f"/api/projects/{world.project_id}/apps"
    _, apps = await call(api, c, "GET", apps_path, expect=200)
    assert all(a["enabled"] for a in apps["items"])
    switch = f"{apps_path}/nucleus_detection"
    await call(api, c, "PUT", switch, {"enabled": False}, expect=403)
    _, off = await call(api, m, "PUT", switch, {"enabled": False}, expect=200)
    assert off["enabled"] is False and off["name"] == "nucleus_detection"
    await call(api, m, "PUT", switch, {"enabled": False}, expect=200)  # idempotent
    _, apps = await call(api, c, "GET", apps_path, expect=200)
    enabled = {a["name"]: a["enabled"] for a in apps["items"]}
    assert enabled["nucleus_detection"] is False and enabled["tissue_detection"] is True
    run = f"/api/images/{world.image_id}/analyses"
    _, err = await call(api, c, "POST", run, {"app": "nucleus_detection"}, expect=403)
    assert "disabled" in err["error"]
    await call(api, c, "POST", run, {"app": "tissue_detection"}, expect=201)
    await call(api, m, "PUT", switch, {"enabled": True}, expect=200)
    await call(api, c, "POST", run, {"app": "nucleus_detection"}, expect=201)

    # Bad input: unknown app, wrong bodies.
    await call(api, m, "PUT", f"{apps_path}/no_such_app", {"enabled": True}, expect=404)
    for body in ({}, {"enabled": "yes"}, {"enabled": True, "x": 1}, [True]):
        _, err = await call(api, m, "PUT", switch, body, expect=400)
        assert "enabled" in err["detail"]["fields"]
    status, _ = await call(api, m, "PUT", switch, data=b"{not json", validate=False)
    assert status == 400


async def test_export_has_only_that_analysis_results(api: TestClient, world: World,
                                                    database_url: str) -> None:
    import shapely

    c = world.actors["contributor"]
    ids = []
    for _ in range(2):
        _, a = await call(api, c, "POST", f"/api/images/{world.image_id}/analyses",
                          {"app": "tissue_detection"}, expect=201)
        ids.append(a["id"])
    conn = await connect(database_url)
    try:
        square = shapely.to_wkb(shapely.box(10, 10, 20, 20))
        for n, aid in ((3, ids[0]), (1, ids[1])):
            for _ in range(n):
                await conn.execute(_INSERT_RESULT, world.image_id, square, aid)
    finally:
        await conn.close()
    resp = await api.get(f"/api/analyses/{ids[0]}/export",
                         headers=world.actors["viewer"].headers("GET"))
    assert resp.status == 200 and "geo+json" in resp.headers["Content-Type"]
    doc = orjson.loads(await resp.read())
    assert len(doc["features"]) == 3
    resp = await api.get(f"/api/analyses/{ids[0]}/export",
                         headers=world.actors["outsider"].headers("GET"))
    assert resp.status == 404


async def test_idle_worker_claim_wakes_within_a_second(api: TestClient, world: World,
                                                      database_url: str) -> None:
    admin, c = world.actors["admin"], world.actors["contributor"]
    claim = "/api/analysis-queue/claim"
    # An empty queue: the long-poll answers 204 after the wait, not before.
    t0 = time.monotonic()
    status, _ = await call(api, admin, "POST", claim, {"wait": 0.6})
    assert status == 204 and time.monotonic() - t0 >= 0.55

    async def queue_later(delay: float, by_sql: bool) -> float:
        await asyncio.sleep(delay)
        if by_sql:  # another process (here a bare connection): only NOTIFY can tell us
            conn = await connect(database_url)
            try:
                await conn.execute("INSERT INTO analyses (image_id, app, version) "
                                   "VALUES ($1, 'tissue_detection', '1.0.0')", world.image_id)
            finally:
                await conn.close()
        else:
            await call(api, c, "POST", f"/api/images/{world.image_id}/analyses",
                       {"app": "tissue_detection"}, expect=201)
        return time.monotonic()

    for by_sql in (False, True):
        t0 = time.monotonic()
        task = asyncio.ensure_future(queue_later(1.5, by_sql))
        status, got = await call(api, admin, "POST", claim, {"wait": 20})
        answered = time.monotonic()
        queued_at = await task
        assert status == 200 and got["status"] == "running"
        assert answered - t0 >= 1.4  # it did wait for the analysis
        assert answered - queued_at < 1.0, f"woke {answered - queued_at:.2f} s after queueing"
    status, _ = await call(api, admin, "POST", claim, {"wait": 61}, validate=False)
    assert status == 400
