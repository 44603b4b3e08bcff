"""`microtome tiles`: the tile server alone over a folder, in N processes.

Each worker process binds its own socket with SO_REUSEPORT, so the kernel
spreads connections over the workers without a shared accept queue.  The
parent checks the port first (clear message, exit 1 when it is taken),
starts the workers and restarts one that dies.
"""

from __future__ import annotations

import argparse
import errno
import logging
import multiprocessing as mp
import os
import signal
import socket
import sys
import time
from dataclasses import replace
from pathlib import Path

from microtome.core.settings import (
    GuardSettings,
    TileSettings,
    guard_settings_from_env,
    remote_read_settings_from_env,
    storage_deadline_from_env,
    tile_settings_from_env,
    trusted_proxies_from_env,
    warn_unknown,
)
from microtome.pyramid.stores import is_remote

log = logging.getLogger("microtome.tiles")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "tiles", help="serve DZI/IIIF tiles from a folder of *.ome.zarr images (no database)",
        description="Tile server alone: the image id is the path under --root without "
                    ".ome.zarr.")
    p.add_argument("--root", required=True,
                   help="folder of *.ome.zarr images, or s3://bucket/prefix (credentials and "
                        "endpoint from the AWS_* variables)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1,
                   help="processes sharing the port (default 1; use the number of cores)")
    p.add_argument("--threads", type=int, default=None,
                   help="decode/encode threads per process (default: cores / workers)")
    p.add_argument("--cache-mb", type=int, default=None, help="tile cache per process, MiB")
    p.set_defaults(func=run)


def _check_port(host: str, port: int) -> str | None:
    """None when (host, port) can be bound with SO_REUSEPORT, else a message."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return f"cannot resolve host {host!r}"
    family, _, _, _, addr = infos[0]
    # SO_REUSEPORT lets a second server of the same user bind silently: connect first.
    probe_host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(str(addr[0]), str(addr[0]))
    try:
        with socket.create_connection((probe_host, port), timeout=0.5):
            return f"port {port} on {host} is already in use"
    except OSError:
        pass
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(addr)  # no listen(): the probe must never receive connections
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return f"port {port} on {host} is already in use"
        if e.errno == errno.EACCES:
            return f"no permission to use port {port} on {host}"
        return f"cannot bind {host}:{port}: {e.strerror}"
    finally:
        s.close()
    return None


def _serve(root: Path | str, host: str, port: int, settings: TileSettings,
           trusted_proxies: tuple[str, ...], guard: GuardSettings, reuse_port: bool) -> None:
    """One worker process: an event loop serving the standalone app until SIGINT/SIGTERM,
    slow and idle clients cut off (core.netguard)."""
    import asyncio
    import contextlib
    from collections.abc import Callable

    from aiohttp import web

    from microtome.core.http import parser_limits
    from microtome.core.netguard import start_site
    from microtome.tileserver.app import create_tiles_app

    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    with contextlib.suppress(ImportError):  # optional speed-up
        import uvloop
        factory = uvloop.new_event_loop

    from microtome.core.remote import configure_remote_reads
    from microtome.pyramid import stores

    stores.configure(storage_deadline_from_env())
    configure_remote_reads(remote_read_settings_from_env())  # the tiles command's section

    async def main() -> None:
        app = create_tiles_app(root, settings, trusted_proxies, guard)
        runner = await start_site(app, host, port,
                                  {"reuse_port": reuse_port, "backlog": 1024},
                                  handle_signals=True, access_log=None, **parser_limits())
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        asyncio.run(main(), loop_factory=factory)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    problem = _check_root(args.root)
    if problem:
        print(f"error: --root {problem[1]}", file=sys.stderr)
        return problem[0]
    root: Path | str = args.root if is_remote(args.root) else Path(args.root).resolve()
    if args.workers < 1 or not 0 < args.port < 65536:
        print("error: --workers must be >= 1 and --port in 1..65535", file=sys.stderr)
        return 2
    if (args.threads is not None and args.threads < 1) or (args.cache_mb or 0) < 0:
        print("error: --threads must be >= 1 and --cache-mb >= 0", file=sys.stderr)
        return 2
    warn_unknown()
    # Bad MICROTOME_* values stop here with a message naming the variable.
    settings = _process_settings(args)
    taken = _check_port(args.host, args.port)
    if taken:
        print(f"error: {taken}", file=sys.stderr)
        return 1
    worker_args = (root, args.host, args.port, settings, trusted_proxies_from_env(),
                   guard_settings_from_env(), True)
    print(f"microtome tiles: serving {root} on http://{args.host}:{args.port} "
          f"({args.workers} worker(s), {settings.threads} threads each)", file=sys.stderr)
    if args.workers == 1:
        _serve(*worker_args)
        return 0
    return _supervise(args.workers, worker_args)


def _check_root(root: str) -> tuple[int, str] | None:
    """None when ``root`` can be served, else (exit code, why not): checked once, before
    any worker starts, so a missing bucket or refused credentials is one clear error."""
    from microtome.pyramid.errors import InvalidRequest
    from microtome.pyramid.stores import StoreUnusable, check_location, configure, open_store

    try:
        check_location(root)
    except InvalidRequest as e:
        return 2, e.message
    if not is_remote(root):
        return None if Path(root).is_dir() else (2, f"{root} is not a directory")
    configure(storage_deadline_from_env())
    try:
        open_store(root).check()
    except StoreUnusable as e:
        return 1, str(e)
    return None


def _process_settings(args: argparse.Namespace) -> TileSettings:
    """Per-process settings: flags win over MICROTOME_TILE_* variables."""
    env = tile_settings_from_env(workers=args.workers)
    threads = args.threads or env.threads
    cache_bytes = env.cache_bytes if args.cache_mb is None else args.cache_mb * 1024**2
    return replace(env, threads=threads, cache_bytes=cache_bytes)


def _supervise(n: int, worker_args: tuple[object, ...]) -> int:
    ctx = mp.get_context("spawn")
    procs: list = []  # type: ignore[type-arg]
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(n):
        p = ctx.Process(target=_serve, args=worker_args, daemon=True)
        p.start()
        procs.append(p)
    restarts: list[float] = []
    while not stopping:
        time.sleep(0.2)
        for i, p in enumerate(procs):
            if p.is_alive() or stopping:
                continue
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < 60] + [now]
            if len(restarts) > 5 * n:
                print("error: workers keep dying; giving up", file=sys.stderr)
                stopping = True
                break
            log.warning("worker %s exited with %s; restarting", p.pid, p.exitcode)
            procs[i] = ctx.Process(target=_serve, args=worker_args, daemon=True)
            procs[i].start()
    for p in procs:
        if p.is_alive() and p.pid is not None:
            os.kill(p.pid, signal.SIGINT)  # aiohttp shuts down gracefully on SIGINT
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
    return 0
