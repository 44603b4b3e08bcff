"""The catalog never blocks the event loop (blockbuster raises on blocking calls made in
the loop thread from catalog code; such a call would surface as a 500)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

from aiohttp.test_utils import TestClient
from blockbuster import blockbuster_ctx

from microtome.core.settings import Settings
from tests.catalog.helpers import Actor, call
from tests.catalog.world import build_world


def _meta(**kw: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in kw.items())


async def test_no_blocking_calls(tile_client: TestClient, settings: Settings,
                                 database_url: str, small_pyramid: Path) -> None:
    client = tile_client
    with blockbuster_ctx(["microtome.catalog"]):
        world = await build_world(client, settings, database_url, small_pyramid)
        manager = world.actors["manager"]
        i, p = world.image_id, world.project_id
        for path in ("/api/images", f"/api/images/{i}", f"/api/projects/{p}/images?q=sl",
                     "/api/projects", f"/api/projects/{p}/members", "/api/jobs",
                     f"/dzi/{i}.dzi", f"/iiif/3/{i}/info.json"):
            status, body = await call(client, manager, "GET", path)
            assert status == 200, (path, body)
        _, signed = await call(client, manager, "POST", f"/api/images/{i}/signed-url", {},
                               expect=200)
        status, _ = await call(client, Actor("anon"), "GET", signed["dzi"])
        assert status == 200
        _, key = await call(client, manager, "POST", "/api/api-keys", {"name": "k"},
                            expect=201)
        auth = {"Authorization": f"Bearer {key['key']}", "Tus-Resumable": "1.0.0"}
        r = await client.post("/api/uploads", headers={
            **auth, "Upload-Length": "6",
            "Upload-Metadata": _meta(filename="x.tif", project_id=str(p))})
        assert r.status == 201, await r.text()
        loc = r.headers["Location"]
        for offset, chunk in ((0, b"abc"), (3, b"def")):
            r = await client.patch(loc, data=chunk, headers={
                **auth, "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream"})
            assert r.status == 204, await r.text()
        r = await client.head(loc, headers=auth)
        assert r.headers["Upload-Offset"] == "6"
        await call(client, manager, "DELETE", f"/api/images/{i}", expect=204)
        await asyncio.sleep(0)
