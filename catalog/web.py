"""Wires the catalog into the aiohttp application: database, migrations, workers, routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from catalog import api_auth, api_images, api_jobs, api_projects, api_share, tus
from catalog.access import ACCESS, setup_access
from catalog.db import DB_POOL, DOWN_ERRORS, create_pool, start_embedded, unavailable
from catalog.jobs import recover_stale
from catalog.migrate import migrate
from catalog.openapi import SPEC
from catalog.ratelimit import LOGIN_THROTTLE, LoginThrottle
from catalog.state import CATALOG, CatalogState
from microtome.http import BODY_TIMEOUT, Handler, json_response
from microtome.settings import Settings
from pyramid import errors

log = logging.getLogger("catalog.web")
WORKERS: web.AppKey[object] = web.AppKey("catalog_workers", object)


@web.middleware
async def database_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A database that restarts or is unreachable is a 503 (retry), never a 500."""
    try:
        return await handler(request)
    except DOWN_ERRORS as exc:
        log.warning("database unavailable for %s %s: %s", request.method, request.path, exc)
        raise errors.Unavailable("database unavailable; retry shortly") from None
    except asyncpg.DataError as exc:
        # Values PostgreSQL refuses (out of range, bad encoding) are the client's fault.
        raise errors.InvalidRequest("invalid value", type(exc).__name__) from None
    except asyncpg.PostgresError as exc:
        if not unavailable(exc):
            raise
        log.warning("database unavailable for %s %s: %s", request.method, request.path, exc)
        raise errors.Unavailable("database unavailable; retry shortly") from None
    except TimeoutError:
        # Pool acquisition or a query timed out: the database is overloaded or gone.
        raise errors.Unavailable("database busy; retry shortly") from None


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(SPEC, headers={"Access-Control-Allow-Origin": "*"})


def setup_catalog(app: web.Application, settings: Settings) -> None:
    """Database pool, migrations, job workers (cleanup_ctx) and every /api route."""
    app[CATALOG] = CatalogState(settings)
    app[BODY_TIMEOUT] = settings.body_timeout_s
    app.middlewares.append(database_errors)
    setup_access(app, settings)
    # Revocations (logout, key and share-link revocation, user deletion) also end
    # the outage grace of the credential.
    app[ACCESS].principals.on_forget.append(app[CATALOG].forget_credential)
    app[LOGIN_THROTTLE] = LoginThrottle()
    tus.setup(app)

    async def database(app: web.Application) -> AsyncIterator[None]:
        from microtome.app import MIGRATION_DIRS

        dsn = settings.database_url or await start_embedded(settings.var_dir)
        pool = await create_pool(dsn)
        try:
            applied = await migrate(pool, MIGRATION_DIRS)
            if applied:
                log.info("database migrated: %s", ", ".join(applied))
            expired = await tus.remove_expired(pool, settings.uploads_dir)
            if expired:
                log.info("removed %d expired unfinished upload(s)", expired)
            recovered = await recover_stale(pool)
            if recovered:
                log.warning("re-queued %d job(s) whose worker had stopped", len(recovered))
            app[DB_POOL] = pool
            pool_of_workers = None
            if settings.job_workers > 0:
                from catalog.worker import WorkerPool

                pool_of_workers = WorkerPool(dsn, settings, settings.job_workers, db=pool)
                await pool_of_workers.start()
                app[WORKERS] = pool_of_workers
            try:
                yield
            finally:
                if pool_of_workers is not None:
                    await pool_of_workers.stop()
        finally:
            await pool.close()

    app.cleanup_ctx.append(database)
    app.router.add_get("/api/openapi.json", openapi_json)
    app.router.add_routes(api_auth.routes())
    app.router.add_routes(api_projects.routes())
    app.router.add_routes(api_images.routes())
    app.router.add_routes(api_share.routes())
    app.router.add_routes(api_jobs.routes())
    app.router.add_routes(tus.routes())
