"""Long request lines against `microtome tiles` as the CLI runs it (a real subprocess).

The parser limits are set where the CLI creates its server, so only a real
`microtome tiles` process shows what a client gets.  Three bands:
- a query up to `MAX_QUERY_BYTES` is served as usual;
- a longer query, with the request line under `MAX_REQUEST_LINE_BYTES`, reaches
  our middleware: JSON 400 with CORS, like every other error;
- a request line over `MAX_REQUEST_LINE_BYTES` is refused by aiohttp's own
  parser before our code runs: still a 4xx, but plain text is accepted there
  (nothing of ours can answer it; the hard limit only bounds memory).
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from microtome.core.http import MAX_QUERY_BYTES, MAX_REQUEST_LINE_BYTES

from .conftest import build_rgb, gradient_rgb

TILE = "/dzi/slide_files/9/0_0.jpg"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(port: int, target: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", target)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def wait_ready(port: int, proc: subprocess.Popen, path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if request(port, path)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def tiles_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    root = tmp_path_factory.mktemp("long-requests")
    build_rgb(root / "slide.ome.zarr", gradient_rgb(300, 400))
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "microtome", "tiles", "--root", str(root),
                             "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(port, proc, TILE)
        yield port
    finally:
        stop(proc)


def assert_json_400(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 400, body[:300]
    assert headers["content-type"].startswith("application/json")
    assert headers["access-control-allow-origin"] == "*"
    data = json.loads(body)
    assert data == {"error": "query string too long",
                    "detail": {"limit": MAX_QUERY_BYTES, "length": data["detail"]["length"]}}


def test_query_within_limit_is_served(tiles_port: int) -> None:
    status, _, body = request(tiles_port, f"{TILE}?x=" + "a" * 6000)
    assert status == 200 and body[:2] == b"\xff\xd8", body[:300]
    # Exactly at the limit is still fine ("x=" is part of the query).
    status, _, _ = request(tiles_port, f"{TILE}?x=" + "a" * (MAX_QUERY_BYTES - 2))
    assert status == 200


@pytest.mark.parametrize("target", [
    f"{TILE}?x=" + "a" * 20_000,
    f"{TILE}?x=" + "a" * (MAX_QUERY_BYTES - 1),  # one byte over
    "/iiif/3/slide/info.json?" + "&".join(["t=0"] * 5000),
    "/no/such/route?x=" + "a" * 20_000,
])
def test_long_query_gets_json_400(tiles_port: int, target: str) -> None:
    assert_json_400(*request(tiles_port, target))


def test_request_line_over_hard_limit_is_4xx(tiles_port: int) -> None:
    # Beyond the hard limit aiohttp's parser answers (plain text is acceptable here).
    status, _, _ = request(tiles_port, f"{TILE}?x=" + "a" * (MAX_REQUEST_LINE_BYTES + 100))
    assert 400 <= status < 500
    # The worker survives and keeps serving.
    assert request(tiles_port, TILE)[0] == 200
