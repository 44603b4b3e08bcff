"""/images/{id}/region.npy|tif: stored values in their dtype, limits, bad input."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile
from aiohttp.test_utils import TestClient

from microtome.pyramid.layout import ImageMeta
from microtome.tileserver.app import TileSettings, create_tiles_app


async def _npy(client: TestClient, query: str, name: str = "fluo") -> np.ndarray:  # type: ignore[type-arg]
    resp = await client.get(f"/images/{name}/region.npy?{query}")
    assert resp.status == 200, await resp.text()
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    return np.load(io.BytesIO(await resp.read()), allow_pickle=False)


async def test_nd_region_planes_channels_levels(
        client: TestClient, nd_image: tuple[np.ndarray, ImageMeta]) -> None:  # type: ignore[type-arg]
    data, _ = nd_image  # (t, c, z, y, x) uint16
    got = await _npy(client, "x=10&y=20&w=130&h=90")
    # Defaults: every channel (not only the active ones), t=0, the middle z plane.
    assert got.dtype == np.uint16 and got.shape == (90, 130, 3)
    assert np.array_equal(got, data[0, :, 1, 20:110, 10:140].transpose(1, 2, 0))
    got = await _npy(client, "x=0&y=0&w=200&h=150&t=1&z=2&channels=2,0")
    assert np.array_equal(got, data[1, [2, 0], 2].transpose(1, 2, 0))
    # Level 1 covers the level-0 region: columns x//2 .. ceil((x+w)/2).
    low = await _npy(client, "x=3&y=0&w=100&h=150&level=1")
    assert low.shape == (75, 52 - 1, 3) and low.dtype == np.uint16  # 1 .. 52


async def test_rgb_region_and_tiff(client: TestClient,  # type: ignore[type-arg]
                                   rgb_image: tuple[np.ndarray, ImageMeta]) -> None:
    img, _ = rgb_image
    got = await _npy(client, "x=250&y=240&w=300&h=40", "slide")
    assert got.shape == (40, 300, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - img[240:280, 250:550]).mean() < 3  # JPEG-stored
    resp = await client.get("/images/slide/region.tif?x=0&y=0&w=64&h=32")
    assert resp.status == 200 and resp.headers["Content-Type"] == "image/tiff"
    assert np.array_equal(tifffile.imread(io.BytesIO(await resp.read())),
                          await _npy(client, "x=0&y=0&w=64&h=32", "slide"))


async def test_bad_requests_are_json_400s(client: TestClient,  # type: ignore[type-arg]
                                          nd_image: tuple[np.ndarray, ImageMeta]) -> None:
    cases = ["x=0&y=0&w=201&h=10", "x=190&y=0&w=20&h=10", "y=0&w=10&h=10", "x=-1&y=0&w=5&h=5",
             "x=0&y=0&w=0&h=5", "x=0&y=0&w=5&h=5&level=9", "x=0&y=0&w=5&h=5&channels=7",
             "x=0&y=0&w=5&h=5&z=3", "x=0&y=0&w=5&h=5&t=x", "x=1e3&y=0&w=5&h=5",
             "x=0&y=0&w=99999999999999999&h=5"]
    for q in cases:
        resp = await client.get(f"/images/fluo/region.npy?{q}")
        body = await resp.json()
        assert resp.status == 400 and body["error"], (q, resp.status, body)
    resp = await client.get("/images/fluo/region.png?x=0&y=0&w=5&h=5")
    assert resp.status == 400
    outside = await (await client.get("/images/fluo/region.npy?x=0&y=100&w=10&h=51")).json()
    assert outside == {"error": "region outside the image",
                       "detail": {"width": 200, "height": 150}}
    assert (await client.get("/images/nope/region.npy?x=0&y=0&w=1&h=1")).status == 404


async def test_too_large_is_413(aiohttp_client: Callable, tiles_root: Path,  # type: ignore[type-arg]
                                nd_image: tuple[np.ndarray, ImageMeta]) -> None:
    settings = TileSettings(threads=2, max_area=100 * 100, resolver_ttl=0.0)
    client = await aiohttp_client(create_tiles_app(tiles_root, settings))
    resp = await client.get("/images/fluo/region.npy?x=0&y=0&w=101&h=100")
    body = await resp.json()
    assert resp.status == 413 and body["detail"]["max_area"] == 10000
    # The same region at level 1 is a quarter of the pixels: allowed.
    assert (await client.get("/images/fluo/region.npy?x=0&y=0&w=101&h=100&level=1")).status \
        == 200


async def test_no_blocking_calls_on_the_event_loop(
        client: TestClient, rgb_image: tuple, nd_image: tuple) -> None:  # type: ignore[type-arg]
    from blockbuster import blockbuster_ctx

    with blockbuster_ctx(["microtome"]):
        for url, status in [("/images/fluo/region.npy?x=0&y=0&w=200&h=150", 200),  # cold
                            ("/images/slide/region.tif?x=0&y=0&w=600&h=500&level=1", 200),
                            ("/images/slide/region.npy?x=0&y=0&w=1001&h=5", 400)]:
            r = await client.get(url)
            assert r.status == status, (url, r.status, await r.text())
