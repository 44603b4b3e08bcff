"""The annotation routes never block the event loop: blockbuster raises on blocking
calls made in the loop thread from annotations code (they would surface as 500s)."""

from __future__ import annotations

import asyncio

import orjson
from aiohttp.test_utils import TestClient
from blockbuster import blockbuster_ctx

from tests.catalog.helpers import call
from tests.catalog.world import World


async def test_no_blocking_calls(api: TestClient, world: World) -> None:
    a = world.actors["contributor"]
    iid, pid = world.image_id, world.project_id
    cls = {"classification": {"name": "T", "color": [1, 2, 3]}}
    feats = [{"type": "Feature", "properties": cls,
              "geometry": {"type": "Polygon", "coordinates": [[[x, 5], [x + 5, 5], [x + 5, 10],
                                                               [x, 5]]]}}
             for x in range(10, 600, 7)]
    # Grow the pool first: asyncpg reads ~/.pgpass (a blocking stat) when it opens a
    # connection, which is asyncpg's business, not ours.
    await asyncio.gather(*(api.get(f"/api/images/{iid}/annotations/counts",
                                   headers=a.headers("GET")) for _ in range(10)))
    with blockbuster_ctx(["microtome.annotations"]):
        _, term = await call(api, a, "POST", f"/api/projects/{pid}/terms", {"name": "U"},
                             expect=201)
        _, ann = await call(api, a, "POST", f"/api/images/{iid}/annotations",
                            {"shape": {"type": "circle", "cx": 300, "cy": 200, "r": 50},
                             "terms": [term["id"]]}, expect=201)
        await call(api, a, "PATCH", f"/api/annotations/{ann['id']}", {"data": {"x": 1}},
                   expect=200)
        r = await api.post(f"/api/images/{iid}/annotations/import", headers=a.headers("POST"),
                           data=orjson.dumps({"type": "FeatureCollection", "features": feats}))
        assert r.status == 201, await r.text()
        for path in (f"/api/images/{iid}/annotations?bbox=0,0,700,500",
                     f"/api/images/{iid}/annotations?lod=clusters",
                     f"/api/images/{iid}/annotations/export",
                     f"/api/images/{iid}/annotations/counts",
                     f"/api/images/{iid}/annotations/stats",
                     f"/api/annotations/{ann['id']}/crop.jpg",
                     f"/api/annotations/{ann['id']}/mask.png?alpha=true"):
            r = await api.get(path, headers=a.headers("GET"))
            assert r.status == 200, (path, await r.text())
        r = await api.post(f"/api/images/{iid}/annotations/search", headers=a.headers("POST"),
                           json={"geometry": {"type": "Point", "coordinates": [300, 200]},
                                 "predicate": "contains"})
        assert r.status == 200
        await call(api, a, "DELETE", f"/api/annotations/{ann['id']}", expect=204)
