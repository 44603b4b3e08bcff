"""Server-side filters on tile/IIIF URLs against scikit-image references (tileserver/filters.py).

References are computed from the *stored* pixels (read back with the pyramid
reader), so JPEG loss does not blur the comparison.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import imagecodecs
import numpy as np
import pytest
from aiohttp.test_utils import TestClient
from skimage import color, data, filters

from microtome.pyramid.reader import open_pyramid
from microtome.tileserver import filterrender
from microtome.tileserver.filters import Filters, finish, point_ops

from .conftest import build_rgb


def _decode(body: bytes) -> np.ndarray:
    return np.asarray(imagecodecs.imread(body))


@pytest.fixture
def ihc(tiles_root: Path) -> np.ndarray:
    """scikit-image's IHC sample (haematoxylin + DAB) as slide 'ihc'; returns its stored level 0."""
    img = np.ascontiguousarray(data.immunohistochemistry()[:400, :480])
    root = tiles_root / "ihc.ome.zarr"
    build_rgb(root, img, tile=128, shard=256)
    pyr = open_pyramid(root)
    return pyr.read_region(0, 0, 0, 480, 400)


async def _pixels(client: TestClient, url: str) -> np.ndarray:
    r = await client.get(url)
    assert r.status == 200, (url, await r.text())
    return _decode(await r.read())


@pytest.mark.parametrize(("stain", "k"), [("H", 0), ("E", 1), ("DAB", 2), ("dab", 2)])
async def test_colour_deconvolution_matches_rgb2hed(client: TestClient, ihc: np.ndarray,
                                                    stain: str, k: int) -> None:
    got = await _pixels(client, f"/iiif/3/ihc/full/max/0/default.png?stain={stain}")
    hed = color.rgb2hed(ihc)
    only = np.zeros_like(hed)
    only[..., k] = hed[..., k]
    expect = color.hed2rgb(only) * 255
    assert got.shape == ihc.shape
    assert np.abs(got.astype(float) - expect).max() <= 1.0
    # The same on a Deep Zoom tile (128 px; level 0 is the full-size DZI level 9 here).
    tile = await _pixels(client, f"/dzi/ihc_files/9/1_1.png?stain={stain}")
    assert np.abs(tile.astype(float) - expect[128:256, 128:256]).max() <= 1.0


async def test_brightness_contrast_gamma_on_rgb(client: TestClient, ihc: np.ndarray) -> None:
    got = await _pixels(client, "/iiif/3/ihc/full/max/0/default.png"
                                "?brightness=0.1&contrast=1.5&gamma=0.5,1,2")
    v = np.clip((ihc / 255 - 0.5) * 1.5 + 0.5 + round(0.1 * 255) / 255, 0, 1)
    expect = v ** (1 / np.array([0.5, 1.0, 2.0])) * 255
    assert np.abs(got.astype(float) - expect).max() <= 1.0


async def test_threshold_value_and_otsu(client: TestClient, ihc: np.ndarray) -> None:
    grey = np.round(color.rgb2gray(ihc) * 255)
    got = await _pixels(client, "/iiif/3/ihc/full/max/0/default.png?threshold=150")
    assert set(np.unique(got)) <= {0, 255}
    assert (got[..., 0] == np.where(grey > 150, 255, 0)).mean() > 0.999
    # Otsu: one threshold for the whole image, from its overview level (here level 0).
    level = filters.threshold_otsu(grey.astype(np.uint8))
    got = await _pixels(client, "/dzi/ihc_files/9/1_0.png?threshold=otsu")
    expect = np.where(grey[0:128, 128:256] > level, 255, 0)
    assert (got[..., 0] == expect).mean() > 0.999
    # After deconvolution, Otsu sees the deconvolved image.
    h = await _pixels(client, "/iiif/3/ihc/full/max/0/default.png?stain=H")
    level_h = filters.threshold_otsu(np.round(color.rgb2gray(h) * 255).astype(np.uint8))
    got = await _pixels(client, "/iiif/3/ihc/full/max/0/default.png?stain=H&threshold=otsu")
    grey_h = np.round(color.rgb2gray(h) * 255)
    assert (got[..., 0] == np.where(grey_h > level_h, 255, 0)).mean() > 0.999


async def test_edge_matches_sobel_and_tiles_have_no_seams(client: TestClient,
                                                          ihc: np.ndarray) -> None:
    grey = np.round(color.rgb2gray(ihc) * 255) / 255
    expect = np.clip(filters.sobel(grey), 0, 1) * 255
    full = await _pixels(client, "/iiif/3/ihc/full/max/0/default.png?edge=sobel")
    assert np.abs(full[..., 0].astype(float) - expect).max() <= 1.0
    # Stitched Deep Zoom tiles (128 px) equal the whole-image render: no seams.
    stitched = np.zeros_like(full)
    for row in range(4):
        for col in range(4):
            tile = await _pixels(client, f"/dzi/ihc_files/9/{col}_{row}.png?edge=sobel")
            y, x = row * 128, col * 128
            stitched[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    assert np.abs(stitched.astype(int) - full.astype(int)).max() <= 1


async def test_filters_change_the_key_and_values_are_canonical(client: TestClient,
                                                               ihc: np.ndarray) -> None:
    async def etag(q: str) -> str:
        r = await client.get(f"/dzi/ihc_files/9/0_0.jpg{q}")
        assert r.status == 200
        return r.headers["ETag"]

    plain = await etag("")
    assert await etag("?brightness=0&contrast=1&gamma=1") == plain
    a = await etag("?brightness=0.1")
    assert a != plain and await etag("?brightness=0.1000001") == a
    assert await etag("?stain=dab") == await etag("?stain=DAB") != plain
    assert await etag("?edge=sobel") != await etag("?edge=sobel&threshold=otsu")


BAD = ["stain=X", "brightness=2", "brightness=abc", "contrast=-1", "contrast=nan",
       "threshold=256", "threshold=-3", "threshold=auto", "edge=canny", "gamma=0.01"]


@pytest.mark.parametrize("query", BAD)
async def test_bad_filter_values_are_400_on_every_image(client: TestClient, rgb_image: tuple,
                                                       nd_image: tuple, query: str) -> None:
    for url in ("/dzi/slide_files/10/0_0.jpg", "/dzi/fluo_files/8/0_0.jpg",
                "/iiif/3/slide/full/max/0/default.jpg", "/iiif/3/fluo/info.json",
                "/images/slide/thumbnail.jpg", "/dzi/slide.dzi"):
        r = await client.get(f"{url}?{query}")
        assert r.status == 400, (url, query)
        body = await r.json()
        assert body["detail"]["parameter"] == query.split("=")[0]


async def test_stain_is_refused_on_multichannel_but_others_apply(client: TestClient,
                                                                nd_image: tuple) -> None:
    r = await client.get("/dzi/fluo_files/8/0_0.png?stain=H")
    assert r.status == 400 and (await r.json())["detail"]["parameter"] == "stain"
    plain = await _pixels(client, "/dzi/fluo_files/8/0_0.png")
    binary = await _pixels(client, "/dzi/fluo_files/8/0_0.png?threshold=60")
    grey = np.round(color.rgb2gray(plain) * 255)
    assert (binary[..., 0] == np.where(grey > 60, 255, 0)).mean() > 0.999


async def test_iiif_info_carries_filters_for_rgb(client: TestClient, ihc: np.ndarray) -> None:
    doc = await (await client.get("/iiif/3/ihc/info.json?stain=H")).json()
    assert doc["id"].endswith("/iiif/3/ihc/stain=H")
    got = await _pixels(client, urlsplit(doc["id"]).path + "/full/max/0/default.png")
    plain = await (await client.get("/iiif/3/ihc/info.json?gamma=1")).json()
    assert plain["id"].endswith("/iiif/3/ihc")
    assert got.shape == ihc.shape


@pytest.mark.parametrize("filters", [Filters(stain="DAB", edge=True, threshold=100),
                                     Filters(contrast=1.5, gamma=(0.5, 1.0, 2.0)),
                                     Filters(edge=True)])
def test_big_renders_are_filtered_in_exact_bands(monkeypatch: pytest.MonkeyPatch,
                                                 filters: Filters) -> None:
    """Float work is bounded by bands of rows; the bands join without a trace."""
    rng = np.random.default_rng(3)
    px = rng.integers(0, 256, size=(301, 257, 3), dtype=np.uint8)
    m = 1 if filters.edge else 0
    whole = finish(point_ops(px, filters), filters, None, m)
    monkeypatch.setattr(filterrender, "BAND_PIXELS", 257 * 7)
    assert np.array_equal(filterrender._filter_bands(px, filters, None, m), whole)
