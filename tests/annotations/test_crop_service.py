"""Annotation crops go through the tile service: one opened pyramid, shared with the tiles."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from microtome.tileserver.keys import SERVICE
from tests.catalog.helpers import call
from tests.catalog.world import World


async def test_crops_share_the_tile_services_open_image(api: TestClient, world: World) -> None:
    svc = api.app[SERVICE]
    viewer = world.actors["viewer"]
    _, ann = await call(api, world.actors["contributor"], "POST",
                        f"/api/images/{world.image_id}/annotations",
                        {"shape": {"type": "ellipse", "cx": 300, "cy": 200, "rx": 100,
                                   "ry": 50}}, expect=201)
    assert len(svc.images) == 0
    for url in ("crop.png", "crop.jpg?size=64", "mask.png?alpha=true"):
        r = await api.get(f"/api/annotations/{ann['id']}/{url}", headers=viewer.headers("GET"))
        assert r.status == 200, url
        assert len(svc.images) == 1  # opened once, kept
    # The tiles of the same image reuse the pyramid the crops opened.
    r = await api.get(f"/dzi/{world.image_id}_files/9/0_0.jpg", headers=viewer.headers("GET"))
    assert r.status == 200
    assert len(svc.images) == 1
