"""IIIF Image API: parameter parsing (pure) and responses through the real app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from microtome.pyramid.errors import InvalidRequest, NotImplementedFeature
from microtome.pyramid.reader import open_pyramid
from microtome.tileserver.iiif_params import Limits, parse_region, parse_rotation, parse_size

LIM = Limits(8192, 8192, 4096 * 4096)


def _decode(body: bytes) -> np.ndarray:
    return np.asarray(imagecodecs.imread(body))


# -- pure parsing ------------------------------------------------------------

@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(0, 6000), st.integers(0, 6000),
       st.integers(1, 6000), st.integers(1, 6000))
def test_pixel_region_is_cropped_inside_or_rejected(width: int, height: int, x: int, y: int,
                                                    w: int, h: int) -> None:
    try:
        rx, ry, rw, rh = parse_region(f"{x},{y},{w},{h}", width, height)
    except InvalidRequest:
        assert x >= width or y >= height
        return
    assert (rx, ry) == (x, y) and 0 < rw <= w and 0 < rh <= h
    assert rx + rw <= width and ry + rh <= height


@given(st.integers(1, 3000), st.integers(1, 3000), st.integers(1, 3000))
def test_width_only_size_keeps_aspect_and_refuses_upscaling(rw: int, rh: int, w: int) -> None:
    try:
        ow, oh = parse_size(f"{w},", rw, rh, "3", LIM)
    except InvalidRequest:
        assert w > rw or round(rh * w / rw) > LIM.max_height or w * max(1, round(rh * w / rw)) \
            > LIM.max_area
        return
    assert ow == w and oh >= 1 and abs(oh - rh * w / rw) <= 1


def test_size_forms() -> None:
    assert parse_size("max", 1000, 500, "3", LIM) == (1000, 500)
    assert parse_size("pct:50", 1000, 500, "3", LIM) == (500, 250)
    assert parse_size("!200,200", 1000, 500, "3", LIM) == (200, 100)
    assert parse_size(",100", 1000, 500, "3", LIM) == (200, 100)
    assert parse_size("300,100", 1000, 500, "3", LIM) == (300, 100)
    assert parse_size("^2000,", 1000, 500, "3", LIM) == (2000, 1000)
    assert parse_size("^pct:150", 1000, 500, "3", LIM) == (1500, 750)
    assert parse_size("full", 1000, 500, "2", LIM) == (1000, 500)
    assert parse_size("2000,", 1000, 500, "2", LIM) == (2000, 1000)  # 2.1 upscales freely
    # max is capped to the limits, keeping the aspect ratio.
    assert parse_size("max", 20000, 10000, "3", LIM) == (5792, 2896)
    for bad in ("full", "2000,", "pct:101", "0,", ",0", "0,0", "pct:0", "^", "!0,5", "-5,",
                "1.5,", "abc", "max,", "^max^", "10,10,", "!2000,2000", "^99999,"):
        with pytest.raises(InvalidRequest):
            parse_size(bad, 1000, 500, "3", LIM)
    with pytest.raises(InvalidRequest):
        parse_size("^2000,", 1000, 500, "2", LIM)


def test_region_forms() -> None:
    assert parse_region("full", 1000, 500) == (0, 0, 1000, 500)
    assert parse_region("square", 1000, 500) == (250, 0, 500, 500)
    assert parse_region("pct:10,10,50,50", 1000, 500) == (100, 50, 500, 250)
    assert parse_region("900,400,500,500", 1000, 500) == (900, 400, 100, 100)
    for bad in ("1000,0,10,10", "0,500,10,10", "0,0,0,10", "0,0,10,0", "pct:0,0,0,10",
                "pct:101,0,10,10", "-1,0,10,10", "1,2,3", "pct:a,b,c,d", "",
                "99999999999999,0,1,1"):
        with pytest.raises(InvalidRequest):
            parse_region(bad, 1000, 500)


def test_rotation_forms() -> None:
    assert parse_rotation("0") == (False, 0)
    assert parse_rotation("!90") == (True, 90)
    assert parse_rotation("360") == (False, 0)
    assert parse_rotation("180.0") == (False, 180)
    for bad in ("-90", "361", "abc", "!", "90!", "1e2"):
        with pytest.raises(InvalidRequest):
            parse_rotation(bad)
    for unsupported in ("45", "22.5", "!1"):
        with pytest.raises(NotImplementedFeature):
            parse_rotation(unsupported)


# -- through the app -----------------------------------------------------------

async def test_info_json(client: TestClient, rgb_image: tuple) -> None:
    r = await client.get("/iiif/3/slide/info.json")
    assert r.status == 200
    assert r.headers["Content-Type"] == \
        'application/ld+json;profile="http://iiif.io/api/image/3/context.json"'
    assert r.headers["Access-Control-Allow-Origin"] == "*" and "Accept" in r.headers["Vary"]
    info = await r.json(content_type=None)
    assert info["id"] == f"http://{client.host}:{client.port}/iiif/3/slide"
    assert info["type"] == "ImageService3" and info["profile"] == "level2"
    assert (info["width"], info["height"]) == (1000, 700)
    assert info["tiles"] == [{"width": 256, "height": 256, "scaleFactors": [1, 2, 4]}]
    assert {"width": 250, "height": 175} in info["sizes"]
    assert info["extraFormats"] == ["webp"] and info["maxArea"] == 4096 * 4096
    r = await client.get("/iiif/3/slide/info.json", headers={"Accept": "application/json"})
    assert r.headers["Content-Type"].startswith("application/json")
    r = await client.get("/iiif/2/slide/info.json")
    info2 = await r.json()
    assert info2["@id"].endswith("/iiif/2/slide")
    assert info2["profile"][0] == "http://iiif.io/api/image/2/level2.json"


async def test_base_uri_redirects(client: TestClient, rgb_image: tuple) -> None:
    r = await client.get("/iiif/3/slide", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"].endswith("/iiif/3/slide/info.json")
    assert r.headers["Access-Control-Allow-Origin"] == "*"


async def test_regions_sizes_rotations_match_source(client: TestClient, rgb_image: tuple) -> None:
    img, _ = rgb_image
    cases = [
        ("100,50,300,200", "max", "0", img[50:250, 100:400]),
        ("100,50,300,200", "150,", "0", img[50:250:2, 100:400:2]),
        ("full", "500,", "0", img[::2, ::2]),
        ("full", "pct:25", "0", img[::4, ::4]),
        ("900,600,500,500", "max", "0", img[600:, 900:]),
        ("100,50,300,200", "max", "90", np.rot90(img[50:250, 100:400], -1)),
        ("100,50,300,200", "max", "180", img[50:250, 100:400][::-1, ::-1]),
        ("100,50,300,200", "max", "!0", img[50:250, 100:400][:, ::-1]),
        ("100,50,300,200", "max", "!270", np.rot90(img[50:250, 100:400][:, ::-1], 1)),
    ]
    for region, size, rot, expect in cases:
        r = await client.get(f"/iiif/3/slide/{region}/{size}/{rot}/default.png")
        assert r.status == 200, (region, size, rot)
        got = _decode(await r.read())
        assert got.shape == expect.shape, (region, size, rot)
        assert np.abs(got.astype(int) - expect).mean() < 5, (region, size, rot)


async def test_qualities(client: TestClient, rgb_image: tuple) -> None:
    r = await client.get("/iiif/3/slide/0,0,200,200/max/0/gray.png")
    gray = _decode(await r.read())
    assert gray.ndim == 2 and gray.shape == (200, 200)
    r = await client.get("/iiif/3/slide/0,0,200,200/max/0/bitonal.png")
    bit = _decode(await r.read())
    assert set(np.unique(bit)) <= {0, 255}
    r = await client.get("/iiif/3/slide/0,0,200,200/max/0/color.webp")
    assert r.headers["Content-Type"] == "image/webp" and _decode(await r.read()).shape[2] == 3


async def test_aligned_tile_is_passed_through(client: TestClient, rgb_image: tuple,
                                              tiles_root: Path) -> None:
    pyr = open_pyramid(tiles_root / "slide.ome.zarr")
    # scale factor 2: region 512x512 at (0, 0) → level 1 chunk (0, 0)
    r = await client.get("/iiif/3/slide/0,0,512,512/256,256/0/default.jpg")
    assert await r.read() == pyr.chunk_bytes(1, 0, 0)
    r = await client.get("/iiif/3/slide/256,256,256,256/256,256/0/default.jpg")
    assert await r.read() == pyr.chunk_bytes(0, 1, 1)
    # The level-1 chunk at column 1 is partial (level width 500): rendered, cropped.
    r = await client.get("/iiif/3/slide/512,0,512,512/244,256/0/default.jpg")
    assert r.status == 200 and _decode(await r.read()).shape == (256, 244, 3)
    r = await client.get("/iiif/2/slide/0,0,256,256/256,/0/default.jpg")
    assert await r.read() == pyr.chunk_bytes(0, 0, 0)
    link = r.headers["Link"]
    assert 'rel="canonical"' in link and "/iiif/2/slide/0,0,256,256/full/0/default.jpg" in link
    assert 'rel="profile"' in link


async def test_canonical_link_and_etag(client: TestClient, rgb_image: tuple) -> None:
    r = await client.get("/iiif/3/slide/pct:0,0,100,100/max/360/default.jpg")
    assert r.status == 200
    assert "/iiif/3/slide/full/max/0/default.jpg>" in r.headers["Link"]
    etag = r.headers["ETag"]
    r2 = await client.get("/iiif/3/slide/full/max/0/default.jpg", headers={"If-None-Match": etag})
    assert r2.status == 304  # same canonical request, same ETag
    r = await client.get("/iiif/3/slide/0,0,1000,700/500,/0/default.jpg")
    assert "/iiif/3/slide/full/500,350/0/default.jpg>" in r.headers["Link"]
    r2 = await client.get("/iiif/2/slide/full/500,/0/default.jpg")
    assert "/iiif/2/slide/full/500,/0/default.jpg>" in r2.headers["Link"]
    assert r2.headers["ETag"] == r.headers["ETag"]  # same pixels through 2.1 and 3.0


async def test_preflight_and_head(client: TestClient, rgb_image: tuple) -> None:
    r = await client.options("/iiif/3/slide/full/max/0/default.jpg",
                             headers={"Origin": "http://x.org",
                                      "Access-Control-Request-Method": "GET"})
    assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in r.headers["Access-Control-Allow-Methods"]
    r = await client.head("/iiif/3/slide/info.json")
    assert r.status == 200 and await r.read() == b""


async def test_ids_follow_the_reverse_proxy(aiohttp_client: Any, tiles_root: Path,
                                            rgb_image: tuple) -> None:
    """Behind a trusted proxy (MICROTOME_TRUSTED_PROXIES) the URLs point through it;
    test_forwarded.py shows that nobody else's headers are believed."""
    from microtome.tileserver.app import TileSettings, create_tiles_app

    client = await aiohttp_client(create_tiles_app(tiles_root, TileSettings(threads=2),
                                                   ("127.0.0.0/8", "::1")))
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "tiles.example.org"}
    info = await (await client.get("/iiif/3/slide/info.json", headers=headers)).json(
        content_type=None)
    assert info["id"] == "https://tiles.example.org/iiif/3/slide"
    doc = await (await client.get("/dzi/slide.dzi?format=json", headers=headers)).json()
    assert doc["Image"]["Url"] == "https://tiles.example.org/dzi/slide_files/"
    bad = {"X-Forwarded-Proto": "javascript", "X-Forwarded-Host": "evil.org/path"}
    info = await (await client.get("/iiif/3/slide/info.json", headers=bad)).json(
        content_type=None)
    assert info["id"] == f"http://{client.host}:{client.port}/iiif/3/slide"


async def test_credentialed_requests_are_privately_cached(client: TestClient,
                                                          rgb_image: tuple) -> None:
    r = await client.get("/dzi/slide_files/10/0_0.jpg")
    assert r.headers["Cache-Control"].startswith("public")
    r = await client.get("/dzi/slide_files/10/0_0.jpg", headers={"Cookie": "session=x"})
    assert r.headers["Cache-Control"].startswith("private")


def test_passthrough_is_decided_without_io(rgb_image: tuple, tiles_root: Path) -> None:
    from microtome.tileserver.iiif_params import parse_request
    from microtome.tileserver.produce import chunk_for
    from microtome.tileserver.tilemath import dzi_tile
    from microtome.tileserver.tilerequest import TileRequest

    pyr = open_pyramid(tiles_root / "slide.ome.zarr")

    def req(region: str, size: str, rot: str = "0", tail: str = "default.jpg") -> TileRequest:
        return parse_request(region, size, rot, tail, pyr.meta, "3", LIM)

    assert chunk_for(pyr, req("0,0,512,512", "256,256")) == (1, 0, 0)
    assert chunk_for(pyr, req("256,256,256,256", "256,256")) == (0, 1, 1)
    assert chunk_for(pyr, dzi_tile(pyr.meta, 9, 0, 0)) == (1, 0, 0)  # the same chunk via DZI
    assert chunk_for(pyr, dzi_tile(pyr.meta, 9, 0, 0, "png")) is None
    for r in (req("0,0,512,512", "256,256", "90"), req("0,0,512,512", "256,256", "!0"),
              req("0,0,512,512", "256,256", tail="gray.jpg"),
              req("0,0,512,512", "256,256", tail="default.png"),
              req("1,0,256,256", "256,256"), req("0,0,300,300", "256,256"),
              req("768,512,232,188", "232,188")):  # edge chunk: padded, must be cropped
        assert chunk_for(pyr, r) is None
