"""Long request lines against `microtome serve` as the CLI runs it (a real subprocess).

Same three bands as tests/tileserver/test_long_requests.py: a query up to
`MAX_QUERY_BYTES` works, a longer one (request line under the hard limit) gets
our JSON 400 with CORS, and a request line over `MAX_REQUEST_LINE_BYTES` is
refused by aiohttp's parser itself (a 4xx; plain text accepted only there).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from microtome.core.http import MAX_REQUEST_LINE_BYTES
from tests.tileserver.test_long_requests import (
    _free_port,
    assert_json_400,
    request,
    stop,
    wait_ready,
)

READY = "/api/openapi.json"


def test_serve_answers_long_queries_with_json(database_url: str, tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "MICROTOME_VAR": str(tmp_path / "var"),
           "MICROTOME_JOB_WORKERS": "0", "MICROTOME_TILE_THREADS": "1",
           "MICROTOME_SECRET": "request-limits-test"}
    proc = subprocess.Popen([sys.executable, "-m", "microtome", "serve", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(port, proc, READY, timeout=60)
        assert request(port, f"{READY}?x=" + "a" * 6000)[0] == 200
        assert_json_400(*request(port, f"{READY}?x=" + "a" * 20_000))
        assert_json_400(*request(port, "/api/images?" + "&".join(["limit=1"] * 3000)))
        status, _, _ = request(port, f"{READY}?x=" + "a" * (MAX_REQUEST_LINE_BYTES + 100))
        assert 400 <= status < 500
        assert request(port, READY)[0] == 200
    finally:
        stop(proc)
