"""The optional local disk cache of remote chunks (pyramid/diskcache.py): cold reads
fill it, later reads come from it without S3 requests, and it still serves tiles
with the S3 server killed; bounded, atomic, shared by processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from microtome.converters.convert import convert
from microtome.converters.publish import publish
from microtome.pyramid import diskcache, stores
from microtome.pyramid.readahead import RAW
from microtome.pyramid.reader import DECODED
from microtome.tileserver.tilemath import dzi_max_level

from . import s3server

TOP = dzi_max_level(2220, 2967)
PATHS = [f"/dzi/cmu_files/{TOP}/{c}_{r}.jpg" for r in range(4) for c in range(9)]


@pytest.fixture
def own_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[s3server.S3Server]:
    """A server of this test alone (the test kills it)."""
    server = s3server.start()
    for k, v in server.env.items():
        monkeypatch.setenv(k, v)
    stores.configure(2.0)
    try:
        yield server
    finally:
        stores.configure(10.0)
        server.stop()


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[diskcache.DiskChunkCache]:
    cache = diskcache.configure(tmp_path / "chunks", 64 * 1024**2)
    assert cache is not None
    try:
        yield cache
    finally:
        diskcache.configure(None, 0)


def _forget_memory() -> None:
    """Empty the in-memory chunk caches (what a restart or memory pressure does)."""
    for cache in (RAW, DECODED):
        size = cache.max_bytes
        cache.resize(0)
        cache.resize(size)


async def test_cold_then_disk_then_served_with_s3_killed(  # type: ignore[no-untyped-def]
        aiohttp_client, tmp_path: Path, testdata: Path, own_s3: s3server.S3Server,
        disk: diskcache.DiskChunkCache) -> None:
    from microtome.tileserver.app import TileSettings, create_tiles_app

    local = tmp_path / "local" / "cmu.ome.zarr"
    convert(testdata / "CMU-1-Small-Region.svs", local)
    own_s3.create_bucket("cached")
    publish(local, "s3://cached/img/cmu.ome.zarr")
    ref = await aiohttp_client(create_tiles_app(local.parent, TileSettings(threads=2)))
    # The encoded-tile cache off: every tile reads its chunk.
    client: TestClient = await aiohttp_client(create_tiles_app(
        "s3://cached/img", TileSettings(threads=2, cache_bytes=0)))
    expected = {p: await (await ref.get(p)).read() for p in PATHS}

    async def all_tiles() -> None:
        for p in PATHS:
            r = await client.get(p)
            assert r.status == 200, (p, await r.text())
            assert await r.read() == expected[p], p

    _forget_memory()
    g0 = stores.REMOTE.snapshot().gets
    await all_tiles()  # cold: from S3, written to disk
    assert stores.REMOTE.snapshot().gets > g0
    assert disk.nbytes() > 0
    _forget_memory()
    g1 = stores.REMOTE.snapshot().gets
    await all_tiles()  # from the disk cache: no S3 request at all
    assert stores.REMOTE.snapshot().gets == g1
    assert disk.hits >= len(PATHS)
    own_s3.stop()
    _forget_memory()
    await all_tiles()  # S3 gone: still served, from disk


def test_entries_are_bounded_checked_and_evicted_oldest_first(tmp_path: Path) -> None:
    cache = diskcache.DiskChunkCache(tmp_path, 100_000)
    keys = [cache.key("s3://b/x", "v1", 0, i, 0) for i in range(40)]
    t0 = time.time() - 10_000  # explicit recency: file systems round mtimes

    def put(i: int) -> None:
        cache.put(keys[i], bytes([i]) * 10_000)
        os.utime(cache._path(keys[i]), (t0 + i, t0 + i))

    for i in range(9):  # 9 x 10 kB: within the bound
        put(i)
    assert cache.get(keys[0]) == bytes([0]) * 10_000  # a hit makes it the newest
    for i in range(9, 40):
        os.utime(cache._path(keys[0]), (t0 + i - 0.5, t0 + i - 0.5))  # kept in use
        put(i)
    assert cache.nbytes() <= 100_000
    assert cache.get(keys[0]) == bytes([0]) * 10_000
    assert cache.get(keys[1]) is None  # the oldest went first
    assert cache.get(keys[-1]) == bytes([39]) * 10_000
    # A damaged or short entry (a crash before the data reached the disk) is a miss
    # and is removed, never served.
    path = cache._path(keys[-1])
    path.write_bytes(path.read_bytes()[:-1])
    assert cache.get(keys[-1]) is None and not path.exists()
    # Another version of the image is another entry.
    assert cache.key("s3://b/x", "v2", 0, 39, 0) != keys[-1]


WRITER = """
import sys
from pathlib import Path
from microtome.pyramid.diskcache import DiskChunkCache
cache = DiskChunkCache(Path(sys.argv[1]), 400_000)
me = int(sys.argv[2])
bad = 0
for i in range(300):
    k = cache.key('k', i % 50)
    body = bytes([i % 50]) * (5_000 + (i % 50) * 100)
    got = cache.get(k)
    if got is not None and got != body:
        bad += 1
    cache.put(k, body)
print(bad)
"""


def test_several_processes_share_one_folder(tmp_path: Path) -> None:
    """Three processes read and write the same keys at once: every hit is a whole,
    correct entry, and the folder stays within its bound."""
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(n)],
                              stdout=subprocess.PIPE, text=True) for n in range(3)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs == ["0", "0", "0"], outs
    cache = diskcache.DiskChunkCache(tmp_path, 400_000)
    assert cache.nbytes() <= 400_000
    assert not [p for p in tmp_path.rglob(".tmp-*")]  # no temporary files left
