"""Handlers: live viewers (WebSocket), follow mode (WebSocket), replay and dashboard.

``GET /api/live?image_id=N`` (WebSocket): an open viewer reports its viewport
``{"x", "y", "w", "h"}`` (level-0 pixels).  The opening, the closing (with the
time spent) and one position per `activity_sample_s` are recorded; every
position reaches the user's followers.  A client sending faster than the rate
limit has the excess dropped; one that keeps flooding is disconnected (1008).
Nothing here waits for the database: events go to the batch writer.

``GET /api/users/{user_id}/follow`` (WebSocket): the positions of a user's
live viewer, each sent only if the follower may read that image.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from microtome.catalog.access import (
    Principal,
    image_access,
    require_image_role,
    require_project_role,
    require_user,
)
from microtome.catalog.activity_store import ACTIVITY
from microtome.catalog.db import DB_POOL
from microtome.catalog.jsonio import int_param, path_id
from microtome.catalog.live import Follower, LiveHub, TokenBucket, parse_view
from microtome.catalog.state import CATALOG
from microtome.core.http import json_response
from microtome.pyramid import errors

LIVE: web.AppKey[LiveHub] = web.AppKey("live_hub", LiveHub)
#: Messages a second a viewer may send (positions during a pan), and its burst.
RATE, BURST = 5.0, 20.0
#: Dropped messages after which a flooding client is disconnected.
FLOOD_LIMIT = 200
MAX_MSG = 1024
_STOP: dict[str, Any] = {"type": "stop"}


def _websocket(request: web.Request) -> web.WebSocketResponse:
    """A WebSocket answer, or a JSON 400 for a plain HTTP request (before any state)."""
    ws = web.WebSocketResponse(max_msg_size=MAX_MSG, heartbeat=30)
    if not ws.can_prepare(request).ok:
        raise errors.InvalidRequest("this endpoint is a WebSocket: send an Upgrade request")
    return ws


def _check_origin(request: web.Request) -> None:
    """Browsers send cookies on cross-site WebSocket handshakes: refuse other origins."""
    from microtome.catalog.web import _same_origin

    origin = request.headers.get("Origin")
    if origin is not None and not _same_origin(origin, request.host):
        raise errors.Forbidden("cross-site WebSocket refused", {"origin": origin})


async def live(request: web.Request) -> web.WebSocketResponse:
    image_id = int_param(request, "image_id", 0, 1, 2**63 - 1)
    if not image_id:
        raise errors.InvalidRequest("image_id is required", {"field": "image_id"})
    _check_origin(request)
    ws = _websocket(request)
    principal = await require_image_role(request, image_id, "viewer")
    hub, writer = request.app[LIVE], request.app[ACTIVITY]
    sample_s = request.app[CATALOG].settings.collab.activity_sample_s
    session_id = int(await request.app[DB_POOL].fetchval("SELECT nextval('activity_session_seq')"))
    uid = principal.user_id
    await ws.prepare(request)
    sends: set[asyncio.Task[None]] = set()

    def followers_changed(n: int) -> None:
        # The leader sees who watches (teaching, not spying); sent without waiting.
        if not ws.closed:
            task = asyncio.create_task(ws.send_str(orjson.dumps(
                {"type": "followers", "count": n}).decode()))
            sends.add(task)
            task.add_done_callback(sends.discard)

    if uid is not None:  # anonymous and share-link viewers are recorded, never followed
        try:
            hub.open(uid, principal.username or "", image_id, session_id, followers_changed)
        except errors.TooManyRequests:
            await ws.close(code=1013, message=b"too many live viewers for this user")
            return ws
    opened = time.monotonic()
    writer.add("open", user_id=uid, image_id=image_id, session_id=session_id,
               detail={"via": principal.via})
    bucket, dropped, last_rec = TokenBucket(RATE, BURST), 0, -1e9
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            if not bucket.take():
                dropped += 1
                if dropped > FLOOD_LIMIT:
                    await ws.close(code=1008, message=b"rate limit exceeded")
                    break
                continue
            try:
                view = parse_view(orjson.loads(msg.data))
            except (orjson.JSONDecodeError, errors.InvalidRequest):
                await ws.send_str('{"type":"error","error":"send {x, y, w, h} as numbers"}')
                continue
            if uid is not None:
                hub.move(uid, image_id, session_id, view)
            now = time.monotonic()
            if now - last_rec >= sample_s:
                last_rec = now
                writer.add("view", user_id=uid, image_id=image_id, session_id=session_id,
                           view=view)
    finally:
        if uid is not None:
            hub.close(uid, followers_changed)
        writer.add("close", user_id=uid, image_id=image_id, session_id=session_id,
                   detail={"seconds": round(time.monotonic() - opened, 1)})
    return ws


async def follow(request: web.Request) -> web.WebSocketResponse:
    leader = path_id(request, "user_id")
    _check_origin(request)
    ws = _websocket(request)
    principal = await require_user(request)
    if leader == principal.user_id:
        raise errors.InvalidRequest("you cannot follow yourself")
    hub = request.app[LIVE]
    follower = Follower(principal.user_id or 0)
    hub.follow(leader, follower)  # 429 before the upgrade when the leader has too many
    try:
        await ws.prepare(request)
        sender = asyncio.create_task(_send_views(request, ws, principal, follower))
        try:
            async for _msg in ws:  # the follower only listens; this notices the close
                pass
        finally:
            # Stop the sender between two messages, not in the middle of its access
            # query (a cancelled query can leave a pooled connection unusable).
            follower.offer(_STOP)
            try:
                await asyncio.wait_for(asyncio.shield(sender), 5)
            except TimeoutError:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
    finally:
        hub.unfollow(leader, follower)
    return ws


async def _send_views(request: web.Request, ws: web.WebSocketResponse, principal: Principal,
                      follower: Follower) -> None:
    pool = request.app[DB_POOL]
    allowed: dict[int, bool] = {}
    while not ws.closed:
        msg = await follower.queue.get()
        if msg is _STOP:
            return
        image_id = msg.get("image_id")
        if image_id is not None:
            if image_id not in allowed:
                acc = await image_access(pool, principal, int(image_id))
                allowed[image_id] = acc.role is not None
            if not allowed[image_id]:
                # The follower may not see this image: not even where the leader looks.
                msg = {"type": "hidden", "user_id": msg.get("user_id")}
        with contextlib.suppress(ConnectionResetError):
            await ws.send_str(orjson.dumps(msg).decode())


async def live_users(request: web.Request) -> web.Response:
    """Users live right now on images the caller may read (whom they could follow)."""
    principal = await require_user(request)
    pool, hub = request.app[DB_POOL], request.app[LIVE]
    allowed: dict[int, bool] = {}
    out: list[dict[str, Any]] = []
    for p in hub.live():  # this process's viewers and those the others announced
        if p.user_id == principal.user_id:
            continue
        if p.image_id not in allowed:
            if len(allowed) >= 500:
                break
            allowed[p.image_id] = (await image_access(pool, principal, p.image_id)).role \
                is not None
        if allowed[p.image_id]:
            out.append({"user_id": p.user_id, "username": p.username, "image_id": p.image_id,
                        "followers": len(p.followers) + p.remote_followers})
            if len(out) >= 200:
                break
    return json_response({"items": out})


# -- replay and dashboard (managers) -------------------------------------------------
async def image_activity(request: web.Request) -> web.Response:
    image_id = path_id(request, "image_id")
    await require_image_role(request, image_id, "manager")
    from microtome.catalog import activity_queries as q

    session = int_param(request, "session_id", 0, 0, 2**63 - 1) or None
    user = int_param(request, "user_id", 0, 0, 2**63 - 1) or None
    limit = int_param(request, "limit", 1000, 1, 10_000)
    after = request.query.get("after")
    return json_response(await q.events(request.app[DB_POOL], image_id, session_id=session,
                                        user_id=user, after=after, limit=limit))


async def image_sessions(request: web.Request) -> web.Response:
    image_id = path_id(request, "image_id")
    await require_image_role(request, image_id, "manager")
    from microtome.catalog import activity_queries as q

    days = int_param(request, "days", 30, 1, 3650)
    return json_response({"items": await q.sessions(request.app[DB_POOL], image_id, days)})


async def dashboard(request: web.Request) -> web.Response:
    project_id = path_id(request, "project_id")
    await require_project_role(request, project_id, "manager")
    from microtome.catalog import activity_queries as q

    days = int_param(request, "days", 30, 1, 3650)
    return json_response(await q.dashboard(request.app[DB_POOL], project_id, days))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/live", live),
        web.get("/api/live/users", live_users),
        web.get("/api/users/{user_id}/follow", follow),
        web.get("/api/images/{image_id}/activity", image_activity),
        web.get("/api/images/{image_id}/activity/sessions", image_sessions),
        web.get("/api/projects/{project_id}/dashboard", dashboard),
    ]
