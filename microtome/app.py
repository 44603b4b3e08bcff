"""Application assembly for `microtome serve`: catalog + tiles + annotations + UI.

The only module that knows every package: it passes the settings, the
migration folders and the merged OpenAPI document down to each of them.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web

from microtome.core.http import error_middleware, forwarded_middleware
from microtome.core.netguard import install as install_guard
from microtome.core.settings import Settings

SETTINGS = web.AppKey("settings", Settings)

_ROOT = Path(__file__).resolve().parent.parent
#: Numbered SQL migrations, applied in number order across these folders
#: (catalog 0001-0099, annotations 0100-0149, retrieval 0150-0199, analysis 0200+).
MIGRATION_DIRS: tuple[Path, ...] = (_ROOT / "catalog" / "migrations",
                                    _ROOT / "annotations" / "migrations",
                                    _ROOT / "retrieval" / "migrations",
                                    _ROOT / "analysis" / "migrations")


@cache  # built once: the document is a constant of the installed code
def openapi_document() -> dict[str, Any]:
    """The published /api document: the catalog's with the annotation API merged in."""
    from microtome.annotations.openapi import PATHS, SCHEMAS
    from microtome.annotations.openapi_review import PATHS as V_PATHS
    from microtome.annotations.openapi_review import SCHEMAS as V_SCHEMAS
    from microtome.catalog import openapi_alignments as alignments
    from microtome.catalog import openapi_analyses as analyses
    from microtome.catalog import openapi_collab as collab
    from microtome.catalog.openapi import build_spec
    from microtome.retrieval.openapi import PATHS as R_PATHS
    from microtome.retrieval.openapi import SCHEMAS as R_SCHEMAS

    return build_spec(extra_paths={**PATHS, **V_PATHS, **analyses.PATHS, **R_PATHS,
                                   **alignments.PATHS, **collab.PATHS},
                      extra_schemas={**SCHEMAS, **V_SCHEMAS, **analyses.SCHEMAS, **R_SCHEMAS,
                                     **alignments.SCHEMAS, **collab.SCHEMAS})


def create_app(settings: Settings) -> web.Application:
    """The whole application.  Every resource lives in a cleanup context."""
    # Imported here so that `microtome convert` does not pay for the web stack.
    from microtome.annotations import analysis_export
    from microtome.annotations.web import setup_annotations
    from microtome.catalog import api_alignments
    from microtome.catalog.api_analyses import setup_analyses
    from microtome.catalog.resolver import CatalogResolver
    from microtome.catalog.web import setup_catalog
    from microtome.frontend import setup_frontend
    from microtome.retrieval.web import setup_retrieval
    from microtome.tileserver.app import setup_tiles

    app = web.Application(
        middlewares=[forwarded_middleware(settings.trusted_proxies), error_middleware],
        client_max_size=64 * 1024**2)
    app[SETTINGS] = settings
    # Slow and idle clients: see core/netguard.py (active under `serve`).
    install_guard(app, settings.idle_timeout_s, settings.max_idle_connections)
    setup_catalog(app, settings, migration_dirs=MIGRATION_DIRS, openapi=openapi_document())
    setup_tiles(app, CatalogResolver(app), settings.tiles)
    setup_annotations(app)
    setup_analyses(app)
    app.router.add_routes(api_alignments.routes())  # side-by-side viewing
    app.router.add_routes(analysis_export.routes())
    setup_retrieval(app, settings)
    setup_frontend(app, settings)
    # Runs after every cleanup context has started (they are on_startup hooks
    # registered first): the long-lived start-up objects leave the GC's view.
    if settings.metrics_port:
        app.cleanup_ctx.append(_local_metrics(settings.metrics_port))
    app.on_startup.append(_freeze_gc)
    return app


def _local_metrics(port: int) -> Callable[[web.Application], AsyncIterator[None]]:
    """/metrics without login on 127.0.0.1:`port` (the public one is admin-only)."""

    async def listener(app: web.Application) -> AsyncIterator[None]:
        from microtome.tileserver.routes_extra import metrics_response

        async def metrics(_request: web.Request) -> web.Response:
            return metrics_response(app)

        local = web.Application()
        local.router.add_get("/metrics", metrics)
        runner = web.AppRunner(local, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield
        finally:
            await runner.cleanup()

    return listener


async def _freeze_gc(_app: web.Application) -> None:
    # A big import or a burst of requests triggers full collections that walk
    # the whole heap; the objects built at start-up never die, so exempt them.
    gc.freeze()
