"""Slow and idle clients must not hold the server's sockets.

aiohttp reads request heads and keeps idle keep-alive connections without
limits of its own that a slowloris client could not defeat.  `ConnectionGuard`
watches every connection of the server:

- a connection that is not being served (no request handler running, nor a
  response being written) for ``idle_timeout`` seconds is closed — this bounds
  the time to deliver a complete request head (a client sending one header
  byte per second never gets a handler) and the keep-alive idle time;
- at most ``max_idle`` such idle connections are kept; past that the longest
  idle ones are closed first.

Request *bodies* are bounded by `core.http.body_chunks` (a read timeout
between chunks), where handlers read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web

from microtome.core.http import Handler

log = logging.getLogger("microtome.netguard")
#: Seconds between sweeps.
SWEEP_S = 0.5


class ConnectionGuard:
    def __init__(self, idle_timeout: float, max_idle: int) -> None:
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        # Plain dicts (aiohttp's protocol objects take no weak references); entries
        # of closed connections are dropped at each sweep.
        #: connection -> the task serving its latest request (done when idle again)
        self._tasks: dict[Any, asyncio.Task[Any]] = {}
        #: connection -> loop time it was first seen idle
        self._idle_since: dict[Any, float] = {}
        #: Connections closed so far (idle too long, or over the cap).
        self.closed = 0
        self._runner: asyncio.Task[None] | None = None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._runner is not None:  # only a server we run is guarded
            # aiohttp runs each request in a task of its own that covers the
            # handler *and* writing its response (request.task is the connection's).
            task = asyncio.current_task()
            if task is not None:
                self._tasks[request.protocol] = task
            self._idle_since.pop(request.protocol, None)
        return await handler(request)

    def sweep(self, connections: list[Any], now: float) -> None:
        live = set(connections)
        for table in (self._tasks, self._idle_since):
            for gone in [c for c in table if c not in live]:
                del table[gone]
        idle: list[tuple[float, int, Any]] = []
        for n, conn in enumerate(connections):
            task = self._tasks.get(conn)
            if task is not None and not task.done():
                continue
            since = self._idle_since.setdefault(conn, now)
            if now - since >= self.idle_timeout:
                self._close(conn)
            else:
                idle.append((since, n, conn))
        for _, _, conn in sorted(idle)[:max(0, len(idle) - self.max_idle)]:
            self._close(conn)

    def _close(self, conn: Any) -> None:
        self.closed += 1
        self._idle_since.pop(conn, None)
        conn.force_close()

    async def _run(self, server: web.Server) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                self.sweep(server.connections, loop.time())
            except Exception:  # the guard must never stop guarding
                log.exception("connection sweep failed")

    def start(self, server: web.Server) -> None:
        self._runner = asyncio.create_task(self._run(server))

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner


GUARD: web.AppKey[ConnectionGuard] = web.AppKey("connection_guard", ConnectionGuard)


def install(app: web.Application, idle_timeout: float, max_idle: int) -> ConnectionGuard:
    """Add the guard's middleware to `app` (first, so it sees every request)."""
    guard = ConnectionGuard(idle_timeout, max_idle)
    app[GUARD] = guard
    app.middlewares.insert(0, guard.middleware)

    async def stop(_app: web.Application) -> None:
        await guard.stop()

    app.on_shutdown.append(stop)
    return guard


async def start_site(app: web.Application, host: str, port: int,
                     site_kwargs: dict[str, Any] | None = None,
                     **runner_kwargs: Any) -> web.AppRunner:
    """Run `app` on host:port with its guard watching the connections; returns the
    runner (``await runner.cleanup()`` stops everything, the guard too)."""
    guard = app.get(GUARD)
    if guard is not None:
        runner_kwargs.setdefault("keepalive_timeout", guard.idle_timeout)
    runner = web.AppRunner(app, **runner_kwargs)
    await runner.setup()
    if guard is not None:
        assert runner.server is not None
        guard.start(runner.server)
    site = web.TCPSite(runner, host, port, **(site_kwargs or {}))
    await site.start()
    return runner
