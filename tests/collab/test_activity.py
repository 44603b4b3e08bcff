"""Activity: live viewers recorded in batches, follow mode, flooding, replay, dashboard,
partitions and retention, annotation actions."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import orjson
import pytest
from aiohttp import WSMsgType, WSServerHandshakeError
from aiohttp.test_utils import TestClient

from microtome.catalog import api_activity
from microtome.catalog.activity_store import (
    ACTIVITY,
    drop_expired,
    ensure_partitions,
    partition_name,
)
from microtome.catalog.live import LiveHub, TokenBucket
from tests.catalog.helpers import call
from tests.catalog.world import World


def _ws_headers(actor):  # type: ignore[no-untyped-def]
    return actor.headers("GET")


async def _next(ws, kind: str, wait_s: float = 5.0) -> dict:  # type: ignore[no-untyped-def, type-arg]
    while True:
        async with asyncio.timeout(wait_s):
            msg = await ws.receive()
        assert msg.type == WSMsgType.TEXT, msg
        data = orjson.loads(msg.data)
        if data["type"] == kind:
            return data  # type: ignore[no-any-return]


async def test_live_session_is_recorded_and_followed(client: TestClient, world: World) -> None:
    a, iid = world.actors, world.image_id
    leader = await client.ws_connect(f"/api/live?image_id={iid}",
                                     headers=_ws_headers(a["manager"]))
    _, users = await call(client, a["viewer"], "GET", "/api/live/users", expect=200)
    assert [u["username"] for u in users["items"]] == ["manager"]
    follower = await client.ws_connect(f"/api/users/{a['manager'].user_id}/follow",
                                       headers=_ws_headers(a["viewer"]))
    first = await _next(follower, "view")
    assert first["image_id"] == iid and "x" not in first
    assert (await _next(leader, "followers"))["count"] == 1  # told without asking
    await leader.send_str(orjson.dumps({"x": 10, "y": 20, "w": 300, "h": 200}).decode())
    got = await _next(follower, "view")
    assert (got["x"], got["y"], got["w"], got["h"]) == (10, 20, 300, 200)
    await leader.send_str("not json")
    assert (await _next(leader, "error"))["type"] == "error"
    await leader.close()
    assert (await _next(follower, "offline"))["user_id"] == a["manager"].user_id
    await follower.close()
    await asyncio.sleep(0.05)
    await client.app[ACTIVITY].flush()
    _, events = await call(client, a["manager"], "GET", f"/api/images/{iid}/activity",
                           expect=200)
    kinds = [e["kind"] for e in events["items"]]
    assert kinds == ["open", "view", "close"], kinds
    assert events["items"][1]["w"] == 300 and events["items"][2]["detail"]["seconds"] >= 0
    _, sessions = await call(client, a["manager"], "GET",
                             f"/api/images/{iid}/activity/sessions", expect=200)
    assert sessions["items"][0]["username"] == "manager" and sessions["items"][0]["views"] == 1
    await call(client, a["viewer"], "GET", f"/api/images/{iid}/activity", expect=403)
    _, dash = await call(client, a["manager"], "GET",
                         f"/api/projects/{world.project_id}/dashboard", expect=200)
    assert dash["most_viewed"][0]["image_id"] == iid and dash["most_viewed"][0]["opens"] == 1
    assert dash["users"][0]["username"] == "manager"
    await call(client, a["contributor"], "GET", f"/api/projects/{world.project_id}/dashboard",
               expect=403)


async def test_follow_is_access_checked(client: TestClient, world: World,
                                        database_url: str) -> None:
    a = world.actors
    # The manager views a second image the viewer has no access to.
    conn = await asyncpg.connect(database_url)
    try:
        other = await conn.fetchval(
            "INSERT INTO images (name, status, owner_id) VALUES ('private', 'ready', $1)"
            " RETURNING id", a["manager"].user_id)
    finally:
        await conn.close()
    leader = await client.ws_connect(f"/api/live?image_id={other}",
                                     headers=_ws_headers(a["manager"]))
    follower = await client.ws_connect(f"/api/users/{a['manager'].user_id}/follow",
                                       headers=_ws_headers(a["viewer"]))
    await leader.send_str('{"x": 1, "y": 2, "w": 3, "h": 4}')
    hidden = await _next(follower, "hidden")
    assert "x" not in hidden and "image_id" not in hidden
    _, users = await call(client, a["viewer"], "GET", "/api/live/users", expect=200)
    assert users["items"] == []
    await leader.close()
    await follower.close()
    # Outsiders cannot open a live viewer on the image; anonymous cannot follow.
    with pytest.raises(WSServerHandshakeError) as exc:
        await client.ws_connect(f"/api/live?image_id={world.image_id}",
                                headers=_ws_headers(a["outsider"]))
    assert exc.value.status == 404
    with pytest.raises(WSServerHandshakeError) as exc:
        await client.ws_connect(f"/api/users/{a['manager'].user_id}/follow")
    assert exc.value.status == 401
    # A foreign site cannot open the socket with the user's cookie.
    with pytest.raises(WSServerHandshakeError) as exc:
        await client.ws_connect(f"/api/live?image_id={world.image_id}", headers={
            **_ws_headers(a["manager"]), "Origin": "https://evil.example"})
    assert exc.value.status == 403


async def test_flooding_is_dropped_then_disconnected(client: TestClient, world: World) -> None:
    a = world.actors
    ws = await client.ws_connect(f"/api/live?image_id={world.image_id}",
                                 headers=_ws_headers(a["manager"]))
    msg = '{"x": 1, "y": 2, "w": 3, "h": 4}'
    for _ in range(api_activity.FLOOD_LIMIT + int(api_activity.BURST) + 50):
        await ws.send_str(msg)
    closed = await asyncio.wait_for(ws.receive(), 5)
    while closed.type == WSMsgType.TEXT:
        closed = await asyncio.wait_for(ws.receive(), 5)
    assert closed.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert ws.close_code == 1008
    await asyncio.sleep(0.2)  # the handler records the close after the socket closed
    await client.app[ACTIVITY].flush()
    _, events = await call(client, a["manager"], "GET",
                           f"/api/images/{world.image_id}/activity", expect=200)
    # Sampled: one position recorded, not hundreds.
    assert [e["kind"] for e in events["items"]] == ["open", "view", "close"]
    # The message size is bounded too.
    ws = await client.ws_connect(f"/api/live?image_id={world.image_id}",
                                 headers=_ws_headers(a["manager"]))
    await ws.send_str("x" * 5000)
    closed = await asyncio.wait_for(ws.receive(), 5)
    assert closed.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)
    # A plain HTTP request is a JSON 400, not a half-made socket.
    status, body = await call(client, a["manager"], "GET",
                              f"/api/live?image_id={world.image_id}")
    assert status == 400 and "WebSocket" in body["error"]


def test_token_bucket_and_bounded_fanout() -> None:
    b = TokenBucket(rate=2, burst=3)
    assert [b.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.take(0.5) and not b.take(0.5)
    hub = LiveHub(max_followers=2)
    from microtome.catalog.live import Follower
    from microtome.pyramid import errors

    hub.open(1, "teacher", 5, 1)
    f1, f2, f3 = Follower(2), Follower(3), Follower(4)
    hub.follow(1, f1)
    hub.follow(1, f2)
    with pytest.raises(errors.TooManyRequests):
        hub.follow(1, f3)
    for i in range(100):  # a slow follower keeps only the latest position
        hub.move(1, 5, 1, (float(i), 0.0, 1.0, 1.0))
    assert f1.queue.qsize() == 1 and f1.queue.get_nowait()["x"] == 99.0


async def test_partitions_and_retention(client: TestClient, world: World,
                                        database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        today = dt.datetime.now(dt.UTC).date()
        old = today - dt.timedelta(days=400)
        await ensure_partitions(conn, old, ahead=0)
        await conn.execute("INSERT INTO activity_events (at, kind) VALUES ($1, 'open')",
                           dt.datetime.combine(old, dt.time(12), dt.UTC))
        with pytest.raises(asyncpg.RaiseError):
            await conn.execute("DELETE FROM activity_events")  # append-only
        dropped = await drop_expired(conn, today, 365)
        assert partition_name(old) in dropped
        assert partition_name(today) not in dropped
        assert await conn.fetchval("SELECT count(*) FROM activity_events WHERE at < $1",
                                   dt.datetime.combine(today, dt.time(0), dt.UTC)
                                   - dt.timedelta(days=300)) == 0
    finally:
        await conn.close()


async def test_annotation_actions_and_properties(client: TestClient, world: World) -> None:
    a, iid = world.actors, world.image_id
    _, ann = await call(client, a["contributor"], "POST", f"/api/images/{iid}/annotations",
                        {"geometry": {"type": "Point", "coordinates": [5, 5]}},
                        expect=201, validate=False)
    aid = ann["id"]
    url = f"/api/annotations/{aid}/properties"
    _, body = await call(client, a["contributor"], "PATCH", url, {"grade": 2, "note": "ok"},
                         expect=200)
    assert body["properties"] == {"grade": "2", "note": "ok"}
    _, body = await call(client, a["viewer"], "GET", url, expect=200)
    assert body["properties"]["grade"] == "2"
    await call(client, a["viewer"], "PATCH", url, {"grade": 3}, expect=403)
    status, _ = await call(client, a["contributor"], "PATCH", url, {"<i>": 3})
    assert status == 400
    _, body = await call(client, a["manager"], "PATCH", url, {"note": None}, expect=200)
    assert body["properties"] == {"grade": "2"}
    await call(client, a["contributor"], "DELETE", f"/api/annotations/{aid}", expect=204,
               validate=False)
    await client.app[ACTIVITY].flush()
    _, events = await call(client, a["manager"], "GET", f"/api/images/{iid}/activity",
                           expect=200)
    assert [e["kind"] for e in events["items"]] == [
        "annotation.create", "annotation.properties", "annotation.properties",
        "annotation.delete"]
    assert events["items"][-1]["detail"]["annotation_id"] == aid
    _, dash = await call(client, a["manager"], "GET",
                         f"/api/projects/{world.project_id}/dashboard", expect=200)
    assert sum(d["count"] for d in dash["annotations_per_day"]) == 0  # it was deleted
    assert {u["username"]: u["annotation_actions"] for u in dash["users"]}["contributor"] == 3


async def test_partitions_made_by_processes_starting_together(client: TestClient, world: World,
                                                              database_url: str) -> None:
    """Several `serve` processes on one database create the same partitions at start-up."""
    day = dt.date(2031, 5, 1)  # days nobody made yet
    pools = [await asyncpg.create_pool(database_url, min_size=1, max_size=1) for _ in range(6)]
    try:
        for attempt in range(3):
            await asyncio.gather(*(ensure_partitions(p, day + dt.timedelta(days=10 * attempt))
                                   for p in pools))
    finally:
        for p in pools:
            await p.close()
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT to_regclass($1) IS NOT NULL",
                                   partition_name(day + dt.timedelta(days=23))) is True
    finally:
        await conn.close()
