"""`microtome serve`: the whole application in one process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import socket
import sys
from collections.abc import Callable
from typing import Any

from microtome.core.remote import configure_remote_reads
from microtome.core.settings import Settings, from_env, warn_unknown


def port_problem(host: str, port: int) -> str | None:
    """A one-line reason why we cannot listen on host:port, or None if we can."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        return f"cannot resolve host {host!r}: {e.strerror}"
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return (f"port {port} on {host} is already in use (another Microtome?); "
                        f"stop it or choose another port with --port / PORT=")
            return f"cannot listen on {host}:{port}: {e.strerror}"
    return None


async def _serve(app: Any, host: str, port: int, announce: Any) -> None:
    """Until SIGINT/SIGTERM: the app on host:port, slow and idle clients guarded."""
    from microtome.core.http import parser_limits
    from microtome.core.netguard import start_site

    # Raised parser limits: long requests get our JSON error, not aiohttp's plain text.
    runner = await start_site(app, host, port, handle_signals=True, access_log=None,
                              **parser_limits())
    try:
        announce()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def _storage_problem(settings: Settings) -> str | None:
    """MICROTOME_STORAGE must be usable before we start: one clear line otherwise."""
    if settings.storage is None:
        return None
    from microtome.pyramid.stores import StoreUnusable, configure, open_store

    configure(settings.storage.deadline_s)
    try:
        open_store(settings.storage.url).check()
    except StoreUnusable as e:
        return f"MICROTOME_STORAGE {e}"
    return None


def run_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from microtome.app import create_app

    warn_unknown()
    # Bad MICROTOME_* values stop here, before anything starts, naming the variable.
    settings = from_env(host=args.host, port=args.port)
    configure_remote_reads(settings.remote)  # disk cache of remote chunks, TileDB's S3
    problem = port_problem(args.host, args.port) or _storage_problem(settings)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # pgserver logs every pg_ctl command line at INFO: noise for a lab user.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    url = f"http://{args.host}:{args.port}/"

    def announce() -> None:
        print(f"Microtome is running at {url}  (Ctrl-C to stop)", flush=True)

    app = create_app(settings)
    if settings.local_workers > 0:
        from microtome.local_worker import local_url, local_workers

        app.cleanup_ctx.append(local_workers(local_url(args.host, args.port),
                                             settings.local_workers))
    # uvloop when installed, as `microtome tiles` does: the same event loop for the
    # same tile path (the stdlib loop costs far more per request).
    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    with contextlib.suppress(ImportError):
        import uvloop
        factory = uvloop.new_event_loop
    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        asyncio.run(_serve(app, args.host, args.port, announce), loop_factory=factory)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="serve the whole application (API, tiles, web UI)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=run_serve)
