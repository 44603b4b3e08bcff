"""Access changes, told to every process at once through PostgreSQL LISTEN/NOTIFY.

Each process caches principals and (principal, image) decisions for a few
seconds so the tile path needs no database.  When something ends access (a
membership change, a revoked link or key, a deleted user or image), the
process that made the change evicts its own caches and sends a notification;
every other process evicts the same entries as soon as it arrives, instead of
waiting for the TTL (which stays as the fallback if the listener is down).

The same connection carries other channels (`AccessEvents.channels`, e.g. the
live viewers' relay): one listening connection per process whatever listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from microtome.catalog.db import connect

log = logging.getLogger("microtome.catalog.events")

CHANNEL = "microtome_access"
#: Event kinds: "image" (value: id) - the image changed or went; "access" - some
#: membership or visibility changed; "all" - a credential was revoked or a user
#: changed (drop every cached principal too); "cred" (value: hex digest) - one
#: session or key ended.
KINDS = ("image", "access", "all", "cred")

Apply = Callable[[str, Any], None]


class Channel:
    """Another channel on the listener's connection: `received(payload)` for each
    notification, `connected()` after each (re)connection."""

    def received(self, payload: str) -> None:
        raise NotImplementedError

    def connected(self) -> None:
        """Called once listening (again): anything sent meanwhile was missed."""


class AccessEvents:
    """Publishes access events and applies the ones other processes send."""

    def __init__(self, apply: Apply) -> None:
        self.apply = apply
        self.origin = secrets.token_hex(8)
        self.pool: asyncpg.Pool | None = None
        #: The listener's own connection also sends (keeps pool connections free).
        self.conn: asyncpg.Connection | None = None
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Other channels listened to on the same connection (name → handler).
        self.channels: dict[str, Channel] = {}

    def publish(self, kind: str, value: Any = None) -> None:
        """Apply here now, and tell the other processes (fire and forget)."""
        self.apply(kind, value)
        if self.pool is None:
            return
        payload = orjson.dumps({"o": self.origin, "k": kind, "v": value}).decode()
        self.notify(CHANNEL, payload)

    def notify(self, channel: str, payload: str) -> None:
        """Send a notification on `channel` (fire and forget; dropped when not connected)."""
        if self.pool is None:
            return
        task = asyncio.get_running_loop().create_task(self._send(self.pool, payload, channel))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, pool: asyncpg.Pool, payload: str, channel: str = CHANNEL) -> None:
        try:
            conn = self.conn
            if conn is not None and not conn.is_closed():
                async with self._send_lock:
                    await conn.execute("SELECT pg_notify($1, $2)", channel, payload)
            else:
                await pool.execute("SELECT pg_notify($1, $2)", channel, payload)
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            log.warning("could not broadcast an access change (others wait for the"
                        " cache TTL): %s", exc)

    def received(self, payload: str) -> None:
        try:
            msg = orjson.loads(payload)
            kind, value, origin = msg["k"], msg.get("v"), msg["o"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("ignoring a malformed access notification")
            return
        if origin != self.origin and kind in KINDS:
            self.apply(kind, value)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def _listen_forever(dsn: str, events: AccessEvents, ready: asyncio.Event) -> None:
    def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        events.received(payload)

    while True:
        conn = None
        try:
            conn = await connect(dsn)
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _c, lost=lost: lost.set())
            await conn.add_listener(CHANNEL, on_notify)
            for name, handler in events.channels.items():
                await conn.add_listener(
                    name, lambda _c, _p, _n, payload, h=handler: h.received(payload))
            events.conn = conn
            # Whatever happened while we were not listening is unknown: forget all.
            events.apply("all", None)
            for handler in events.channels.values():
                handler.connected()
            ready.set()
            await lost.wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database restarts: listen again shortly
            log.warning("access-change listener lost its connection: %s", exc)
        finally:
            events.conn = None
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await conn.close()
        await asyncio.sleep(2.0)


@contextlib.asynccontextmanager
async def listening(dsn: str, pool: asyncpg.Pool, events: AccessEvents) -> AsyncIterator[None]:
    """Publish through `pool` and listen on a dedicated connection while inside."""
    events.pool = pool
    ready = asyncio.Event()
    task = asyncio.get_running_loop().create_task(_listen_forever(dsn, events, ready))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ready.wait(), 10.0)
    try:
        yield
    finally:
        await events.drain()
        events.pool = None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


EVENTS: web.AppKey[AccessEvents] = web.AppKey("catalog_events", AccessEvents)
