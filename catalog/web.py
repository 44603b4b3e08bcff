"""Wires the catalog into the aiohttp application: database, migrations, workers, routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from aiohttp import web

from microtome.catalog import (
    api_accounts,
    api_auth,
    api_export,
    api_images,
    api_jobs,
    api_projects,
    api_share,
    api_tile_urls,
    api_trash,
    collab_web,
    dask_jobs,
    trash,
    tus,
)
from microtome.catalog.access import ACCESS, require_admin, setup_access
from microtome.catalog.db import DB_POOL, DOWN_ERRORS, create_pool, start_embedded, unavailable
from microtome.catalog.events import EVENTS, AccessEvents, listening
from microtome.catalog.jobs import recover_stale
from microtome.catalog.migrate import migrate
from microtome.catalog.openapi import SPEC
from microtome.catalog.ratelimit import (
    LOGIN_THROTTLE,
    MEMBER_LOOKUP_LIMIT,
    MEMBER_LOOKUPS,
    WINDOW,
    FailureCounter,
    LoginThrottle,
)
from microtome.catalog.ratelimit import cleanup as throttle_cleanup
from microtome.catalog.state import CATALOG, CatalogState
from microtome.catalog.storage import image_dir, remote_image_location
from microtome.catalog.upload_files import sweep_orphans
from microtome.catalog.upload_lock import POOL_SIZE, UPLOAD_LOCKS
from microtome.core.http import BODY_TIMEOUT, Handler, json_response
from microtome.core.pixels import PIXELS
from microtome.core.settings import Settings
from microtome.pyramid import errors

log = logging.getLogger("microtome.catalog.web")
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


#: This package's numbered SQL migrations (0001-0099).
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: The published OpenAPI document (the catalog's own unless the host merged more in).
OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("openapi", dict)


def _apply_event(app: web.Application) -> Callable[[str, Any], None]:
    """How one access event (catalog.events) evicts this process's caches."""

    def apply(kind: str, value: Any) -> None:
        state, principals = app[CATALOG], app[ACCESS].principals
        if kind == "image":
            state.drop_image(int(value))
            _close_image(app, int(value))
        elif kind == "cred":
            principals.pop(bytes.fromhex(str(value)))
            state.forget_credential(bytes.fromhex(str(value)))
        else:
            state.drop_access()
            # Share links and creators hold decisions made with the old rights.
            principals.evict(lambda k: isinstance(k, tuple) and k[0] in ("share", "uid"))
            if kind == "all":
                principals.clear()

    return apply


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _close_image(app: web.Application, image_id: int) -> None:
    """Drop the tile server's open handles on a changed or deleted image."""
    pixels = app.get(PIXELS)
    if pixels is not None:
        settings = app[CATALOG].settings
        pixels.forget(remote_image_location(settings.storage.url, image_id) if settings.storage
                      else image_dir(settings.images_dir, image_id))


_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _same_origin(origin: str, host: str) -> bool:
    """Does an Origin header name this host (scheme aside: a TLS-terminating proxy
    in front changes it, and the host is what a foreign site cannot fake)?"""
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    default = {"http": ":80", "https": ":443"}[parts.scheme]
    return parts.netloc.lower().removesuffix(default) == host.lower().removesuffix(default)


@web.middleware
async def same_origin_writes(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Writes to the API from another site are refused (403): login CSRF, first-admin
    creation and cookie-authenticated changes alike.  Scripts with an API key are
    not concerned (a bearer key is never sent by the browser on its own)."""
    if request.path == "/metrics":
        # Load, cache and image counts are for operators (or the local listener).
        await require_admin(request)
    if (request.method in _UNSAFE and request.path.startswith("/api/")
            and not request.headers.get("Authorization", "").lower().startswith("bearer ")):
        origin = request.headers.get("Origin")
        if request.headers.get("Sec-Fetch-Site") == "cross-site" or (
                origin is not None and not _same_origin(origin, request.host)):
            raise errors.Forbidden("cross-site request refused", {"origin": origin})
    return await handler(request)


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(request.app[OPENAPI], headers={"Access-Control-Allow-Origin": "*"})


def setup_catalog(app: web.Application, settings: Settings, *,
                  migration_dirs: Sequence[Path] = (MIGRATIONS,),
                  openapi: dict[str, Any] | None = None) -> None:
    """Database pool, migrations, job workers (cleanup_ctx) and every /api route.

    The host passes every package's migration folder and the merged OpenAPI
    document: the catalog does not know which other packages share its database.
    """
    app[OPENAPI] = openapi if openapi is not None else SPEC
    app[CATALOG] = CatalogState(settings)
    events = app[EVENTS] = AccessEvents(_apply_event(app))
    app[CATALOG].publish = events.publish
    app[BODY_TIMEOUT] = settings.body_timeout_s
    app.middlewares.append(same_origin_writes)
    app.middlewares.append(database_errors)
    setup_access(app, settings)
    # Revocations (logout, key and share-link revocation, user deletion) also end
    # the outage grace of the credential.
    app[ACCESS].principals.on_forget.append(app[CATALOG].forget_credential)
    app[LOGIN_THROTTLE] = LoginThrottle()
    app[MEMBER_LOOKUPS] = FailureCounter("member", MEMBER_LOOKUP_LIMIT, WINDOW)

    async def database(app: web.Application) -> AsyncIterator[None]:
        dsn = settings.database_url or await start_embedded(settings.var_dir)
        pool = await create_pool(dsn)
        stack = contextlib.AsyncExitStack()
        # tus PATCHes hold an advisory lock for their whole length: their own
        # connections, so long uploads never starve the API of pool connections.
        locks = await create_pool(dsn, min_size=1, max_size=POOL_SIZE)
        stack.push_async_callback(locks.close)
        app[UPLOAD_LOCKS] = locks
        try:
            applied = await migrate(pool, migration_dirs)
            if applied:
                log.info("database migrated: %s", ", ".join(applied))
            expired = await tus.remove_expired(pool, settings.uploads_dir)
            if expired:
                log.info("removed %d expired unfinished upload(s)", expired)
            await throttle_cleanup(pool)
            orphans = await sweep_orphans(pool, settings.uploads_dir)
            if orphans:
                log.info("removed %d partial upload file(s) without an upload", orphans)
            recovered = await recover_stale(pool)
            if recovered:
                log.warning("re-queued %d job(s) whose worker had stopped", len(recovered))
            app[DB_POOL] = pool
            await stack.enter_async_context(listening(dsn, pool, events))
            await trash.enqueue_purge(pool)  # what fell due while the server was down
            stack.push_async_callback(_cancel, asyncio.create_task(
                trash.purge_scheduler(pool)))
            pool_of_workers = None
            if settings.job_workers > 0:
                await dask_jobs.report(settings.dask_scheduler)
                from microtome.catalog.worker import WorkerPool

                pool_of_workers = WorkerPool(dsn, settings, settings.job_workers, db=pool)
                await pool_of_workers.start()
                app[WORKERS] = pool_of_workers
            try:
                yield
            finally:
                if pool_of_workers is not None:
                    await pool_of_workers.stop()
        finally:
            await stack.aclose()
            await pool.close()

    app.cleanup_ctx.append(database)
    collab_web.setup(app, settings)  # properties, attachments, activity, follow mode
    app.router.add_get("/api/openapi.json", openapi_json)
    app.router.add_routes(api_auth.routes())
    app.router.add_routes(api_accounts.routes())
    app.router.add_routes(api_projects.routes())
    app.router.add_routes(api_images.routes())
    app.router.add_routes(api_share.routes())
    app.router.add_routes(api_jobs.routes())
    app.router.add_routes(tus.routes())
    app.router.add_routes(api_tile_urls.routes())
    app.router.add_routes(api_trash.routes())
    api_export.setup(app)  # GET /api/images/{id}/export (portable OME-Zarr zip)
