"""Run any aiohttp application on a free loopback port in a background thread.

For synchronous clients (schemathesis' requests transport, subprocesses)
that cannot share the test's event loop.  The application's cleanup
contexts run on the thread's own loop, exactly as under `microtome serve`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from aiohttp import web

from microtome.core.http import parser_limits


@contextmanager
def live_app(factory: Callable[[], web.Application]) -> Iterator[str]:
    """Yield 'http://127.0.0.1:PORT' of the running app; stop it (cleanly) on exit."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, object] = {}

    async def start() -> None:
        runner = web.AppRunner(factory(), access_log=None, **parser_limits())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["runner"] = runner
        state["port"] = runner.addresses[0][1]

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as e:  # surface start-up errors to the test
            state["error"] = e
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not started.wait(60):
        raise RuntimeError("server did not start within 60 s")
    if "error" in state:
        raise RuntimeError("server failed to start") from state["error"]  # type: ignore[misc]
    try:
        yield f"http://127.0.0.1:{state['port']}"
    finally:
        runner = state["runner"]
        fut = asyncio.run_coroutine_threadsafe(runner.cleanup(), loop)  # type: ignore[attr-defined]
        fut.result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
