"""MinIsWhite grey TIFFs: stored values kept, shown as the file means them."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
from aiohttp.test_utils import TestClient
from PIL import Image

from microtome.converters import ConvertOptions, convert
from microtome.pyramid.reader import open_pyramid
from microtome.tileserver.app import TileSettings, create_tiles_app

from .conftest import read_level


def _sources(root: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    grey = rng.integers(0, 256, size=(90, 130), dtype=np.uint8)
    grey[0, 0], grey[0, 1] = 0, 255  # full range: the default window is 0..255
    bits = rng.integers(0, 2, size=(70, 101)).astype(bool)
    tifffile.imwrite(root / "grey.tif", grey, photometric="miniswhite", rowsperstrip=16)
    tifffile.imwrite(root / "bits.tif", bits, rowsperstrip=16)  # tifffile: MinIsWhite
    return {"grey": grey, "bits": bits.astype(np.uint8)}


@pytest.fixture
def converted(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    src, out = tmp_path / "src", tmp_path / "images"
    src.mkdir()
    out.mkdir()
    stored = _sources(src)
    for name in stored:
        with tifffile.TiffFile(src / f"{name}.tif") as tif:
            assert tif.pages.first.photometric == 0
        convert(src / f"{name}.tif", out / f"{name}.ome.zarr", ConvertOptions())
    return src, stored


async def test_miniswhite_renders_like_pillow(aiohttp_client, tmp_path: Path,  # type: ignore[no-untyped-def]
                                              converted: tuple[Path, dict[str, np.ndarray]]
                                              ) -> None:
    src, stored = converted
    client: TestClient = await aiohttp_client(
        create_tiles_app(tmp_path / "images", TileSettings(threads=2)))
    for name, values in stored.items():
        out = tmp_path / "images" / f"{name}.ome.zarr"
        want = np.asarray(Image.open(src / f"{name}.tif").convert("L"))
        r = await client.get(f"/iiif/3/{name}/full/max/0/default.png")
        assert r.status == 200
        got = imagecodecs.png_decode(await r.read())
        assert got.shape == (*want.shape, 3)
        for c in range(3):
            assert np.abs(got[..., c].astype(int) - want).max() <= 1, name
        # Stored values are the file's own; the omero block says how to show them.
        assert np.array_equal(read_level(out, 0)[0, 0, 0], values)
        assert [ch.inverted for ch in open_pyramid(out).meta.channels] == [True]
        meta = await (await client.get(f"/images/{name}/metadata")).json()
        assert meta["channels"][0]["inverted"] is True


def test_minisblack_is_not_inverted(tmp_path: Path) -> None:
    img = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    tifffile.imwrite(tmp_path / "b.tif", img, photometric="minisblack")
    convert(tmp_path / "b.tif", tmp_path / "b.ome.zarr", ConvertOptions())
    assert [ch.inverted for ch in open_pyramid(tmp_path / "b.ome.zarr").meta.channels] == [False]
