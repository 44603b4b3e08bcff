"""Follow mode across `serve` processes: two processes on one database, a leader's
viewer on process A and a follower on process B (catalog/live_relay.py relays the
live state over PostgreSQL NOTIFY).  Without the relay B only ever says "offline"."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from microtome.catalog.images import register_image
from tests.scaleout.cluster import running, serve_proc, wait_http

PASSWORD = "correct horse battery staple"


async def _http(base: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(base, headers={"Origin": base},
                                 cookie_jar=aiohttp.CookieJar(unsafe=True))


async def _ok(resp: aiohttp.ClientResponse, status: int = 200) -> Any:
    assert resp.status == status, (resp.status, await resp.text())
    return await resp.json(content_type=None)


async def _next(ws: aiohttp.ClientWebSocketResponse, want: Any, seconds: float = 15
                ) -> dict[str, Any]:
    """The first message for which `want(msg)` holds (others are skipped)."""
    async def read() -> dict[str, Any]:
        while True:
            msg = await ws.receive_json()
            if want(msg):
                return dict(msg)
    return await asyncio.wait_for(read(), seconds)


async def _follow_across(a: str, b: str, database_url: str) -> None:
    admin, teacher = await _http(b), await _http(a)
    try:
        setup = await _ok(await admin.post("/api/setup", json={"username": "admin",
                                                               "password": PASSWORD}), 201)
        csrf = {"X-CSRF-Token": setup["csrf_token"]}
        user = await _ok(await admin.post("/api/users", headers=csrf, json={
            "username": "teacher", "password": PASSWORD}), 201)
        project = await _ok(await admin.post("/api/projects", headers=csrf,
                                             json={"name": "Teaching"}), 201)
        await _ok(await admin.post(f"/api/projects/{project['id']}/members", headers=csrf,
                                   json={"username": "teacher", "role": "viewer"}), 201)
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
        try:
            iid = await register_image(pool, name="slide", relpath="none", width=4000,
                                       height=3000, levels=1, project_id=project["id"])
        finally:
            await pool.close()
        await _ok(await teacher.post("/api/session", json={"username": "teacher",
                                                            "password": PASSWORD}))
        # The teacher views the slide on A; the admin follows from B.
        leader = await teacher.ws_connect(f"/api/live?image_id={iid}")
        follower = await admin.ws_connect(f"/api/users/{user['id']}/follow")
        first = await _next(follower, lambda m: m["type"] == "view")
        assert first["image_id"] == iid and first["username"] == "teacher"
        # A counts B's follower for the teacher.
        await _next(leader, lambda m: m == {"type": "followers", "count": 1})
        live = await _ok(await admin.get("/api/live/users"))
        assert [(u["user_id"], u["image_id"]) for u in live["items"]] == [(user["id"], iid)]
        await leader.send_json({"x": 100, "y": 200, "w": 300, "h": 400})
        moved = await _next(follower, lambda m: m["type"] == "view" and "x" in m)
        assert (moved["x"], moved["y"], moved["w"], moved["h"]) == (100, 200, 300, 400)
        await leader.send_json({"x": 1500, "y": 900, "w": 30, "h": 40})
        await _next(follower, lambda m: m["type"] == "view" and m.get("x") == 1500)
        # The follower leaves: A's count drops; the teacher leaves: B says offline.
        await follower.close()
        await _next(leader, lambda m: m == {"type": "followers", "count": 0})
        follower = await admin.ws_connect(f"/api/users/{user['id']}/follow")
        await _next(follower, lambda m: m["type"] == "view" and m.get("x") == 1500)
        await leader.close()
        await _next(follower, lambda m: m["type"] == "offline")
        await follower.close()
    finally:
        await admin.close()
        await teacher.close()


def test_a_follower_on_one_process_sees_a_leader_on_another(tmp_path: Path,
                                                            database_url: str) -> None:
    var = tmp_path / "var"
    var.mkdir()
    procs = [serve_proc(name, var, database_url, tmp_path,
                        extra_env={"MICROTOME_LOCAL_WORKERS": "0"}) for name in ("a", "b")]
    with running(*procs):
        try:
            for p in procs:  # a loaded machine starts slowly
                wait_http(f"http://127.0.0.1:{p.port}/api/openapi.json", timeout=180)
            asyncio.run(_follow_across(*(f"http://127.0.0.1:{p.port}" for p in procs),
                                       database_url))
        except BaseException:
            print("\n".join(p.tail() for p in procs))
            raise
