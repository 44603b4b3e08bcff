"""Slow and idle clients against `microtome serve` as the CLI runs it (a real subprocess,
loopback, a handful of sockets): a slowloris head, idle keep-alive connections
past the cap, and a body that trickles in are all cut off, while normal
requests keep being served."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import _execute, with_database
from tests.tileserver.test_long_requests import _free_port, stop, wait_ready

IDLE_S = 2.0
BODY_S = 2.0
MAX_IDLE = 5
READY = "/api/openapi.json"


@pytest.fixture(scope="module")
def serve_port(pg_server_url: str, template_database: str,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """One server for the module (the scenarios are independent), on its own database."""
    name = f"microtome_slow_{secrets.token_hex(4)}"
    asyncio.run(_execute(pg_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": with_database(pg_server_url, name),
           "MICROTOME_VAR": str(tmp_path_factory.mktemp("slow") / "var"),
           "MICROTOME_JOB_WORKERS": "0", "MICROTOME_TILE_THREADS": "1",
           "MICROTOME_SECRET": "slow-clients-test",
           "MICROTOME_IDLE_TIMEOUT_S": str(int(IDLE_S)),
           "MICROTOME_BODY_TIMEOUT_S": str(int(BODY_S)),
           "MICROTOME_MAX_IDLE_CONNECTIONS": str(MAX_IDLE)}
    proc = subprocess.Popen([sys.executable, "-m", "microtome", "serve", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(port, proc, READY, timeout=60)
        yield port
    finally:
        stop(proc)
        asyncio.run(_execute(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Does the server close the connection (EOF / reset) within `seconds`?"""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(4096):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def _slowloris(port: int, path: str = READY) -> float | None:
    """Send a request head one byte per second; seconds until the server hung up
    (None: still open after 8 s).  The head would need ~80 s to complete."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nX-Slow: ".encode() + b"z" * 40
    start = loop.time()
    try:
        for i in range(8):
            try:
                writer.write(head[i:i + 1])
                await writer.drain()
            except ConnectionError:
                return loop.time() - start
            if await _closed_within(reader, 1.0):
                return loop.time() - start
        return None
    finally:
        writer.close()


async def _get(port: int, path: str = READY) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                     .encode())
        status = (await reader.readline()).split()[1]
        return int(status)
    finally:
        writer.close()


async def test_slowloris_heads_are_cut_off(serve_port: int) -> None:
    results = await asyncio.gather(*(_slowloris(serve_port) for _ in range(3)),
                                   _get(serve_port))
    *cut, normal = results
    assert normal == 200
    for seconds in cut:
        assert seconds is not None, "a one-byte-per-second head held its socket"
        assert seconds <= IDLE_S + 2.0


async def test_idle_connections_are_capped_and_timed_out(serve_port: int) -> None:
    conns = [await asyncio.open_connection("127.0.0.1", serve_port) for _ in range(20)]
    try:
        # Before the idle timeout, the cap already closed all but MAX_IDLE of them.
        await asyncio.sleep(1.2)
        assert IDLE_S > 1.2 + 0.5
        closed = await asyncio.gather(*(_closed_within(r, 0.3) for r, _ in conns))
        assert closed.count(False) <= MAX_IDLE
        assert closed.count(True) >= 20 - MAX_IDLE
        assert await _get(serve_port) == 200  # the server itself is fine
        # The rest go once idle for IDLE_S.
        left = [r for (r, _), c in zip(conns, closed, strict=True) if not c]
        assert all(await asyncio.gather(*(_closed_within(r, IDLE_S + 1.5) for r in left)))
        # A keep-alive connection idle after its request goes the same way.
        reader, writer = await asyncio.open_connection("127.0.0.1", serve_port)
        writer.write(b"GET /api/openapi.json HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert b" 200 " in await reader.readline()
        assert await _closed_within(reader, IDLE_S + 2.5)
        writer.close()
    finally:
        for _, w in conns:
            w.close()


async def test_a_trickling_body_gets_408(serve_port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", serve_port)
    body = json.dumps({"username": "someone", "password": "x" * 20}).encode()
    writer.write(b"POST /api/session HTTP/1.1\r\nHost: localhost\r\n"
                 b"Content-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:3])
    await writer.drain()
    try:
        async with asyncio.timeout(BODY_S + 2):
            status = await reader.readline()
            # The body stalled: the server answers instead of waiting for ever...
            assert b" 408 " in status, status
            head = await reader.readuntil(b"\r\n\r\n")
        assert b"connection: close" in head.lower()
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        raw = await reader.readexactly(length)
        assert b'"error"' in raw and b"stopped arriving" in raw
        # ...and hangs up (after a bounded lingering read).
        assert await _closed_within(reader, IDLE_S + 2.5)
    finally:
        writer.close()
