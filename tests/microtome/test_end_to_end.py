"""The first end-to-end slice, through real processes and the real app.

`microtome convert` and `microtome import` run as subprocesses (the CLI a lab
uses), the catalog is a real PostgreSQL, and DZI tiles requested over HTTP
from the whole application are compared with the source read by openslide.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import imagecodecs
import numpy as np
import openslide
from aiohttp.test_utils import TestClient

from microtome.app import create_app
from microtome.core.settings import from_env

SVS = "CMU-1-Small-Region.svs"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "microtome", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


async def resp_json(client: TestClient, path: str) -> dict[str, object]:
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


def _source_region(path: Path, x: int, y: int, w: int, h: int, down: int = 1) -> np.ndarray:
    """Level-0 pixels of the source, area-averaged by `down` (what a pyramid level holds)."""
    with openslide.OpenSlide(str(path)) as slide:
        rgba = np.asarray(slide.read_region((x * down, y * down), 0, (w * down, h * down)))
    rgb = rgba[..., :3].astype(np.float64)
    if down > 1:
        rgb = rgb.reshape(h, down, w, down, 3).mean(axis=(1, 3))
    return rgb


def test_convert_cli_writes_a_pyramid(tmp_path: Path, testdata: Path) -> None:
    out = tmp_path / "out"
    result = _cli("convert", str(testdata / SVS), "-o", str(out))
    assert result.returncode == 0, result.stderr
    image = out / "CMU-1-Small-Region.ome.zarr"
    assert (image / "zarr.json").exists()
    assert not list(out.glob("*.partial"))
    info = _cli("info", str(testdata / SVS), "--json")
    assert info.returncode == 0 and '"width": 2220' in info.stdout.replace(": ", ": ")


async def test_import_then_serve_dzi_matches_source(
        tmp_path: Path, testdata: Path, database_url: str, aiohttp_client: object) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / SVS).symlink_to(testdata / SVS)
    env = {"DATABASE_URL": database_url, "MICROTOME_VAR": str(tmp_path / "var")}
    imported = _cli("import", str(folder), "--project", "Samples", "--quiet", env=env)
    assert imported.returncode == 0, imported.stdout + imported.stderr

    settings = from_env(var_dir=tmp_path / "var", database_url=database_url, job_workers=0)
    client: TestClient = await aiohttp_client(create_app(settings))  # type: ignore[operator]
    resp = await client.post("/api/setup", json={"username": "admin",
                                                  "password": "a long enough password"})
    assert resp.status in (200, 201), await resp.text()
    images = await (await client.get("/api/images")).json()
    (image,) = [i for i in images["items"] if i["name"] == SVS]
    assert image["status"] == "ready" and image["width"] == 2220 and image["height"] == 2967

    dzi = await client.get(f"/dzi/{image['id']}.dzi")
    assert dzi.status == 200
    text = await dzi.text()
    assert 'TileSize="256"' in text and 'Overlap="0"' in text
    assert 'Width="2220"' in text and 'Height="2967"' in text

    # DZI level 12 is full resolution (2^12 >= 2967); level 10 is 4x smaller.
    for level, down, col, row in ((12, 1, 3, 5), (12, 1, 8, 11), (10, 4, 1, 1)):
        resp = await client.get(f"/dzi/{image['id']}_files/{level}/{col}_{row}.jpg")
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"] == "image/jpeg"
        tile = imagecodecs.jpeg8_decode(await resp.read()).astype(np.float64)
        w0, h0 = -(-2220 // down), -(-2967 // down)
        w, h = min(256, w0 - col * 256), min(256, h0 - row * 256)
        assert tile.shape == (h, w, 3)
        ref = _source_region(testdata / SVS, col * 256, row * 256, w, h, down)
        mae = np.abs(tile - ref).mean()
        assert mae < 4.0, f"level {level} tile {col},{row}: mean abs error {mae:.2f}"
        if (col, row) == (3, 5):
            assert tile.std() > 5  # real tissue there, not a blank tile

    # A signed URL works in a third-party viewer without our cookie, and its
    # responses must not be kept by shared caches (the token may be revoked).
    csrf = (await resp_json(client, "/api/session"))["csrf_token"]
    signed = await client.post(f"/api/images/{image['id']}/signed-url", json={},
                               headers={"X-CSRF-Token": csrf})
    assert signed.status == 200, await signed.text()
    iiif = (await signed.json())["iiif"]

    # Without a session, the private image is not served ...
    client.session.cookie_jar.clear()
    info = await client.get(iiif)
    assert info.status == 200
    assert info.headers["Cache-Control"].startswith("private")
    # ... except through the signed URL above.
    denied = await client.get(f"/dzi/{image['id']}.dzi")
    assert denied.status in (401, 403, 404)
    assert "error" in await denied.json()
