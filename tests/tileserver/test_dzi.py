"""Deep Zoom through the real app: descriptor, every tile of every level, caching headers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import imagecodecs
import numpy as np
from aiohttp.test_utils import TestClient
from PIL import Image

from microtome.pyramid.reader import open_pyramid
from microtome.tileserver.tilemath import dzi_level_size, dzi_max_level


def block_mean(img: np.ndarray, d: int) -> np.ndarray:
    """Each output pixel = mean of its d x d source block (clipped at the edges)."""
    h, w = img.shape[:2]
    oh, ow = -(-h // d), -(-w // d)
    out = np.zeros((oh, ow, img.shape[2]))
    for j in range(oh):
        for i in range(ow):
            out[j, i] = img[j * d:(j + 1) * d, i * d:(i + 1) * d].reshape(-1, img.shape[2]).mean(0)
    return np.round(out).astype(np.uint8) if d > 1 else img


def _decode(body: bytes) -> np.ndarray:
    return np.asarray(imagecodecs.imread(body))


async def test_descriptor_xml_and_json(client: TestClient, rgb_image: tuple) -> None:
    r = await client.get("/dzi/slide.dzi")
    assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    root = ET.fromstring(await r.text())
    assert root.tag.endswith("Image")
    assert root.attrib["TileSize"] == "256" and root.attrib["Overlap"] == "0"
    size = root[0].attrib
    assert (size["Width"], size["Height"]) == ("1000", "700")
    r = await client.get("/dzi/slide.dzi?format=json")
    doc = (await r.json())["Image"]
    assert doc["Size"] == {"Width": "1000", "Height": "700"} and doc["TileSize"] == "256"
    assert doc["Url"].endswith("/dzi/slide_files/")


async def test_every_tile_of_every_level_matches_source(client: TestClient,
                                                        rgb_image: tuple) -> None:
    img, _meta = rgb_image
    max_level = dzi_max_level(1000, 700)
    assert max_level == 10
    for level in range(max_level + 1):
        lw, lh = dzi_level_size(1000, 700, level)
        scale = 1 << (max_level - level)
        if scale <= 4:  # stored levels: exact 2^k block means
            ref = block_mean(img, scale)
        else:  # below the stored pyramid: the image fitted to the level size
            ref = np.asarray(Image.fromarray(img).resize((lw, lh), Image.Resampling.BOX))
        assert ref.shape[:2] == (lh, lw)
        for row in range(-(-lh // 256)):
            for col in range(-(-lw // 256)):
                # JPEG 4:2:0 chroma averaging blurs the 1-pixel checkerboard of the small levels.
                fmt = "jpg" if scale <= 4 else "png"
                r = await client.get(f"/dzi/slide_files/{level}/{col}_{row}.{fmt}")
                assert r.status == 200, (level, col, row)
                tile = _decode(await r.read())
                expect = ref[row * 256:(row + 1) * 256, col * 256:(col + 1) * 256]
                assert tile.shape == expect.shape, (level, col, row)
                diff = np.abs(tile.astype(int) - expect).mean()
                assert diff < 6, (level, col, row, diff)
        # One past the edge is a 404, not a blank tile.
        r = await client.get(f"/dzi/slide_files/{level}/{-(-lw // 256)}_0.jpg")
        assert r.status == 404


async def test_interior_tiles_are_stored_chunks_sent_as_is(client: TestClient, rgb_image: tuple,
                                                           tiles_root: Path) -> None:
    pyr = open_pyramid(tiles_root / "slide.ome.zarr")
    for level, (col, row) in [(10, (0, 0)), (10, (2, 1)), (9, (0, 0))]:
        r = await client.get(f"/dzi/slide_files/{level}/{col}_{row}.jpg")
        assert await r.read() == pyr.chunk_bytes(10 - level, row, col)
    # Edge tiles are cropped, so they are re-encoded, never the padded chunk.
    r = await client.get("/dzi/slide_files/10/3_2.jpg")
    body = await r.read()
    assert body != pyr.chunk_bytes(0, 2, 3) and _decode(body).shape == (188, 232, 3)
    metrics = await (await client.get("/metrics")).text()
    assert 'microtome_tile_passthrough_total{' in metrics
    line = next(x for x in metrics.splitlines() if x.startswith("microtome_tile_passthrough_total"))
    assert float(line.rsplit(" ", 1)[1]) == 3


async def test_png_and_webp_tiles(client: TestClient, rgb_image: tuple) -> None:
    img, _ = rgb_image
    for fmt, ctype in (("png", "image/png"), ("webp", "image/webp"), ("jpeg", "image/jpeg")):
        r = await client.get(f"/dzi/slide_files/10/1_1.{fmt}")
        assert r.status == 200 and r.headers["Content-Type"] == ctype
        tile = _decode(await r.read())
        assert np.abs(tile.astype(int) - img[256:512, 256:512]).mean() < 6


async def test_etag_304_cache_control_head(client: TestClient, rgb_image: tuple) -> None:
    url = "/dzi/slide_files/10/1_1.jpg"
    r = await client.get(url)
    etag = r.headers["ETag"]
    assert etag.startswith('"') and "max-age" in r.headers["Cache-Control"]
    body = await r.read()
    r2 = await client.get(url, headers={"If-None-Match": etag})
    assert r2.status == 304 and await r2.read() == b""
    assert r2.headers["ETag"] == etag and r2.headers["Access-Control-Allow-Origin"] == "*"
    r3 = await client.get(url, headers={"If-None-Match": '"other"'})
    assert r3.status == 200 and await r3.read() == body
    r4 = await client.head(url)
    assert r4.status == 200 and r4.headers["ETag"] == etag
    assert int(r4.headers["Content-Length"]) == len(body)
    # Different tiles, different ETags.
    r5 = await client.get("/dzi/slide_files/10/0_1.jpg")
    assert r5.headers["ETag"] != etag


async def test_version_in_url_makes_tiles_immutable(client: TestClient, rgb_image: tuple,
                                                    tiles_root: Path) -> None:
    r = await client.get("/dzi/slide_files/10/0_0.jpg")
    assert "immutable" not in r.headers["Cache-Control"]
    st = (tiles_root / "slide.ome.zarr" / "zarr.json").stat()
    version = f"{st.st_ino:x}-{st.st_mtime_ns:x}"
    r = await client.get(f"/dzi/slide_files/10/0_0.jpg?v={version}")
    assert "immutable" in r.headers["Cache-Control"]


async def test_reconverted_image_gets_new_etag(client: TestClient, rgb_image: tuple,
                                               tiles_root: Path) -> None:
    from .conftest import build_rgb, gradient_rgb

    r = await client.get("/dzi/slide_files/10/0_0.jpg")
    etag = r.headers["ETag"]
    path = tiles_root / "slide.ome.zarr"
    new = tiles_root / "new.ome.zarr"
    build_rgb(new, 255 - gradient_rgb(700, 1000))
    import os
    import shutil
    shutil.rmtree(path)
    os.rename(new, path)  # what the converter does: atomic replace
    r = await client.get("/dzi/slide_files/10/0_0.jpg")
    assert r.status == 200 and r.headers["ETag"] != etag
    tile = _decode(await r.read())
    assert tile[0, 0, 0] > 200  # inverted content, not the cached old tile
