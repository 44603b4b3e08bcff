"""`microtome tiles --root DIR` over OME-Zarr that other tools wrote.

ome-zarr's own writer (NGFF 0.4 on zarr v2, 0.5 on zarr v3) with the axes
people actually use (c/y/x RGB, t/c/z/y/x uint16, y/x grey, float), plus
zarr stores that are not images at all.  Images are served with the right
pixels; everything else is a clean 4xx JSON error, never a 500.
"""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import zarr
from aiohttp.test_utils import TestClient
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.io import parse_url
from ome_zarr.writer import write_image
from yarl import URL

from microtome.tileserver.app import TileSettings, create_tiles_app

YY, XX = np.mgrid[0:600, 0:800]
RGB_CYX = np.stack([XX % 256, YY % 256, (XX + YY) % 256]).astype(np.uint8)
TCZYX = (np.arange(2 * 2 * 3 * 200 * 300) % 4000).astype(np.uint16).reshape(2, 2, 3, 200, 300)


def _write(root: Path, name: str, data: np.ndarray, axes: str, ngff: str) -> None:
    fmt = FormatV04() if ngff == "0.4" else FormatV05()
    store = parse_url(str(root / f"{name}.ome.zarr"), mode="w", fmt=fmt).store
    group = zarr.open_group(store, mode="w", zarr_format=2 if ngff == "0.4" else 3)
    write_image(data, group, axes=axes, fmt=fmt)


@pytest.fixture(scope="module")
def foreign_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("foreign-zarr")
    for ngff in ("0.4", "0.5"):
        v = ngff.replace(".", "")
        _write(root, f"rgb{v}", RGB_CYX, "cyx", ngff)
        _write(root, f"tczyx{v}", TCZYX, "tczyx", ngff)
        _write(root, f"grey{v}", RGB_CYX[0], "yx", ngff)
        _write(root, f"float{v}", (RGB_CYX[1] / 255).astype(np.float32), "yx", ngff)
    # Not images: plain arrays, a group without multiscales, junk metadata.
    zarr.save_array(str(root / "plain3.ome.zarr"), RGB_CYX, zarr_format=3)
    zarr.save_array(str(root / "plain2.ome.zarr"), RGB_CYX, zarr_format=2)
    group = zarr.open_group(str(root / "group.ome.zarr"), mode="w")
    group.create_array("0", data=RGB_CYX[0])
    (root / "junk.ome.zarr").mkdir()
    (root / "junk.ome.zarr" / "zarr.json").write_text('{"attributes": {"ome": {"multiscales": 7}}')
    (root / "empty.ome.zarr").mkdir()
    bad_axes = root / "badaxes.ome.zarr"
    _write(root, "badaxes", RGB_CYX, "cyx", "0.5")
    doc = (bad_axes / "zarr.json").read_text().replace('"name": "x"', '"name": "q"')
    (bad_axes / "zarr.json").write_text(doc)
    return root


@pytest.fixture
async def client(aiohttp_client, foreign_root: Path) -> TestClient:  # type: ignore[no-untyped-def]
    return await aiohttp_client(create_tiles_app(foreign_root, TileSettings(threads=2)))


async def _png(client: TestClient, url: str) -> np.ndarray:
    r = await client.get(URL(url, encoded=True))
    body = await r.read()
    assert r.status == 200, (url, r.status, body[:200])
    return imagecodecs.png_decode(body)


@pytest.mark.parametrize("v", ["04", "05"])
async def test_rgb_written_by_ome_zarr_is_served(client: TestClient, v: str) -> None:
    got = await _png(client, f"/iiif/3/rgb{v}/full/max/0/default.png")
    assert np.array_equal(got, RGB_CYX.transpose(1, 2, 0))
    r = await client.get(f"/dzi/rgb{v}_files/10/1_1.jpg")
    assert r.status == 200 and (await r.read())[:2] == b"\xff\xd8"


@pytest.mark.parametrize("v", ["04", "05"])
async def test_5d_uint16_written_by_ome_zarr_is_served(client: TestClient, v: str) -> None:
    meta = await (await client.get(f"/images/tczyx{v}/metadata")).json()
    assert (meta["width"], meta["height"]) == (300, 200)
    # One channel, full window, white: the PNG is the plane scaled to 8 bits.
    got = await _png(client, f"/iiif/3/tczyx{v}/full/max/0/default.png"
                             f"?t=1&z=2&channels=1&windows=0:4000&colors=FFFFFF")
    want = np.clip(TCZYX[1, 1, 2].astype(np.float32) / 4000, 0, 1) * 255 + 0.5
    assert np.abs(got[..., 0].astype(int) - want.astype(np.uint8)).max() <= 1
    r = await client.get(f"/dzi/tczyx{v}.dzi?t=5")
    assert r.status == 400  # t out of range for a 2-timepoint image


@pytest.mark.parametrize("name", ["grey04", "grey05", "float04", "float05"])
async def test_single_plane_written_by_ome_zarr_is_served(client: TestClient, name: str) -> None:
    q = "?windows=0:255" if name.startswith("grey") else "?windows=0:1"
    got = await _png(client, f"/iiif/3/{name}/0,0,256,256/max/0/default.png{q}")
    plane = RGB_CYX[0] if name.startswith("grey") else RGB_CYX[1]
    assert np.abs(got[..., 0].astype(int) - plane[:256, :256]).max() <= 1
    r = await client.get(f"/images/{name}/thumbnail.jpg?size=64")
    assert r.status == 200


@pytest.mark.parametrize("name", ["plain3", "plain2", "group", "junk", "empty", "badaxes"])
async def test_zarr_that_is_not_an_image_is_a_clean_4xx(client: TestClient, name: str) -> None:
    for url in (f"/iiif/3/{name}/info.json", f"/dzi/{name}.dzi", f"/dzi/{name}_files/0/0_0.jpg",
                f"/images/{name}/metadata", f"/images/{name}/thumbnail.png",
                f"/iiif/2/{name}/full/full/0/default.jpg"):
        r = await client.get(url)
        body = await r.read()
        assert 400 <= r.status < 500, (url, r.status, body[:200])
        assert r.headers["Content-Type"].startswith("application/json"), url
        assert b"/tmp" not in body
        if name in ("plain3", "plain2", "group"):
            # Readable zarr, just not an image: say so (422 Unprocessable), not "malformed".
            assert r.status == 422, (url, r.status)
            assert (await r.json())["error"].startswith("not an OME-Zarr image"), url
    r = await client.get("/iiif/3/rgb05/info.json")
    assert r.status == 200


def test_zarr_v2_group_without_multiscales_is_not_an_image(tmp_path: Path) -> None:
    from microtome.pyramid.errors import Unprocessable
    from microtome.pyramid.reader import open_pyramid

    group = zarr.open_group(str(tmp_path / "g2"), mode="w", zarr_format=2)
    group.create_array("0", data=RGB_CYX[0])
    with pytest.raises(Unprocessable, match="not an OME-Zarr image"):
        open_pyramid(tmp_path / "g2")
    (tmp_path / "g2" / ".zattrs").unlink(missing_ok=True)
    with pytest.raises(Unprocessable, match="not an OME-Zarr image"):
        open_pyramid(tmp_path / "g2")
