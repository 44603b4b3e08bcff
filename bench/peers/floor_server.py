"""The tile floor: a minimal aiohttp handler answering every Deep Zoom tile URL with
one fixed JPEG held in memory.

It runs like `microtome tiles --workers N`: N processes, each binding the port
with SO_REUSEPORT (no shared accept queue), uvloop when installed, backlog
1024, no access log.  Whatever Microtome spends per tile above this server is
the cost of its own work (routing, resolving the image, the cache, reading
stored chunks), not of aiohttp or the event loop.

    python -m bench.peers.floor_server BODY.jpg --port P [--processes N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from aiohttp import web


def make_app(body: bytes) -> web.Application:
    async def tile(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="image/jpeg")

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get(r"/dzi/{id}_files/{rest:.+}", tile)
    return app


def _worker(body: bytes, host: str, port: int, reuse_port: bool) -> None:
    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    with contextlib.suppress(ImportError):  # as in tileserver.cli
        import uvloop
        factory = uvloop.new_event_loop

    async def main() -> None:
        runner = web.AppRunner(make_app(body), handle_signals=True, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port, backlog=1024)
        await site.start()
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        asyncio.run(main(), loop_factory=factory)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("body", type=Path, help="the JPEG every tile request gets")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    body = args.body.read_bytes()
    if args.processes <= 1 or args.worker:
        _worker(body, args.host, args.port, reuse_port=args.worker)
        return 0
    children = [subprocess.Popen([sys.executable, "-m", "bench.peers.floor_server",
                                  str(args.body), "--host", args.host, "--port",
                                  str(args.port), "--worker"])
                for _ in range(args.processes)]

    def stop(*_: object) -> None:
        for c in children:
            with contextlib.suppress(ProcessLookupError):
                c.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for c in children:
        c.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
