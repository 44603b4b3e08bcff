"""Pixels through the client against a live server, compared with the sources."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import openslide
import pytest
from microtome_client import BadRequest, NotFound

from tests.client.conftest import fluo16, unique

SVS = "CMU-1-Small-Region.svs"


def _openslide(path: Path, x: int, y: int, w: int, h: int) -> np.ndarray:
    with openslide.OpenSlide(str(path)) as slide:
        return np.asarray(slide.read_region((x, y), 0, (w, h)))[..., :3]


def test_rgb_region_matches_openslide(client: Any, ready_images: dict[str, int],
                                      testdata: Path) -> None:
    image = client.image(ready_images[SVS])
    meta = image.metadata
    assert (meta.width, meta.height, meta.kind) == (2220, 2967, "rgb")
    # Not aligned to tiles and several tiles wide: stitched from parallel requests.
    x, y, w, h = 301, 517, 1100, 700
    got = image.region(x, y, w, h)
    assert got.shape == (h, w, 3) and got.dtype == np.uint8
    ref = _openslide(testdata / SVS, x, y, w, h).astype(np.float64)
    assert np.abs(got.astype(np.float64) - ref).mean() < 4.0
    # Lossless rendering agrees with the JPEG pass-through.
    png = image.region(x, y, 300, 200, format="png")
    assert np.abs(png.astype(int) - got[:200, :300].astype(int)).mean() < 2.0


def test_scale_and_level(client: Any, ready_images: dict[str, int]) -> None:
    image = client.image(ready_images[SVS])
    meta = image.metadata
    assert len(meta.levels) >= 2
    full = image.region(0, 0, 1024, 1024)
    half = image.region(0, 0, 1024, 1024, scale=0.5)
    assert half.shape == (512, 512, 3)
    level1 = image.region(0, 0, 1024, 1024, level=1)
    assert level1.shape == (512, 512, 3)
    shrunk = full.reshape(512, 2, 512, 2, 3).mean(axis=(1, 3))
    assert np.abs(half.astype(float) - shrunk).mean() < 6.0
    quarter = image.region(0, 0, 1000, 1000, scale=0.3)
    assert quarter.shape == (300, 300, 3)


def test_multichannel_uint16_region_keeps_its_dtype(client: Any, ready_images: dict[str, int],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import microtome_client.pixels as pixels

    src = fluo16()
    image = client.image(ready_images["fluo16.tif"])
    meta = image.metadata
    assert meta.kind == "nd" and meta.dtype == "uint16" and meta.size_c == 3
    got = image.region(0, 0, 1100, 900)
    assert got.dtype == np.uint16 and np.array_equal(got, src)
    # Stitched from stored-tile-sized raw blocks, with a channel subset.
    monkeypatch.setattr(pixels, "RAW_BLOCK", 1)
    part = image.region(130, 250, 700, 600, channels=[2, 0])
    assert np.array_equal(part, src[250:850, 130:830][..., [2, 0]])
    # A reduced level is the stored level, still uint16.
    low = image.region(0, 0, 1100, 900, level=1)
    assert low.dtype == np.uint16 and low.shape[:2] == (450, 550)


def test_region_outside_the_image_is_the_servers_400(client: Any,
                                                     ready_images: dict[str, int]) -> None:
    image = client.image(ready_images[SVS])
    with pytest.raises(BadRequest) as exc:
        image.region(2000, 2900, 500, 500)
    assert exc.value.status == 400 and "outside" in exc.value.error
    assert exc.value.detail == {"width": 2220, "height": 2967}


def test_thumbnail_and_tiles(client: Any, ready_images: dict[str, int]) -> None:
    image = client.image(ready_images[SVS])
    thumb = image.thumbnail(200)
    assert max(thumb.shape[:2]) == 200 and thumb.shape[2] == 3
    meta = image.metadata
    top = len(meta.levels) - 1
    seen = list(image.tiles(top))
    lv = meta.levels[top]
    assert sum(a.shape[0] * a.shape[1] for _, a in seen) == lv.width * lv.height
    whole = image.region(0, 0, meta.width, meta.height, level=top)
    for (x, y, w, h), arr in seen:
        assert np.array_equal(arr, whole[y:y + h, x:x + w])


def test_download_original(client: Any, live_server: Any, ready_images: dict[str, int],
                           testdata: Path, tmp_path: Path) -> None:
    # Uploaded files are not kept (the server says so); imported ones are.
    with pytest.raises(NotFound, match="not kept"):
        client.image(ready_images[SVS]).download_original(tmp_path)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "sample.jpg").symlink_to(testdata / "sample.jpg")
    project = unique("imported")
    run = subprocess.run([sys.executable, "-m", "microtome", "import", str(folder),
                          "--project", project, "--quiet"], env=live_server.env,
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    (image,) = list(client.project(project).images())
    out = image.download_original(tmp_path / "copy.jpg")
    assert out.read_bytes() == (testdata / "sample.jpg").read_bytes()
    assert not list(tmp_path.glob("*.part"))


def test_raw_route_checks_access_like_the_tile_routes(live_server: Any,
                                                      ready_images: dict[str, int]) -> None:
    import httpx

    iid = ready_images["fluo16.tif"]
    region = f"{live_server.url}/images/{iid}/region.npy?x=0&y=0&w=8&h=8"
    meta = f"{live_server.url}/images/{iid}/metadata"
    anon = [httpx.get(u, timeout=30) for u in (region, meta)]
    assert anon[0].status_code == anon[1].status_code >= 400
    assert anon[0].json()["error"]
    auth = {"Authorization": f"Bearer {live_server.api_key}"}
    assert httpx.get(region, headers=auth, timeout=30).status_code == 200
