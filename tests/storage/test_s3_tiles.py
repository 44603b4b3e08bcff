"""Images straight in S3 (a real moto server): convert into it, serve tiles from it,
same pixels as the local conversion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from microtome.converters.convert import convert
from microtome.pyramid.stores import REMOTE, open_store
from microtome.tileserver.tilemath import dzi_max_level

from . import s3server

BUCKET = "slides"


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory, testdata: Path,
              s3: s3server.S3Server) -> tuple[Path, str]:
    """The CMU slide converted once to a local folder and once by the CLI into S3."""
    local = tmp_path_factory.mktemp("local")
    convert(testdata / "CMU-1-Small-Region.svs", local / "cmu.ome.zarr")
    s3.create_bucket(BUCKET)
    url = f"s3://{BUCKET}/converted"
    proc = subprocess.run([sys.executable, "-m", "microtome", "convert",
                           str(testdata / "CMU-1-Small-Region.svs"), "-o", f"{url}/cmu.ome.zarr"],
                          env=_env(s3), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return local, url


def _env(s3: s3server.S3Server) -> dict[str, str]:
    import os

    return {**os.environ, **s3.env}


@pytest.fixture
async def clients(aiohttp_client, converted: tuple[Path, str],  # type: ignore[no-untyped-def]
                  s3_env: dict[str, str]) -> tuple[TestClient, TestClient]:
    from microtome.tileserver.app import TileSettings, create_tiles_app

    local, url = converted
    settings = TileSettings(threads=2)
    return (await aiohttp_client(create_tiles_app(local, settings)),
            await aiohttp_client(create_tiles_app(url, settings)))


async def test_tiles_from_s3_equal_the_local_conversion(
        clients: tuple[TestClient, TestClient]) -> None:
    local, remote = clients
    info = await (await remote.get("/iiif/3/cmu/info.json")).json(content_type=None)
    assert (info["width"], info["height"]) == (2220, 2967)
    top = dzi_max_level(2220, 2967)
    paths = [f"/dzi/cmu_files/{top}/{c}_{r}.jpg" for r in range(12) for c in range(9)]
    paths += [f"/dzi/cmu_files/{top - 1}/{c}_{r}.jpg" for r in range(6) for c in range(5)]
    paths += [f"/dzi/cmu_files/{lv}/0_0.png" for lv in range(top - 4)]
    paths += ["/iiif/3/cmu/100,200,700,500/350,/0/default.jpg",       # unaligned, resampled
              "/iiif/3/cmu/full/300,/0/gray.png", "/images/cmu/thumbnail.jpg?size=200",
              "/images/cmu/associated/label.png"]
    before = REMOTE.snapshot().gets
    for path in paths[:108]:  # every full-resolution tile, row by row: pass-through
        a, b = await local.get(path), await remote.get(path)
        assert (a.status, b.status) == (200, 200), path
        assert await a.read() == await b.read(), path
    # One GET per band of 4 shard rows (pyramid/readahead.py; the 12 x 9 chunks are one
    # shard, each band well under MAX_SPAN) plus the shard index, not one per tile.
    gets = REMOTE.snapshot().gets - before
    assert gets == 12 // 4 + 1, gets
    for path in paths[108:]:
        a, b = await local.get(path), await remote.get(path)
        assert (a.status, b.status) == (200, 200), path
        assert await a.read() == await b.read(), path
    meta_local = await (await local.get("/images/cmu/metadata")).json()
    meta_remote = await (await remote.get("/images/cmu/metadata")).json()
    assert meta_remote["original"] == meta_local["original"] is not None
    assert meta_remote["levels"] == meta_local["levels"]
    r = await remote.get("/dzi/nothere_files/0/0_0.jpg")
    assert r.status == 404


def test_concurrent_readers_of_a_band_share_its_gets(converted: tuple[Path, str],
                                                      s3_env: dict[str, str]) -> None:
    """16 threads asking at once for 16 chunks of one band of a freshly opened image:
    one GET for the shard index, one for the band (not one per thread)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from microtome.pyramid.reader import open_pyramid

    local, url = converted
    pyr = open_pyramid(f"{url}/cmu.ome.zarr")
    want = [(r, c) for r in range(4) for c in range(9)][:16]
    barrier = threading.Barrier(len(want))

    def read(rc: tuple[int, int]) -> bytes | None:
        barrier.wait()
        return pyr.chunk_bytes(0, *rc)

    before = REMOTE.snapshot().gets
    with ThreadPoolExecutor(len(want)) as pool:
        got = list(pool.map(read, want))
    assert REMOTE.snapshot().gets - before == 2
    ref = open_pyramid(local / "cmu.ome.zarr")
    assert got == [ref.chunk_bytes(0, *rc) for rc in want]


def test_every_object_uploaded_and_no_silent_replace(converted: tuple[Path, str],
                                                    s3_env: dict[str, str],
                                                    testdata: Path) -> None:
    """Every object of the local conversion is in the store, and replacing an image
    without --overwrite is refused."""
    local, url = converted
    store = open_store(f"{url}/cmu.ome.zarr")
    local_keys = {p.relative_to(local / "cmu.ome.zarr").as_posix()
                  for p in (local / "cmu.ome.zarr").rglob("*") if p.is_file()}
    assert set(store.list()) == local_keys
    proc = subprocess.run([sys.executable, "-m", "microtome", "convert",
                           str(testdata / "sample.jpg"),
                           "-o", f"{url}/cmu.ome.zarr"],
                          env=s3_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "already exists" in proc.stderr


def test_publish_order_root_document_last(tmp_path: Path, s3: s3server.S3Server,
                                          s3_env: dict[str, str], testdata: Path) -> None:
    """A reader polling during the upload sees no image until every object is there."""
    from microtome.converters import publish as pub

    convert(testdata / "boxes.tiff", tmp_path / "b.ome.zarr")
    s3.create_bucket("order")
    order: list[str] = []
    store = open_store("s3://order/x/b.ome.zarr")
    real_put = type(store).put_file

    def spy(self, key, path):  # type: ignore[no-untyped-def]
        order.append(key)
        real_put(self, key, path)

    type(store).put_file = spy  # type: ignore[method-assign]
    try:
        pub.publish(tmp_path / "b.ome.zarr", "s3://order/x/b.ome.zarr")
    finally:
        type(store).put_file = real_put  # type: ignore[method-assign]
    assert order[-1] == "zarr.json" and order.count("zarr.json") == 1
    assert len(order) == len([p for p in (tmp_path / "b.ome.zarr").rglob("*") if p.is_file()])


def test_unknown_scheme_is_refused_and_writes_nothing(tmp_path: Path, testdata: Path) -> None:
    for cmd in (["convert", str(testdata / "sample.jpg"), "-o", "gs://bucket/x"],
                ["tiles", "--root", "gs://bucket/x", "--port", str(s3server.free_port())]):
        proc = subprocess.run([sys.executable, "-m", "microtome", *cmd], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert "unsupported storage URL scheme 'gs'" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no local folder named "gs:"


async def test_ngff_04_image_in_s3_reads_through_zarr(  # type: ignore[no-untyped-def]
        aiohttp_client, tmp_path: Path, s3: s3server.S3Server,
        s3_env: dict[str, str], testdata: Path) -> None:
    """An image not in our sharded layout (NGFF 0.4, zarr v2) is read through zarr's
    own object-store adapter: same pixels as from the local copy."""
    from microtome.converters.convert import ConvertOptions
    from microtome.converters.publish import publish
    from microtome.tileserver.app import TileSettings, create_tiles_app

    local = tmp_path / "v2" / "cmu.ome.zarr"
    convert(testdata / "CMU-1-Small-Region.svs", local, ConvertOptions(ngff="0.4"))
    s3.create_bucket("v2images")
    publish(local, "s3://v2images/x/cmu.ome.zarr")
    a = await aiohttp_client(create_tiles_app(local.parent, TileSettings(threads=2)))
    b = await aiohttp_client(create_tiles_app("s3://v2images/x", TileSettings(threads=2)))
    for path in ("/dzi/cmu_files/12/1_1.png", "/iiif/3/cmu/full/200,/0/default.png"):
        ra, rb = await a.get(path), await b.get(path)
        assert (ra.status, rb.status) == (200, 200), (path, await rb.text())
        assert await ra.read() == await rb.read()


async def test_expired_image_entry_is_looked_up_once_for_concurrent_requests(
        converted: tuple[Path, str], s3_env: dict[str, str]) -> None:
    """When the resolver's entry of an image expires under load, the requests in flight
    share one lookup (one HEAD of the group document), not one each."""
    import asyncio
    import time

    from microtome.tileserver.resolver import FolderResolver

    class Counting(FolderResolver):
        lookups = 0

        def _lookup(self, parts: list[str]):  # type: ignore[no-untyped-def]
            Counting.lookups += 1
            time.sleep(0.05)  # a slow store: the others arrive while this one runs
            return super()._lookup(parts)

    _, url = converted
    resolver = Counting(url, ttl=0.2)
    first = await resolver.resolve(None, "cmu")  # type: ignore[arg-type]
    await asyncio.sleep(0.3)  # expired
    refs = await asyncio.gather(*(resolver.resolve(None, "cmu")  # type: ignore[arg-type]
                                  for _ in range(16)))
    assert Counting.lookups == 2
    assert {r.version for r in refs} == {first.version}
