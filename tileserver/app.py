"""Tile routes on an aiohttp application: embedded (`setup_tiles`) or standalone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from microtome.http import error_middleware

from . import routes_dzi, routes_extra, routes_iiif, routes_msi
from .keys import RESOLVER, SERVICE
from .metrics import METRICS, Metrics
from .resolver import FolderResolver, Resolver
from .responses import preflight
from .service import TileService
from .settings import TileSettings

__all__ = ["TileSettings", "create_tiles_app", "setup_tiles"]

#: URL prefixes whose every path answers CORS preflights.
PREFLIGHT_PREFIXES = ("/iiif", "/dzi", "/images")


def setup_tiles(app: web.Application, resolver: Resolver, settings: TileSettings) -> None:
    """Add the tile routes, their state and their cleanup to ``app``."""
    app[RESOLVER] = resolver
    app[METRICS] = Metrics()

    async def tile_service(app: web.Application) -> AsyncIterator[None]:
        svc = TileService(settings, app[METRICS])
        app[SERVICE] = svc
        yield
        svc.close()

    app.cleanup_ctx.append(tile_service)
    before = len(app.router.resources())
    routes_dzi.add_routes(app)
    routes_iiif.add_routes(app)
    routes_extra.add_routes(app)
    routes_msi.add_routes(app)
    # Preflight on exactly our tile resources: a catch-all OPTIONS route would
    # turn a GET of a non-existent path into a 405 instead of a 404.
    for resource in list(app.router.resources())[before:]:
        info = resource.get_info()
        path = str(info.get("formatter") or info.get("path") or "")
        if isinstance(resource, web.Resource) and path.startswith(PREFLIGHT_PREFIXES):
            resource.add_route("OPTIONS", preflight)


def create_tiles_app(root: Path, settings: TileSettings | None = None) -> web.Application:
    """The standalone tile server over a folder of ``*.ome.zarr`` images."""
    settings = settings or TileSettings()
    # No client bodies are accepted: keep the limit small.
    app = web.Application(middlewares=[error_middleware], client_max_size=64 * 1024)
    setup_tiles(app, FolderResolver(Path(root), ttl=settings.resolver_ttl), settings)
    return app
