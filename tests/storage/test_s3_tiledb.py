"""A TileDB image converted straight into S3 (``convert --format tiledb -o s3://...``)
is served from there with the pixels of the local OME-Zarr conversion."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from microtome.converters.convert import convert
from microtome.pyramid import tiledbstore
from microtome.pyramid.stores import open_store
from microtome.tileserver.tilemath import dzi_max_level

from . import s3server


@pytest.fixture
def tiledb_s3(s3_env: dict[str, str]) -> Iterator[None]:
    """TileDB's S3 client pointed at the session's server, as `tiles`/`serve` do."""
    from microtome.core.remote import configure_remote_reads
    from microtome.core.settings import remote_read_settings_from_env

    configure_remote_reads(remote_read_settings_from_env(s3_env))
    try:
        yield
    finally:
        tiledbstore.configure(None)


@pytest.fixture
def mc_in_s3(tmp_path: Path, s3: s3server.S3Server, s3_env: dict[str, str],
             testdata: Path) -> Path:
    """A 3-channel, 5-plane fluorescence image (the TCZYX layout): converted locally to
    OME-Zarr (returned) and by the CLI as TileDB into s3://tdbimages/x/mc.tdb."""
    src = testdata / "multi-channel-z-series.ome.tif"
    local = tmp_path / "mc.ome.zarr"
    convert(src, local)
    s3.create_bucket("tdbimages")
    proc = subprocess.run([sys.executable, "-m", "microtome", "convert", str(src), "--format",
                           "tiledb", "-o", "s3://tdbimages/x/mc.tdb"], env=s3_env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return local


async def test_tiledb_image_in_s3_serves_the_ome_zarr_pixels(  # type: ignore[no-untyped-def]
        aiohttp_client, tmp_path: Path, mc_in_s3: Path, tiledb_s3: None) -> None:
    from microtome.pyramid.reader import open_pyramid
    from microtome.tileserver.app import TileSettings, create_tiles_app

    local = mc_in_s3
    keys = set(open_store("s3://tdbimages/x/mc.tdb").list())
    assert "microtome.json" in keys and "__tiledb_group.tdb" in keys
    assert any(k.startswith("l_0.tdb/__schema/") for k in keys)
    a, b = open_pyramid(local), open_pyramid("s3://tdbimages/x/mc.tdb")
    assert isinstance(b, tiledbstore.TileDBPyramid)
    for level, lv in enumerate(a.meta.levels):
        for z in range(a.meta.size_z):
            assert np.array_equal(a.read_region(level, 0, 0, lv.width, lv.height, z=z),
                                  b.read_region(level, 0, 0, lv.width, lv.height, z=z))
    assert np.array_equal(a.read_region(0, 10, 20, 300, 100, z=3, channels=[2, 0]),
                          b.read_region(0, 10, 20, 300, 100, z=3, channels=[2, 0]))
    ca = await aiohttp_client(create_tiles_app(tmp_path, TileSettings(threads=2)))
    cb = await aiohttp_client(create_tiles_app("s3://tdbimages/x", TileSettings(threads=2)))
    top = dzi_max_level(a.meta.width, a.meta.height)
    for path in (f"/dzi/mc_files/{top}/0_0.png", f"/dzi/mc_files/{top}/1_0.png",
                 "/iiif/3/mc/full/200,/0/default.png"):
        ra, rb = await ca.get(path), await cb.get(path)
        assert (ra.status, rb.status) == (200, 200), (path, await rb.text())
        assert await ra.read() == await rb.read(), path
    r = await cb.get("/dzi/other_files/0/0_0.png")
    assert r.status == 404
