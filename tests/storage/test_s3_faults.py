"""S3 faults: a paused or killed server gives 503 + Retry-After within the deadline
(never a hang or a 500); a missing bucket or refused credentials stop `tiles` at
start-up with one line; damaged objects get the damaged-image answer."""

from __future__ import annotations

import asyncio
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
from microtome.pyramid import stores
from microtome.tileserver.tilemath import dzi_max_level

from . import s3server

DEADLINE_S = 2.0
TOP = dzi_max_level(2220, 2967)


@pytest.fixture(scope="module")
def local_cmu(tmp_path_factory: pytest.TempPathFactory, testdata: Path) -> Path:
    out = tmp_path_factory.mktemp("cmu") / "cmu.ome.zarr"
    convert(testdata / "CMU-1-Small-Region.svs", out)
    return out


@pytest.fixture
def own_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[s3server.S3Server]:
    """A server of this test alone (the test pauses and kills it)."""
    server = s3server.start()
    for k, v in server.env.items():
        monkeypatch.setenv(k, v)
    stores.configure(DEADLINE_S)
    try:
        yield server
    finally:
        stores.configure(10.0)
        server.stop()


@pytest.fixture
async def client(aiohttp_client, own_s3: s3server.S3Server,  # type: ignore[no-untyped-def]
                 local_cmu: Path) -> TestClient:
    from microtome.tileserver.app import TileSettings, create_tiles_app

    own_s3.create_bucket("faults")
    publish(local_cmu, "s3://faults/img/cmu.ome.zarr")
    return await aiohttp_client(create_tiles_app("s3://faults/img", TileSettings(threads=2)))


async def _unavailable(client: TestClient, path: str) -> None:
    started = time.monotonic()
    r = await client.get(path)
    elapsed = time.monotonic() - started
    assert r.status == 503, (path, r.status, await r.text())
    assert int(r.headers["Retry-After"]) >= 1
    body = await r.json()
    assert body["error"] == "image storage is unavailable, retry later"
    # Retries with backoff inside the deadline, then the answer: no hang.
    assert elapsed < DEADLINE_S * 2 + 2, elapsed


async def test_paused_then_killed_server(client: TestClient,
                                         own_s3: s3server.S3Server) -> None:
    assert (await client.get(f"/dzi/cmu_files/{TOP}/0_0.jpg")).status == 200
    own_s3.pause()
    try:
        # A tile of another level: its shard index is not cached yet.
        await _unavailable(client, f"/dzi/cmu_files/{TOP - 1}/0_0.jpg")
        # Cached answers keep flowing while the store is down.
        assert (await client.get(f"/dzi/cmu_files/{TOP}/0_0.jpg")).status == 200
    finally:
        own_s3.resume()
    assert (await client.get(f"/dzi/cmu_files/{TOP - 1}/0_0.jpg")).status == 200
    own_s3.stop()
    await _unavailable(client, f"/dzi/cmu_files/{TOP - 2}/0_0.jpg")
    await _unavailable(client, "/iiif/3/cmu/10,10,300,300/200,/0/default.jpg")


async def test_damaged_and_missing_objects(client: TestClient) -> None:
    store = stores.open_store("s3://faults/img/cmu.ome.zarr")
    store.put("1/c/0/0/0", b"\x00" * 100)  # a shard whose index is garbage
    r = await client.get(f"/dzi/cmu_files/{TOP - 1}/0_0.jpg")
    assert r.status == 422 and "damaged" in (await r.json())["error"]
    # A shard that vanished: the same answer as a never-written shard on disk
    # (zarr's fill value), exactly as for a local image.
    store.delete_prefix("2/c/0/0/0")
    r = await client.get(f"/dzi/cmu_files/{TOP - 2}/0_0.png")
    assert r.status == 200
    # The whole image gone: 404 once the resolution (trusted for resolver_ttl) expires.
    store.delete_prefix("")
    await asyncio.sleep(2.2)
    r = await client.get("/iiif/3/cmu/info.json")
    assert r.status == 404


def _tiles(root: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "microtome", "tiles", "--root", root,
                           "--port", str(s3server.free_port())],
                          env=env, capture_output=True, text=True, timeout=60)


def test_start_up_errors(s3: s3server.S3Server) -> None:
    env = {**os.environ, **s3.env, "MICROTOME_STORAGE_DEADLINE_S": "2"}
    proc = _tiles("s3://no-such-bucket/images", env)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("error: --root s3://no-such-bucket/images: "
                                   "the bucket does not exist")
    # A server that checks signatures and knows no keys: every credential is wrong.
    strict = s3server.start({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        # A refusal is not retried: the longer deadline only covers a slow start of
        # this fresh server on a loaded machine (2 s was seen to run out at load 23).
        proc = _tiles("s3://any/images", {**env, "AWS_ENDPOINT_URL": strict.endpoint,
                                          "MICROTOME_STORAGE_DEADLINE_S": "20"})
    finally:
        strict.stop()
    assert proc.returncode == 1
    assert "access denied (check AWS_ACCESS_KEY_ID" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    # Nothing listening at all.
    proc = _tiles("s3://any/images", {**env, "AWS_ENDPOINT_URL":
                                      f"http://127.0.0.1:{s3server.free_port()}"})
    assert proc.returncode == 1 and "cannot reach the storage service" in proc.stderr
