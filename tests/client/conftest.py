"""A live `microtome serve` (a real subprocess on a free loopback port) for the client.

One server per test session (starting one takes seconds): tests isolate themselves
by creating their own projects and users.  It runs one conversion worker, so
uploads really get converted.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, _execute, with_database

ADMIN, PASSWORD = "admin", "client test password"


@dataclass
class LiveServer:
    url: str
    api_key: str
    var_dir: Path
    proc: subprocess.Popen[bytes]
    log: Path
    #: The server's environment (DATABASE_URL, MICROTOME_VAR) for `microtome` CLI runs.
    env: dict[str, str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(url: str, proc: subprocess.Popen[bytes], log: Path, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"microtome serve exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/api/setup", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"microtome serve did not answer in {limit} s: {log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def live_server(pg_server_url: str, template_database: str,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    name = f"microtome_client_{secrets.token_hex(5)}"
    asyncio.run(_execute(pg_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    var = tmp_path_factory.mktemp("client-server") / "var"
    port = free_port()
    log = var.parent / "serve.log"
    env = {**os.environ, "DATABASE_URL": with_database(pg_server_url, name),
           "MICROTOME_VAR": str(var), "MICROTOME_JOB_WORKERS": "1",
           "MICROTOME_TILE_THREADS": "2", "MICROTOME_LOCAL_WORKERS": "0"}
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "microtome", "serve", "--host",
                                 "127.0.0.1", "--port", str(port)], cwd=REPO, env=env,
                                stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(url, proc, log)
        with httpx.Client(base_url=url, timeout=30) as http:
            r = http.post("/api/setup", json={"username": ADMIN, "password": PASSWORD})
            assert r.status_code == 201, r.text
            r = http.post("/api/api-keys", json={"name": "tests"},
                          headers={"X-CSRF-Token": r.json()["csrf_token"]})
            assert r.status_code == 201, r.text
            key = r.json()["key"]
        yield LiveServer(url, key, var, proc, log, env)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        asyncio.run(_execute(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[object]:
    from microtome_client import Client

    with Client(live_server.url, api_key=live_server.api_key) as c:
        yield c


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


@pytest.fixture(scope="session")
def ready_images(live_server: LiveServer, testdata: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """The SVS sample and a generated 3-channel uint16 TIFF, uploaded and converted once."""
    import tifffile
    from microtome_client import Client

    folder = tmp_path_factory.mktemp("client-images")
    (folder / "CMU-1-Small-Region.svs").symlink_to(testdata / "CMU-1-Small-Region.svs")
    tifffile.imwrite(folder / "fluo16.tif", fluo16(), planarconfig="contig",
                     photometric="minisblack", tile=(256, 256), compression="zlib")
    with Client(live_server.url, api_key=live_server.api_key) as c:
        project = c.create_project(unique("shared-images"))
        results = c.upload([folder], project=project.id, progress=False,
                           state_file=folder / "state.json")
    assert all(r.ok for r in results), [(r.path.name, r.error) for r in results]
    out = {r.path.name: r.image.id for r in results}
    out["project"] = project.id
    return out


def fluo16() -> Any:
    import numpy as np

    yy, xx = np.mgrid[0:900, 0:1100].astype(np.uint32)
    return np.stack([(xx * 37 + yy) % 65536, (yy * 61) % 65536, (xx ^ yy) * 13 % 65536],
                    axis=-1).astype(np.uint16)


class CuttingProxy:
    """A loopback TCP proxy that drops one connection after ``cut_after`` bytes from the
    client: a network failure in the middle of an upload's body."""

    def __init__(self, upstream_port: int, cut_after: int) -> None:
        import socket
        import threading

        self.upstream, self.cut_after, self.cuts = upstream_port, cut_after, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._threading = threading
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while True:
            try:
                down, _ = self.sock.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.upstream))
            self._threading.Thread(target=self._pump, args=(down, up, True), daemon=True).start()
            self._threading.Thread(target=self._pump, args=(up, down, False),
                                   daemon=True).start()

    def _pump(self, src: Any, dst: Any, from_client: bool) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                if from_client and self.cuts == 0 and sent + len(data) > self.cut_after:
                    self.cuts += 1
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        import socket

        for s in (src, dst):  # shutdown wakes the other direction's blocked recv
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.sock.close()
