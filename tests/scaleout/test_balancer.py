"""Two `serve` and two `tiles` processes behind Debian's HAProxy, one PostgreSQL,
one data directory: they behave as one application.

Checked through the balancer: login, a tus upload whose PATCHes land on both
backends, the uploaded slide converted and its tiles viewed; one backend
SIGKILLed while tiles load (every request still answers: HAProxy retries the
idempotent ones); a login throttle counted on one backend applies on the
other; PostgreSQL restarted under both servers, which recover by themselves.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import aiohttp

from microtome.catalog.ratelimit import USER_LIMIT
from tests.scaleout.cluster import wait_http
from tests.scaleout.conftest import PASSWORD, World


async def _json(resp: aiohttp.ClientResponse) -> Any:
    return await resp.json(content_type=None)


async def _session(base: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(base, headers={"Origin": base},
                                 cookie_jar=aiohttp.CookieJar(unsafe=True))


async def _admin(world: World, http: aiohttp.ClientSession) -> dict[str, Any]:
    """First-run setup (or login) through the balancer; an API key for scripts."""
    r = await http.post("/api/setup", json={"username": "admin", "password": PASSWORD})
    if r.status == 409:
        r = await http.post("/api/session", json={"username": "admin", "password": PASSWORD})
    assert r.status in (200, 201), await r.text()
    me = await http.get("/api/session")
    assert me.status == 200, await me.text()
    return dict(await _json(me))


def _backend(resp: aiohttp.ClientResponse) -> str:
    return resp.headers.get("X-Backend", "?")


async def test_login_upload_and_view_through_the_balancer(world: World, testdata: Path) -> None:
    async with await _session(world.app) as http:
        me = await _admin(world, http)
        csrf = {"X-CSRF-Token": me["csrf_token"]}
        # The session cookie set by one backend is good on the other.
        seen = set()
        for _ in range(4):
            r = await http.get("/api/session")
            assert r.status == 200
            seen.add(_backend(r))
        assert seen == {"serve1", "serve2"}, seen
        r = await http.post("/api/api-keys", json={"name": "lb"}, headers=csrf)
        assert r.status == 201, await r.text()
        key = (await _json(r))["key"]
        r = await http.post("/api/projects", json={"name": "LB"}, headers=csrf)
        project_id = (await _json(r))["id"]
    auth = {"Authorization": f"Bearer {key}", "Tus-Resumable": "1.0.0"}
    src = (testdata / "CMU-1-Small-Region.svs").read_bytes()
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in
                    {"filename": "cmu.svs", "project_id": str(project_id)}.items())
    async with aiohttp.ClientSession(world.app) as http:
        r = await http.post("/api/uploads", headers={
            **auth, "Upload-Length": str(len(src)), "Upload-Metadata": meta})
        assert r.status == 201, await r.text()
        loc = r.headers["Location"]
        chunk, offset, backends = 256 * 1024, 0, []
        while offset < len(src):
            r = await http.patch(loc, data=src[offset:offset + chunk], headers={
                **auth, "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream"})
            assert r.status == 204, await r.text()
            backends.append(_backend(r))
            offset = int(r.headers["Upload-Offset"])
        # Round robin: the PATCHes of this one upload alternated between the servers.
        assert {"serve1", "serve2"} <= set(backends), backends
        state = await _json(await http.get(loc.replace("/api/uploads", "/api/uploads"),
                                           headers=auth))
        image_id = state["image_id"]
        assert state["offset"] == len(src) and image_id
        deadline = time.monotonic() + 120
        while True:
            image = await _json(await http.get(f"/api/images/{image_id}", headers=auth))
            if image["status"] == "ready":
                break
            assert image["status"] in ("pending", "converting"), image
            assert time.monotonic() < deadline, f"not converted in time\n{world.logs()}"
            await asyncio.sleep(0.5)
        # Tiles of the uploaded slide, from both servers.
        tile_backends = set()
        for _ in range(4):
            r = await http.get(f"/dzi/{image_id}_files/8/0_0.jpg", headers=auth)
            assert r.status == 200 and (await r.read())[:2] == b"\xff\xd8"
            tile_backends.add(_backend(r))
        assert tile_backends == {"serve1", "serve2"}
    world.image_id = image_id


def test_viewer_through_the_balancer_spreads_tiles_over_hosts(world: World) -> None:
    """OpenSeadragon in Debian's chromium, through HAProxy: tiles come from both
    `serve` backends and, with MICROTOME_TILE_URLS listing two host names, from
    both hosts (signed ids: the second host has no session cookie)."""
    from urllib.parse import urlsplit

    from playwright.sync_api import sync_playwright

    from tests.frontend.browser import CHROMIUM_ARGS, _ensure_chromium, ui_login

    assert world.image_id, "the upload test did not leave a slide"
    hosts: set[str] = set()
    backends: set[str] = set()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(_ensure_chromium()),
                                     args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(base_url=world.app).new_page()

            def seen(resp: Any) -> None:
                if "_files/" in resp.url and resp.status == 200:
                    hosts.add(urlsplit(resp.url).hostname or "")
                    backends.add(resp.headers.get("x-backend", "?"))

            page.on("response", seen)
            ui_login(page, "admin", PASSWORD, next_path=f"/viewer/{world.image_id}")
            page.wait_for_function("window.microtome.opened && window.microtome.tileBases"
                                   " && window.microtome.tilesLoaded > 0", timeout=60_000)
            before = page.evaluate("window.microtome.tilesLoaded")
            # Zoom in: new tiles, requested through the sharded URLs.
            page.evaluate("(() => { const v = window.microtome.state.viewer;"
                          " v.viewport.zoomBy(4); v.viewport.applyConstraints(); })()")
            page.wait_for_function(f"window.microtome.tilesLoaded >= {before + 4}",
                                   timeout=60_000)
            failed = page.evaluate("window.microtome.tilesFailed")
        finally:
            browser.close()
    assert failed == 0
    assert hosts == {"127.0.0.1", "localhost"}, hosts
    assert backends == {"serve1", "serve2"}, backends


async def _tile_load(base: str, paths: list[str], seconds: float) -> tuple[int, list[str]]:
    """GET tiles in a loop for `seconds` (4 at a time); (answers, failures)."""
    failures: list[str] = []
    done = 0
    end = time.monotonic() + seconds

    async def one(http: aiohttp.ClientSession, i: int) -> None:
        nonlocal done
        while time.monotonic() < end:
            path = paths[i % len(paths)]
            i += 4
            try:
                async with http.get(path) as r:
                    body = await r.read()
                    if r.status != 200 or body[:2] != b"\xff\xd8":
                        failures.append(f"{path}: {r.status}")
            except aiohttp.ClientError as exc:
                failures.append(f"{path}: {exc!r}")
            done += 1

    async with aiohttp.ClientSession(base) as http:
        await asyncio.gather(*(one(http, i) for i in range(4)))
    return done, failures


def _tile_paths(levels: range) -> list[str]:
    return [f"/dzi/cmu_files/{lv}/{c}_{r}.jpg" for lv in levels for c in range(2)
            for r in range(2)]


async def test_a_backend_killed_mid_load_fails_no_request(world: World) -> None:
    """SIGKILL one `tiles` process while tiles load: HAProxy retries the GETs that
    were on it; the other answers them all."""
    paths = _tile_paths(range(9, 12))
    load = asyncio.ensure_future(_tile_load(world.tile_url, paths, 6.0))
    await asyncio.sleep(2.0)
    world.tiles[0].kill()
    done, failures = await load
    assert done > 20 and not failures, (done, failures[:5])
    # A killed serve backend, the same: idempotent API reads keep answering.
    world.serve[1].kill()
    async with aiohttp.ClientSession(world.app) as http:
        for _ in range(6):
            r = await http.get("/api/openapi.json")
            assert r.status == 200
    world.serve[1].start()
    wait_http(f"http://127.0.0.1:{world.serve[1].port}/api/openapi.json", 120)
    world.tiles[0].start()
    wait_http(f"http://127.0.0.1:{world.tiles[0].port}/metrics", 60)


async def test_throttle_counted_on_one_backend_applies_on_the_other(world: World) -> None:
    first = f"http://127.0.0.1:{world.serve[0].port}"
    second = f"http://127.0.0.1:{world.serve[1].port}"
    wait_http(second + "/api/openapi.json", 120)
    async with aiohttp.ClientSession() as http:
        for _ in range(USER_LIMIT):
            r = await http.post(first + "/api/session",
                                json={"username": "mallory", "password": "guess"})
            assert r.status == 401
        r = await http.post(second + "/api/session",
                            json={"username": "mallory", "password": "guess"})
        assert r.status == 429 and int(r.headers["Retry-After"]) >= 1


async def test_postgres_restart_under_two_servers(world: World) -> None:
    """Both servers answer again by themselves once PostgreSQL is back."""
    async with await _session(world.app) as http:
        await _admin(world, http)
        await asyncio.to_thread(world.pg.restart)
        deadline = time.monotonic() + 30
        ok: set[str] = set()
        statuses: list[int] = []
        while ok != {"serve1", "serve2"}:
            assert time.monotonic() < deadline, (statuses[-10:], world.logs())
            r = await http.get("/api/session")
            statuses.append(r.status)
            # During the outage: 503 + Retry-After, never a 500.
            assert r.status in (200, 503), await r.text()
            if r.status == 200:
                ok.add(_backend(r))
            else:
                await asyncio.sleep(0.3)
        # Writes work too, on both.
        for _ in range(2):
            r = await http.post("/api/session", json={"username": "admin",
                                                       "password": PASSWORD})
            assert r.status == 200, await r.text()
