"""Attached files: roles, size limit, sniffed type, safe download headers."""

from __future__ import annotations

from dataclasses import replace

from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient

from microtome.core.settings import CollabSettings, Settings
from tests.catalog.conftest import ClientFactory
from tests.catalog.helpers import call
from tests.catalog.world import World, build_world
from tests.collab.conftest import full_app

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


async def test_attach_list_download_delete(client: TestClient, world: World) -> None:
    a, iid = world.actors, world.image_id
    url = f"/api/images/{iid}/attachments"
    _, att = await call(client, a["contributor"], "POST", url + "?filename=../report%22.pdf",
                        data=PDF, content_type="application/octet-stream", expect=201)
    assert att["content_type"] == "application/pdf" and att["size"] == len(PDF)
    assert att["filename"] == "report.pdf"
    # HTML claiming to be a PDF is stored as bytes, never labelled as something to render.
    _, evil = await call(client, a["manager"], "POST", url + "?filename=x.pdf",
                         data=b"<html><script>alert(1)</script></html>",
                         content_type="application/pdf", expect=201)
    assert evil["content_type"] == "application/octet-stream"
    _, csv = await call(client, a["manager"], "POST", url + "?filename=cells.csv",
                        data=b"a,b\n1,2\n", content_type="text/csv", expect=201)
    assert csv["content_type"] == "text/csv"
    _, listing = await call(client, a["viewer"], "GET", url, expect=200)
    assert [x["id"] for x in listing["items"]] == [att["id"], evil["id"], csv["id"]]
    for item, body in ((att, PDF), (evil, b"<html><script>alert(1)</script></html>")):
        resp = await client.get(item["url"], headers=a["viewer"].headers("GET"))
        assert resp.status == 200 and await resp.read() == body
        assert resp.headers["Content-Disposition"].startswith("attachment;")
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Content-Type"].startswith(item["content_type"])
    resp = await client.get(att["url"], headers=a["outsider"].headers("GET"))
    assert resp.status == 404
    await call(client, a["viewer"], "POST", url + "?filename=a.pdf", data=PDF,
               content_type="application/octet-stream", expect=403)
    # Contributors remove their own; only managers remove others'.
    await call(client, a["contributor"], "DELETE", evil["url"], expect=403)
    await call(client, a["contributor"], "DELETE", att["url"], expect=204)
    await call(client, a["manager"], "DELETE", evil["url"], expect=204)
    resp = await client.get(att["url"], headers=a["viewer"].headers("GET"))
    assert resp.status == 404


async def test_size_limit(aiohttp_client: ClientFactory, settings: Settings,
                          database_url: str, small_pyramid) -> None:  # type: ignore[no-untyped-def]
    small = replace(settings, collab=CollabSettings(attachment_max_bytes=1024 * 1024))
    client = await aiohttp_client(full_app(small), cookie_jar=DummyCookieJar())
    world = await build_world(client, small, database_url, small_pyramid)
    url = f"/api/images/{world.image_id}/attachments?filename=big.bin"
    status, body = await call(client, world.actors["manager"], "POST", url,
                              data=b"x" * (1024 * 1024 + 1),
                              content_type="application/octet-stream")
    assert status == 413, body

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):  # no Content-Length: the limit is enforced while streaming
            yield b"y" * 100_000

    resp = await client.post(url, data=chunks(), headers={
        **world.actors["manager"].headers("POST"), "Content-Type": "application/octet-stream"})
    assert resp.status == 413
    _, listing = await call(client, world.actors["viewer"], "GET",
                            f"/api/images/{world.image_id}/attachments", expect=200)
    assert listing["items"] == []
    folder = small.images_dir / str(world.image_id) / "attachments"
    assert not [p for p in folder.iterdir()] if folder.exists() else True
