"""Shared plumbing for the peer tile servers: DZI geometry and the aiohttp skeleton.

Each peer exposes the same URL shape as Microtome's Deep Zoom routes so one
request list drives all of them:
``/dzi/{id}.dzi``, ``/dzi/{id}_files/{level}/{col}_{row}.jpg`` and
``/thumbnail.jpg?size=N`` (the longest side, like IIIF ``!N,N``).
The image id is ignored: a peer serves exactly one slide.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import signal
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

TILE_RE = re.compile(r"^(\d+)/(\d+)_(\d+)\.jpe?g$")
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)


def dzi_max_level(width: int, height: int) -> int:
    return math.ceil(math.log2(max(width, height)))


def dzi_xml(width: int, height: int, tile: int) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" Format="jpg" '
        f'Overlap="0" TileSize="{tile}"><Size Width="{width}" Height="{height}"/></Image>'
    )


def build_app(
    get_tile: Callable[[int, int, int], bytes | None],
    get_thumbnail: Callable[[int], bytes],
    dzi: str,
    threads: int,
) -> web.Application:
    """An app whose handlers run the (blocking) tile functions in a thread pool."""

    async def executor_ctx(app: web.Application):
        app[EXECUTOR] = ThreadPoolExecutor(threads)
        yield
        app[EXECUTOR].shutdown(wait=False, cancel_futures=True)

    async def dzi_handler(request: web.Request) -> web.Response:
        return web.Response(text=dzi, content_type="application/xml")

    async def tile_handler(request: web.Request) -> web.Response:
        m = TILE_RE.match(request.match_info["rest"])
        if not m:
            raise web.HTTPNotFound()
        level, col, row = (int(g) for g in m.groups())
        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(request.app[EXECUTOR], get_tile, level, col, row)
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type="image/jpeg")

    async def thumb_handler(request: web.Request) -> web.Response:
        size = int(request.query.get("size", "256"))
        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(request.app[EXECUTOR], get_thumbnail, size)
        return web.Response(body=body, content_type="image/jpeg")

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.cleanup_ctx.append(executor_ctx)
    app.router.add_get("/health", health)
    app.router.add_get("/thumbnail.jpg", thumb_handler)
    app.router.add_get(r"/dzi/{id}.dzi", dzi_handler)
    app.router.add_get(r"/dzi/{id}_files/{rest:.+}", tile_handler)
    return app


def parse_args(doc: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("slide")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2 * (os.cpu_count() or 1))
    ap.add_argument("--quality", type=int, default=75)
    ap.add_argument("--processes", type=int, default=1,
                    help="server processes sharing the port (each with its own thread pool)")
    return ap.parse_args()


def serve(make_app: Callable[[], web.Application], host: str, port: int,
          processes: int = 1) -> None:
    """Run the app in `processes` processes that share one listening socket.

    Each child builds its own app after the fork (slide handles are not shared
    across processes), exactly as Microtome's tile workers do.  The parent only
    waits; SIGTERM/SIGINT to it stops the children."""
    if processes <= 1:
        web.run_app(make_app(), host=host, port=port, access_log=None, print=None)
        return
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    children = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:
            try:
                web.run_app(make_app(), sock=sock, access_log=None, print=None)
            finally:
                os._exit(0)
        children.append(pid)

    def stop(*_: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
