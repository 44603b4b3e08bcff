"""Tile routes on an aiohttp application: embedded (`setup_tiles`) or standalone."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from microtome.core.http import error_middleware, forwarded_middleware
from microtome.core.netguard import install as install_guard
from microtome.core.pixels import PIXELS
from microtome.core.settings import GuardSettings
from microtome.pyramid.reader import Pyramid, configure_decoded_cache

from . import routes_dzi, routes_extra, routes_histogram, routes_iiif, routes_msi, routes_raw
from .keys import RESOLVER, SERVICE
from .metrics import METRICS, Metrics
from .resolver import FolderResolver, Resolver
from .responses import preflight
from .service import TileService
from .settings import TileSettings

T = TypeVar("T")

__all__ = ["TileSettings", "create_tiles_app", "setup_tiles"]

#: URL prefixes whose every path answers CORS preflights.
PREFLIGHT_PREFIXES = ("/iiif", "/dzi", "/images")


class _Pixels:
    """`core.pixels.PixelSource` over this app's resolver and tile service."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    async def open_image(self, request: web.Request, image_id: str) -> Pyramid:
        ref = await self.app[RESOLVER].resolve(request, image_id)
        return await self.app[SERVICE].open(ref)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.app[SERVICE].run(fn, *args)

    def forget(self, root: Path | str) -> None:
        svc = self.app.get(SERVICE)
        if svc is not None:
            svc.images.evict(lambda key: isinstance(key, tuple)
                             and _under(key[0], root))


def _under(location: Path | str, root: Path | str) -> bool:
    """``location`` is ``root`` or inside it (local paths and store URLs alike)."""
    if isinstance(location, Path) and isinstance(root, Path):
        return location.is_relative_to(root)
    loc, top = str(location).rstrip("/"), str(root).rstrip("/")
    return loc == top or loc.startswith(top + "/")


def setup_tiles(app: web.Application, resolver: Resolver, settings: TileSettings) -> None:
    """Add the tile routes, their state and their cleanup to ``app``."""
    app[RESOLVER] = resolver
    app[PIXELS] = _Pixels(app)
    app[METRICS] = Metrics()

    async def tile_service(app: web.Application) -> AsyncIterator[None]:
        configure_decoded_cache(settings.decoded_cache_bytes)
        svc = TileService(settings, app[METRICS])
        app[SERVICE] = svc
        yield
        svc.close()

    app.cleanup_ctx.append(tile_service)
    before = len(app.router.resources())
    routes_dzi.add_routes(app)
    routes_iiif.add_routes(app)
    routes_extra.add_routes(app)
    routes_histogram.add_routes(app)
    routes_raw.add_routes(app)
    routes_msi.add_routes(app)
    # Preflight on exactly our tile resources: a catch-all OPTIONS route would
    # turn a GET of a non-existent path into a 405 instead of a 404.
    for resource in list(app.router.resources())[before:]:
        info = resource.get_info()
        path = str(info.get("formatter") or info.get("path") or "")
        if isinstance(resource, web.Resource) and path.startswith(PREFLIGHT_PREFIXES):
            resource.add_route("OPTIONS", preflight)


def create_tiles_app(root: Path | str, settings: TileSettings | None = None,
                     trusted_proxies: Sequence[str] = (),
                     guard: GuardSettings | None = None) -> web.Application:
    """The standalone tile server over a folder of ``*.ome.zarr`` images.

    X-Forwarded-* headers (which decide the URLs in info.json and .dzi answers)
    are believed only from `trusted_proxies`, as in `microtome serve`; with
    `guard`, slow and idle clients are cut off once the app runs under
    `core.netguard.start_site` (as `microtome tiles` does).
    """
    settings = settings or TileSettings()
    # No client bodies are accepted: keep the limit small.
    app = web.Application(middlewares=[forwarded_middleware(trusted_proxies), error_middleware],
                          client_max_size=64 * 1024)
    if guard is not None:
        install_guard(app, guard.idle_timeout_s, guard.max_idle_connections)
    setup_tiles(app, FolderResolver(root, ttl=settings.resolver_ttl), settings)
    return app
