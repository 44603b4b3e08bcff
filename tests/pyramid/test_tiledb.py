"""Pyramids stored as TileDB arrays (pyramid/tiledbstore.py): converted by the CLI
with ``--format tiledb``, opened by the one reader interface, served by the tile
server with exactly the pixels of the OME-Zarr conversion."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from aiohttp.test_utils import TestClient

from microtome.converters.convert import convert
from microtome.pyramid.reader import open_pyramid
from microtome.pyramid.tiledbstore import TileDBPyramid
from microtome.tileserver.tilemath import dzi_max_level

NAME = "CMU-1-Small-Region"


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory, testdata: Path) -> tuple[Path, Path]:
    """The CMU slide as OME-Zarr (library) and as TileDB (the CLI), in two folders."""
    zarr_root = tmp_path_factory.mktemp("zarr")
    convert(testdata / f"{NAME}.svs", zarr_root / f"{NAME}.ome.zarr")
    tdb_root = tmp_path_factory.mktemp("tdb")
    proc = subprocess.run([sys.executable, "-m", "microtome", "convert",
                           str(testdata / f"{NAME}.svs"), "-o", str(tdb_root), "--format",
                           "tiledb", "--json"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)[0]
    assert row["ok"] and row["path"] == str(tdb_root / f"{NAME}.tdb"), row
    # Only the TileDB image is left: no OME-Zarr scratch, no partial folder.
    assert sorted(p.name for p in tdb_root.iterdir()) == [f"{NAME}.tdb"]
    return zarr_root, tdb_root


def test_tiledb_image_opens_with_the_same_pixels(roots: tuple[Path, Path]) -> None:
    zarr_root, tdb_root = roots
    a = open_pyramid(zarr_root / f"{NAME}.ome.zarr")
    b = open_pyramid(tdb_root / f"{NAME}.tdb")
    assert isinstance(b, TileDBPyramid) and not b.direct
    assert dataclasses.replace(b.meta, version="") == dataclasses.replace(a.meta, version="")
    # TileDB's bio-imaging layout: a group with one dense array per level.
    assert (tdb_root / f"{NAME}.tdb" / "__tiledb_group.tdb").exists()
    assert (tdb_root / f"{NAME}.tdb" / "l_0.tdb" / "__schema").is_dir()
    for level, lv in enumerate(a.meta.levels):
        assert np.array_equal(a.read_region(level, 0, 0, lv.width, lv.height),
                              b.read_region(level, 0, 0, lv.width, lv.height)), level
    assert np.array_equal(a.read_region(0, 301, 977, 517, 263),
                          b.read_region(0, 301, 977, 517, 263))
    with pytest.raises(ValueError):
        b.read_region(0, 2000, 0, 500, 10)


@pytest.fixture
async def clients(aiohttp_client,  # type: ignore[no-untyped-def]
                  roots: tuple[Path, Path]) -> tuple[TestClient, TestClient]:
    from microtome.tileserver.app import TileSettings, create_tiles_app

    zarr_root, tdb_root = roots
    settings = TileSettings(threads=2)
    return (await aiohttp_client(create_tiles_app(zarr_root, settings)),
            await aiohttp_client(create_tiles_app(tdb_root, settings)))


async def test_tiles_from_tiledb_equal_the_ome_zarr_tiles(
        clients: tuple[TestClient, TestClient]) -> None:
    zarr, tdb = clients
    top = dzi_max_level(2220, 2967)
    lossless = [f"/dzi/{NAME}_files/{lv}/0_0.png" for lv in range(top + 1)]
    lossless += [f"/dzi/{NAME}_files/{top}/{c}_{r}.png" for c, r in ((3, 4), (8, 11), (5, 0))]
    lossless += [f"/iiif/3/{NAME}/100,200,700,500/350,/0/default.png",
                 f"/iiif/3/{NAME}/full/300,/0/gray.png",
                 f"/images/{NAME}/associated/label.png"]
    for path in lossless:
        a, b = await zarr.get(path), await tdb.get(path)
        assert (a.status, b.status) == (200, 200), (path, await b.text())
        assert await a.read() == await b.read(), path
    # JPEG tiles: OME-Zarr passes its stored chunk through, TileDB re-encodes the
    # same pixels; both decode to (nearly) the same picture.
    for path in (f"/dzi/{NAME}_files/{top}/2_3.jpg", f"/dzi/{NAME}_files/{top - 2}/0_0.jpg"):
        a, b = await zarr.get(path), await tdb.get(path)
        assert (a.status, b.status) == (200, 200), path
        pa = imagecodecs.jpeg8_decode(await a.read()).astype(int)
        pb = imagecodecs.jpeg8_decode(await b.read()).astype(int)
        assert pa.shape == pb.shape and np.abs(pa - pb).mean() < 3.0, path
    info_a = await (await zarr.get(f"/iiif/3/{NAME}/info.json")).json(content_type=None)
    info_b = await (await tdb.get(f"/iiif/3/{NAME}/info.json")).json(content_type=None)
    assert (info_b["width"], info_b["height"]) == (info_a["width"], info_a["height"])
    meta_a = await (await zarr.get(f"/images/{NAME}/metadata")).json()
    meta_b = await (await tdb.get(f"/images/{NAME}/metadata")).json()
    assert meta_b["original"] == meta_a["original"] is not None


def test_existing_output_is_refused_without_overwrite(roots: tuple[Path, Path],
                                                      testdata: Path) -> None:
    _, tdb_root = roots
    before = sorted(p.name for p in tdb_root.iterdir())
    proc = subprocess.run([sys.executable, "-m", "microtome", "convert",
                           str(testdata / f"{NAME}.svs"), "-o", str(tdb_root), "--format",
                           "tiledb"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "already exists" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tdb_root.iterdir()) == before


async def test_damaged_tiledb_image_is_a_clear_error(  # type: ignore[no-untyped-def]
        aiohttp_client, roots: tuple[Path, Path], tmp_path: Path) -> None:
    """A level array gone, or a malformed document: a JSON error naming the damage,
    never a 500 or a hang."""
    from microtome.tileserver.app import TileSettings, create_tiles_app

    _, tdb_root = roots
    shutil.copytree(tdb_root / f"{NAME}.tdb", tmp_path / "lost.tdb")
    shutil.rmtree(tmp_path / "lost.tdb" / "l_0.tdb")
    shutil.copytree(tdb_root / f"{NAME}.tdb", tmp_path / "bad.tdb")
    (tmp_path / "bad.tdb" / "microtome.json").write_text('{"format": "tiledb", "shapes": 3}')
    client = await aiohttp_client(create_tiles_app(tmp_path, TileSettings(threads=2)))
    top = dzi_max_level(2220, 2967)
    r = await client.get(f"/dzi/lost_files/{top}/0_0.png")
    assert r.status == 422, await r.text()
    assert "damaged" in (await r.json())["error"] or "unreadable" in (await r.json())["error"]
    r = await client.get("/iiif/3/bad/info.json")
    assert r.status == 422, await r.text()
    assert "malformed" in (await r.json())["error"]
    r = await client.get("/dzi/nothere_files/0/0_0.png")
    assert r.status == 404


def test_without_tiledb_installed_the_cli_refuses_before_converting(tmp_path: Path,
                                                                     testdata: Path) -> None:
    code = ("import sys; sys.modules['tiledb'] = None; from microtome.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "convert", str(testdata / "sample.jpg"),
                           "-o", str(tmp_path), "--format", "tiledb"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'microtome[tiledb]'" in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []
