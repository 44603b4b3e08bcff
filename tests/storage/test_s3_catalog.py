"""MICROTOME_STORAGE=s3://...: the catalog's conversions land in S3 (a real moto server),
tiles come from there, deleting the image removes its objects."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient

from microtome.catalog.state import CATALOG
from microtome.converters.convert import convert
from microtome.core.settings import StorageSettings
from microtome.pyramid.stores import open_store
from tests.catalog.conftest import ClientFactory, make_app, make_settings
from tests.catalog.helpers import call, create_user, setup_admin
from tests.catalog.test_jobs import _upload

from . import s3server


async def test_upload_convert_serve_delete_in_s3(aiohttp_client: ClientFactory, tmp_path: Path,
                                                 database_url: str, testdata: Path,
                                                 s3: s3server.S3Server,
                                                 s3_env: dict[str, str]) -> None:
    s3.create_bucket("catalog")
    url = "s3://catalog/microtome/images"
    settings = make_settings(tmp_path, database_url, job_workers=1,
                             storage=StorageSettings(url=url, deadline_s=5.0))
    client: TestClient = await aiohttp_client(make_app(settings, tiles=True),
                                              cookie_jar=DummyCookieJar())
    admin = await setup_admin(client)
    alice = await create_user(client, admin, "alice")
    _, project = await call(client, alice, "POST", "/api/projects", {"name": "S3"}, expect=201)
    _, key = await call(client, alice, "POST", "/api/api-keys", {"name": "up"}, expect=201)
    upload_id = await _upload(client, key["key"], testdata / "CMU-1-Small-Region.svs",
                              project["id"])
    _, state = await call(client, alice, "GET", f"/api/uploads/{upload_id}", expect=200)
    job_id, image_id = state["job_id"], state["image_id"]
    deadline = time.monotonic() + 120
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _, job = await call(client, alice, "GET", f"/api/jobs/{job_id}", expect=200)
        if job["status"] in ("done", "failed"):
            break
        await asyncio.sleep(0.2)
    assert job["status"] == "done", job
    # The pyramid is in the bucket, not on the local disk.
    store = open_store(f"{url}/{image_id}/image.ome.zarr")
    keys = set(store.list())
    assert "zarr.json" in keys and "0/zarr.json" in keys
    images_dir = client.app[CATALOG].settings.images_dir
    assert not (images_dir / str(image_id) / "image.ome.zarr").exists()
    # Tiles from S3 equal the tiles of a local conversion of the same file.
    local = tmp_path / "local" / "cmu.ome.zarr"
    convert(testdata / "CMU-1-Small-Region.svs", local)
    from microtome.tileserver.app import TileSettings, create_tiles_app

    ref_client = await aiohttp_client(create_tiles_app(local.parent, TileSettings(threads=2)))
    cookie = {"Cookie": f"microtome_session={alice.cookie}"}
    for path in ("12/0_0.jpg", "12/3_5.jpg", "11/1_1.jpg", "9/0_0.png"):
        ours = await client.get(f"/dzi/{image_id}_files/{path}", headers=cookie)
        ref = await ref_client.get(f"/dzi/cmu_files/{path}")
        assert (ours.status, ref.status) == (200, 200)
        assert await ours.read() == await ref.read(), path
    # Deleting the image moves it to the trash (its objects stay, restorable);
    # purging it removes its objects.
    await call(client, alice, "DELETE", f"/api/images/{image_id}", expect=204)
    assert list(open_store(f"{url}/{image_id}").list())
    _, trash = await call(client, alice, "GET", "/api/trash", expect=200)
    item = next(t for t in trash["items"] if t["kind"] == "image")
    await call(client, alice, "DELETE", f"/api/trash/{item['id']}", expect=204)
    assert list(open_store(f"{url}/{image_id}").list()) == []
