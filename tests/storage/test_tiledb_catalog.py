"""MICROTOME_STORE_FORMAT=tiledb: the catalog's conversions (uploads through the API)
write TileDB images, on the local disk and in S3, and tiles come back from them with
the pixels of the OME-Zarr conversion."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient
from PIL import Image

from microtome.core.settings import (
    SettingsError,
    StorageSettings,
    StoreFormatSettings,
    store_format_from_env,
)
from microtome.pyramid import tiledbstore
from microtome.pyramid.stores import open_store
from tests.catalog.conftest import ClientFactory, make_app, make_settings
from tests.catalog.helpers import call, create_user, setup_admin
from tests.catalog.test_jobs import _upload

from . import s3server


def test_store_format_setting() -> None:
    assert store_format_from_env({}).format == "ome-zarr"
    assert store_format_from_env({"MICROTOME_STORE_FORMAT": "TileDB"}).format == "tiledb"
    with pytest.raises(SettingsError, match="MICROTOME_STORE_FORMAT must be one of"):
        store_format_from_env({"MICROTOME_STORE_FORMAT": "n5"})


@pytest.fixture
def tiledb_s3(s3_env: dict[str, str]) -> Iterator[None]:
    """TileDB's S3 client pointed at the session's server, as `serve` does at start-up."""
    from microtome.core.remote import configure_remote_reads
    from microtome.core.settings import remote_read_settings_from_env

    configure_remote_reads(remote_read_settings_from_env(s3_env))
    try:
        yield
    finally:
        tiledbstore.configure(None)


@pytest.mark.parametrize("where", ["local", "s3"])
async def test_upload_converts_to_tiledb_and_serves_tiles(
        where: str, request: pytest.FixtureRequest, aiohttp_client: ClientFactory,
        tmp_path: Path, database_url: str, testdata: Path, cmu_pyramid: Path) -> None:
    storage = None
    url = ""
    if where == "s3":
        s3: s3server.S3Server = request.getfixturevalue("s3")
        request.getfixturevalue("tiledb_s3")
        s3.create_bucket("tdbcatalog")
        url = "s3://tdbcatalog/images"
        storage = StorageSettings(url=url, deadline_s=5.0)
    settings = make_settings(tmp_path, database_url, job_workers=1, storage=storage,
                             store_format=StoreFormatSettings("tiledb"))
    client: TestClient = await aiohttp_client(make_app(settings, tiles=True),
                                              cookie_jar=DummyCookieJar())
    admin = await setup_admin(client)
    alice = await create_user(client, admin, "alice")
    _, project = await call(client, alice, "POST", "/api/projects", {"name": "T"}, expect=201)
    _, key = await call(client, alice, "POST", "/api/api-keys", {"name": "up"}, expect=201)
    upload_id = await _upload(client, key["key"], testdata / "CMU-1-Small-Region.svs",
                              project["id"])
    _, state = await call(client, alice, "GET", f"/api/uploads/{upload_id}", expect=200)
    job_id, image_id = state["job_id"], state["image_id"]
    deadline = time.monotonic() + 180
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _, job = await call(client, alice, "GET", f"/api/jobs/{job_id}", expect=200)
        if job["status"] in ("done", "failed"):
            break
        await asyncio.sleep(0.2)
    assert job["status"] == "done", job
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT storage_path FROM images WHERE id = $1",
                                   image_id) == f"{image_id}/image.tdb"
    finally:
        await conn.close()
    image_dir = settings.images_dir / str(image_id)
    assert not (image_dir / "image.ome.zarr").exists()
    if where == "s3":
        keys = set(open_store(f"{url}/{image_id}/image.tdb").list())
        assert "microtome.json" in keys and any(k.startswith("l_0.tdb/") for k in keys)
        assert not (image_dir / "image.tdb").exists()
    else:
        assert (image_dir / "image.tdb" / "microtome.json").is_file()
    # Tiles: PNG (decoded pixels) equal those of the local OME-Zarr conversion of the
    # same file; JPEG tiles are re-encoded from the same pixels.
    from microtome.tileserver.app import TileSettings, create_tiles_app

    ref = await aiohttp_client(create_tiles_app(cmu_pyramid.parent, TileSettings(threads=2)))
    cookie = {"Cookie": f"microtome_session={alice.cookie}"}
    for path in ("12/3_5.png", "11/1_1.png", "9/0_0.png"):
        ours = await client.get(f"/dzi/{image_id}_files/{path}", headers=cookie)
        theirs = await ref.get(f"/dzi/{cmu_pyramid.name.removesuffix('.ome.zarr')}_files/{path}")
        assert (ours.status, theirs.status) == (200, 200), path
        a = np.asarray(Image.open(io.BytesIO(await ours.read())))
        b = np.asarray(Image.open(io.BytesIO(await theirs.read())))
        assert a.shape == b.shape and np.array_equal(a, b), path
    r = await client.get(f"/dzi/{image_id}_files/12/0_0.jpg", headers=cookie)
    assert r.status == 200 and r.content_type == "image/jpeg"
    assert Image.open(io.BytesIO(await r.read())).size == (256, 256)
    if where == "s3":  # purging the image removes its TileDB objects
        await call(client, alice, "DELETE", f"/api/images/{image_id}", expect=204)
        _, trash = await call(client, alice, "GET", "/api/trash", expect=200)
        item = next(t for t in trash["items"] if t["kind"] == "image")
        await call(client, alice, "DELETE", f"/api/trash/{item['id']}", expect=204)
        assert list(open_store(f"{url}/{image_id}").list()) == []
