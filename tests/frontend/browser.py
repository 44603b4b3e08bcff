"""Helpers of the browser tests (fixtures are in conftest.py).

Browser-test harness: Debian chromium driven by Playwright against the real app.

* Chromium is Debian's (``/usr/bin/chromium``), installed with apt when
  missing; Playwright never downloads a browser here.
* ``live_server`` runs ``python -m microtome serve`` in a subprocess on a free
  port with a fresh database (``database_url``) and its own var/ directory.
* ``converted_slide`` converts CMU-1-Small-Region.svs once per session.
* ``page`` records console errors and uncaught exceptions; a test fails if
  any happened that it did not declare expected.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ADMIN = ("admin", "correct horse battery")


def _ensure_chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0:
        pytest.fail("Debian chromium is missing: run `sudo apt-get install -y chromium` "
                    "(or `make test`, which installs it)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)
    if not CHROMIUM.exists():
        pytest.fail("apt-get installed no /usr/bin/chromium")
    return CHROMIUM


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    var_dir: Path
    database_url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def _wait_ready(server: LiveServer, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"server exited with {server.proc.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(server.url + "/api/openapi.json", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"server did not answer within {timeout} s:\n{server.log()}")


def admin_project_slide(context: Any, server: LiveServer, pyramid: Path, *, project: str,
                        image: str) -> tuple[str, dict[str, Any], int]:
    """First admin (logged in on `context`), a project, and a ready slide in it:
    (CSRF token, project JSON, image id)."""
    csrf = api_setup_admin(context)
    proj = api_call(context, "POST", "/api/projects", csrf, {"name": project})
    return csrf, proj, register_slide(server, pyramid, name=image, project_id=proj["id"])


def register_slide(server: LiveServer, pyramid: Path, *, name: str,
                   project_id: int | None = None) -> int:
    """Put a converted pyramid into the server's catalog as a ready image."""
    import asyncpg

    from microtome.catalog.images import register_image
    from microtome.pyramid.reader import open_pyramid

    rel = f"seed/{pyramid.name}"
    dst = server.var_dir / "images" / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(pyramid, dst)
    meta = open_pyramid(dst).meta

    async def _go() -> int:
        pool = await asyncpg.create_pool(server.database_url, min_size=1, max_size=1)
        try:
            return await register_image(
                pool, name=name, relpath=rel, width=meta.width, height=meta.height,
                levels=len(meta.levels), format="svs",
                pixel_size_um=meta.pixel_size_um[0] if meta.pixel_size_um else None,
                version=meta.version, source_filename=name, project_id=project_id)
        finally:
            await pool.close()

    # Sync Playwright keeps an event loop running in this thread: use another.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _go()).result()


# -- pages ---------------------------------------------------------------------
@dataclass
class ConsoleLog:
    errors: list[str] = field(default_factory=list)
    #: Substrings of console errors a test provokes on purpose.
    expected: list[str] = field(default_factory=list)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(x in e for x in self.expected)]


def watch_console(page: Any, log: ConsoleLog) -> None:
    page.on("console", lambda m: log.errors.append(f"console: {m.text} @ {m.location}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: log.errors.append(f"pageerror: {e}"))


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def drawn_fraction(png: bytes) -> tuple[float, float]:
    """(fraction of pixels that differ from the viewer's empty background, pixel stdev)."""
    import io

    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)
    background = np.array([0x0E, 0x11, 0x16], np.int16)
    differs = np.abs(img - background).sum(axis=2) > 40
    return float(differs.mean()), float(img.std())


# -- API shortcuts (through the browser context, so cookies are shared) -------
def api_setup_admin(context: Any, username: str = ADMIN[0], password: str = ADMIN[1]) -> str:
    """Create the first administrator; returns the session's CSRF token."""
    r = context.request.post("/api/setup", data={"username": username, "password": password})
    assert r.status == 201, r.text()
    return str(r.json()["csrf_token"])


def api_call(context: Any, method: str, path: str, csrf: str, data: Any = None) -> Any:
    r = context.request.fetch(path, method=method, data=data,
                              headers={"X-CSRF-Token": csrf})
    assert r.ok, f"{method} {path}: {r.status} {r.text()}"
    return r.json() if r.status != 204 else None


def ui_login(page: Any, username: str, password: str, next_path: str = "/") -> None:
    from urllib.parse import quote

    page.goto(f"/login?next={quote(next_path)}")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_url(lambda url: "/login" not in url)


def wait_tiles(page: Any, minimum: int = 4) -> None:
    page.wait_for_function(
        f"window.microtome && window.microtome.opened && window.microtome.tilesLoaded >= {minimum}"
        " && window.microtome.state.viewer.world.getItemAt(0).getFullyLoaded()",
        timeout=20_000)


def view_center(page: Any) -> dict[str, float]:
    return dict(page.evaluate("""(() => {
        const v = window.microtome.state.viewer, item = v.world.getItemAt(0);
        const c = item.viewportToImageCoordinates(v.viewport.getCenter(true));
        return {x: c.x, y: c.y, z: item.viewportToImageZoom(v.viewport.getZoom(true)),
                r: v.viewport.getRotation(true)};
    })()"""))


def db_run(server: LiveServer, fn: Any) -> Any:
    """Run `await fn(conn)` on the server's database (outside Playwright's loop)."""
    import asyncpg

    async def _go() -> Any:
        conn = await asyncpg.connect(server.database_url)
        try:
            return await fn(conn)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _go()).result()
