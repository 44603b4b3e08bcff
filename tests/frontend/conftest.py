"""Fixtures of the browser tests: chromium, the live server, pages with console checks.

See tests/frontend/browser.py for what each piece does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.frontend.browser import (
    CHROMIUM_ARGS,
    REPO,
    ConsoleLog,
    LiveServer,
    _ensure_chromium,
    _wait_ready,
    free_port,
    watch_console,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def browser(live_server: LiveServer) -> Iterator[Any]:
    """Chromium for one test.  Function-scoped and set up after the live server
    on purpose: sync Playwright runs an event loop in this thread while it is
    active, and the database fixtures call asyncio.run() in their set-up and
    tear-down, which must happen outside that window."""
    from playwright.sync_api import sync_playwright

    exe = _ensure_chromium()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(exe), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


# -- the slide -----------------------------------------------------------------
@pytest.fixture(scope="session")
def converted_slide(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CMU-1-Small-Region.svs as an OME-Zarr pyramid (converted once per session)."""
    out = tmp_path_factory.mktemp("slide") / "CMU-1-Small-Region.ome.zarr"
    src = testdata / "CMU-1-Small-Region.svs"
    from microtome.converters import convert

    convert(src, out)
    return out


@pytest.fixture(scope="session")
def fluorescence(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """multi-channel-z-series.ome.tif (3 channels, 5 planes) converted once per session."""
    from microtome.converters import convert

    out = tmp_path_factory.mktemp("fluo") / "multi-channel-z-series.ome.zarr"
    convert(testdata / "multi-channel-z-series.ome.tif", out)
    return out


@pytest.fixture
def server_env() -> dict[str, str]:
    """Extra environment of the live server; a test module overrides it (e.g. to
    keep the local analysis worker, off here: most tests run no analysis)."""
    return {"MICROTOME_LOCAL_WORKERS": "0"}


@pytest.fixture
def live_server(database_url: str, tmp_path: Path,
                server_env: dict[str, str]) -> Iterator[LiveServer]:
    """The whole app (`microtome serve`) on a free port with a fresh database."""
    port = free_port()
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    log_path = tmp_path / "server.log"
    env = {**os.environ, "DATABASE_URL": database_url, "MICROTOME_VAR": str(var_dir),
           "MICROTOME_JOB_WORKERS": "1", "MICROTOME_TILE_THREADS": "2",
           "MICROTOME_SECRET": "browser-test-secret", "PYTHONUNBUFFERED": "1", **server_env}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "microtome", "serve", "--host", "127.0.0.1",
             "--port", str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = LiveServer(f"http://127.0.0.1:{port}", var_dir, database_url, proc, log_path)
    try:
        _wait_ready(server)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def console() -> ConsoleLog:
    return ConsoleLog()


@pytest.fixture
def context(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    ctx = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: Any, console: ConsoleLog) -> Iterator[Any]:
    p = context.new_page()
    watch_console(p, console)
    yield p
    bad = console.unexpected()
    assert not bad, "console errors in the browser:\n" + "\n".join(bad)
