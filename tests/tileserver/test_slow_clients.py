"""Slow and idle clients against `microtome tiles` (a real subprocess with two
workers sharing the port): one-byte-per-second heads and idle keep-alive
connections are cut off, while tiles keep being served."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.microtome.test_slow_clients import _closed_within, _get, _slowloris
from tests.tileserver.conftest import build_rgb, gradient_rgb
from tests.tileserver.test_long_requests import _free_port, stop, wait_ready

IDLE_S = 2.0
MAX_IDLE = 4
TILE = "/dzi/slide_files/9/0_0.jpg"


@pytest.fixture(scope="module")
def tiles_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    root: Path = tmp_path_factory.mktemp("slow-tiles")
    build_rgb(root / "slide.ome.zarr", gradient_rgb(300, 400))
    port = _free_port()
    env = {**os.environ, "MICROTOME_IDLE_TIMEOUT_S": str(int(IDLE_S)),
           "MICROTOME_MAX_IDLE_CONNECTIONS": str(MAX_IDLE)}
    proc = subprocess.Popen([sys.executable, "-m", "microtome", "tiles", "--root", str(root),
                             "--port", str(port), "--workers", "2", "--threads", "1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_ready(port, proc, TILE, timeout=60)
        yield port
    finally:
        stop(proc)


async def test_slow_heads_are_cut_off_and_tiles_still_flow(tiles_port: int) -> None:
    *cut, normal = await asyncio.gather(*(_slowloris(tiles_port, TILE) for _ in range(3)),
                                        _get(tiles_port, TILE))
    assert normal == 200
    for seconds in cut:
        assert seconds is not None, "a one-byte-per-second head held its socket"
        assert seconds <= IDLE_S + 2.0


async def test_idle_connections_are_timed_out(tiles_port: int) -> None:
    conns = [await asyncio.open_connection("127.0.0.1", tiles_port) for _ in range(12)]
    try:
        assert await _get(tiles_port, TILE) == 200
        closed = await asyncio.gather(*(_closed_within(r, IDLE_S + 2.5) for r, _ in conns))
        assert all(closed), "idle connections stayed open past the idle timeout"
    finally:
        for _, w in conns:
            w.close()
