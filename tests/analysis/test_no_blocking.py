"""The analysis routes never block the event loop (blockbuster raises on blocking
calls made in the loop thread from catalog or analysis code)."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient
from blockbuster import blockbuster_ctx

from tests.catalog.helpers import call
from tests.catalog.world import World


async def test_no_blocking_calls(api: TestClient, world: World) -> None:
    c, admin = world.actors["contributor"], world.actors["admin"]
    iid = world.image_id
    await asyncio.gather(*(api.get("/api/apps", headers=c.headers("GET")) for _ in range(10)))
    with blockbuster_ctx(["microtome.catalog", "microtome.analysis"]):
        await call(api, c, "GET", "/api/apps", expect=200)
        _, a = await call(api, c, "POST", f"/api/images/{iid}/analyses",
                          {"app": "nucleus_detection", "params": {"min_area": 5}},
                          expect=201)
        await call(api, c, "POST", f"/api/images/{iid}/analyses",
                   {"app": "nucleus_detection", "params": {"min_area": -5}}, expect=400)
        await call(api, c, "GET", f"/api/images/{iid}/analyses", expect=200)
        _, claimed = await call(api, admin, "POST", "/api/analysis-queue/claim",
                                {"worker": "t"}, expect=200)
        assert claimed["id"] == a["id"] and claimed["status"] == "running"
        await call(api, admin, "POST", f"/api/analyses/{a['id']}/progress",
                   {"progress": 0.5, "log": "x"}, expect=200)
        _, fin = await call(api, admin, "POST", f"/api/analyses/{a['id']}/finish",
                            {"status": "done", "attempt": 1}, expect=200)
        assert fin["result_count"] == 0 and fin["progress"] == 1
        await call(api, admin, "POST", "/api/analysis-queue/claim", {}, expect=204)
        await call(api, c, "POST", f"/api/analyses/{a['id']}/cancel", expect=409)
        await call(api, c, "GET", f"/api/analyses/{a['id']}", expect=200)
        await call(api, c, "POST", "/api/analysis-queue/claim", {}, expect=403)
        await call(api, c, "DELETE", f"/api/analyses/{a['id']}", expect=204)
