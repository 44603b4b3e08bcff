"""Wake waiting workers when an analysis is queued (PostgreSQL LISTEN/NOTIFY).

Workers claim over HTTP with a long-poll (``"wait": seconds``): the claim
handler finds nothing, waits here, and tries again as soon as any server
process's database sends ``microtome_analysis_queue`` (a trigger of the
analysis migrations fires it at commit). If the listening connection is lost,
waits fall back to short polls until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from microtome.catalog.db import DB_POOL

log = logging.getLogger("microtome.catalog.analysis_wakeup")

CHANNEL = "microtome_analysis_queue"
#: Longest single wait while the listener is down (the fallback poll).
FALLBACK_POLL_S = 1.0


class QueueWakeup:
    """An event renewed at every notification: waiters take the current one
    *before* looking at the queue, so a notification between the look and
    the wait is not missed."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.listening = False

    def current(self) -> asyncio.Event:
        return self._event

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, event: asyncio.Event, seconds: float) -> None:
        """Until `event` fires or `seconds` pass (capped while not listening)."""
        if not self.listening:
            seconds = min(seconds, FALLBACK_POLL_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), max(0.0, seconds))


WAKEUP: web.AppKey[QueueWakeup] = web.AppKey("analysis_wakeup", QueueWakeup)


async def _listen_forever(pool: asyncpg.Pool, wakeup: QueueWakeup) -> None:
    def on_notify(*_args: object) -> None:
        wakeup.notify()

    while True:
        try:
            # A pool connection kept for the process's life: one of its slots.
            async with pool.acquire() as conn:
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, on_notify)
                wakeup.listening = True
                wakeup.notify()  # whatever was queued meanwhile: look again
                try:
                    await lost.wait()
                finally:
                    wakeup.listening = False
                    with contextlib.suppress(Exception):
                        await conn.remove_listener(CHANNEL, on_notify)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database restarts: listen again shortly
            log.warning("analysis queue listener lost its connection: %s", exc)
        await asyncio.sleep(2.0)


async def wakeup_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: listen while the application runs (after the pool exists)."""
    wakeup = app[WAKEUP]
    task = asyncio.get_running_loop().create_task(_listen_forever(app[DB_POOL], wakeup))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
