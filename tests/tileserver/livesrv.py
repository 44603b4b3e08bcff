"""Run the standalone tile app on a free loopback port in a background thread.

For sync HTTP clients (the IIIF validator, urllib) that cannot share the
test's event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiohttp import web

from tileserver.app import TileSettings, create_tiles_app


@contextmanager
def live_server(root: Path, settings: TileSettings | None = None) -> Iterator[str]:
    """Yield 'host:port' of a running server; stop it on exit."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, object] = {}

    async def start() -> None:
        runner = web.AppRunner(create_tiles_app(root, settings or TileSettings(threads=2)),
                               access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        state["port"] = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        state["runner"] = runner

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
    started.wait(30)
    if "error" in state:
        raise RuntimeError("server failed to start") from state["error"]  # type: ignore[misc]
    try:
        yield f"127.0.0.1:{state['port']}"
    finally:
        runner = state["runner"]
        fut = asyncio.run_coroutine_threadsafe(runner.cleanup(), loop)  # type: ignore[attr-defined]
        fut.result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
