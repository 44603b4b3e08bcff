"""GET /api/images/{id}/export: the portable OME-Zarr as a zip, read back by stock
zarr, pixels compared with the source (tifffile) and with what we store."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import asyncpg
import numpy as np
import tifffile
from aiohttp.test_utils import TestClient

from microtome.catalog.images import register_image
from microtome.core.settings import Settings
from microtome.pyramid.reader import open_pyramid
from tests.catalog.helpers import Actor, call, create_user, setup_admin

SPEC_CODECS = {"bytes", "zstd", "blosc", "gzip", "sharding_indexed", "transpose", "crc32c"}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    err = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if err == 0 else 10 * float(np.log10(255.0**2 / err))


async def _register(database_url: str, project_id: int, relpath: str, status: str = "ready"
                    ) -> int:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        iid = await register_image(pool, name="gradient / scan", relpath=relpath, width=700,
                                   height=500, levels=3, project_id=project_id)
        await pool.execute("UPDATE images SET status = $2 WHERE id = $1", iid, status)
        return iid
    finally:
        await pool.close()


async def test_export_download_is_portable_and_matches_the_source(
        client: TestClient, settings: Settings, database_url: str, small_pyramid: Path,
        tmp_path: Path) -> None:
    admin = await setup_admin(client)
    _, p = await call(client, admin, "POST", "/api/projects", {"name": "P"}, expect=201)
    shutil.copytree(small_pyramid, settings.images_dir / "g" / "image.ome.zarr")
    iid = await _register(database_url, p["id"], "g/image.ome.zarr")

    resp = await client.get(f"/api/images/{iid}/export?format=ome-zarr&codec=zstd",
                            headers=admin.headers("GET"))
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "application/zip"
    assert 'filename="gradient___scan.ome.zarr.zip"' in resp.headers["Content-Disposition"]
    dst = tmp_path / "export.zip"
    dst.write_bytes(await resp.read())

    with zipfile.ZipFile(dst) as zf:
        names = zf.namelist()
        assert names[0] == "zarr.json"  # documents first, store root at the zip root
        for name in names:
            if name.endswith("zarr.json"):
                doc = json.loads(zf.read(name))
                stack = list(doc.get("codecs", []))
                while stack:
                    c = stack.pop()
                    assert c["name"] in SPEC_CODECS, (name, c)
                    stack += c.get("configuration", {}).get("codecs", [])
    # No scratch folder left beside the image.
    assert not list((settings.images_dir / str(iid)).glob("export-*"))

    import zarr

    store = zarr.storage.ZipStore(str(dst), mode="r")
    group = zarr.open_group(store, mode="r")
    assert sorted(group.keys()) == ["0", "1", "2"]
    level0 = np.asarray(group["0"][0, :, 0]).transpose(1, 2, 0)  # (t, c, z, y, x)
    source = tifffile.imread(small_pyramid.parent / "gradient.tif")
    assert level0.shape == source.shape == (500, 700, 3)
    assert _psnr(level0, source) >= 35  # the stored JPEG (q90) decoded, no second loss
    ours = open_pyramid(small_pyramid).read_region(0, 0, 0, 700, 500)
    assert np.array_equal(level0, ours)
    store.close()


async def test_export_access_and_bad_requests(client: TestClient, settings: Settings,
                                              database_url: str, small_pyramid: Path) -> None:
    admin = await setup_admin(client)
    _, p = await call(client, admin, "POST", "/api/projects", {"name": "P"}, expect=201)
    shutil.copytree(small_pyramid, settings.images_dir / "h" / "image.ome.zarr")
    iid = await _register(database_url, p["id"], "h/image.ome.zarr")
    pending = await _register(database_url, p["id"], "none/image.ome.zarr", "converting")
    eve = await create_user(client, admin, "eve")
    viewer = await create_user(client, admin, "vera")
    await call(client, admin, "PUT", f"/api/projects/{p['id']}/members/{viewer.user_id}",
               {"role": "viewer"}, expect=200)

    url = f"/api/images/{iid}/export"
    await call(client, Actor("anon"), "GET", url, expect=401)
    status, _ = await call(client, eve, "GET", url, validate=False)
    assert status in (403, 404)
    status, body = await call(client, admin, "GET", url + "?format=tiff", validate=False)
    assert status == 400 and "format" in body["error"]
    status, body = await call(client, admin, "GET", url + "?codec=lzma", validate=False)
    assert status == 400 and "codec" in body["error"]
    status, body = await call(client, admin, "GET", f"/api/images/{pending}/export",
                              validate=False)
    assert status == 409 and "not ready" in body["error"]
    # A viewer reads: the download works (gzip this time).
    resp = await client.get(url + "?codec=gzip", headers=viewer.headers("GET"))
    assert resp.status == 200
    data = await resp.read()
    assert data[:2] == b"PK" and b'"gzip"' in data
