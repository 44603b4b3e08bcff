"""Serves the web UI: a few HTML pages and their static assets from ``frontend/``.

The pages are plain HTML + ES modules (no server-side templating): every page
fetches what it shows from ``/api``, so this module only maps URLs to files.
Pages are sent with ``no-cache`` (always revalidated, so a deploy is seen at
once); assets under ``/static`` are revalidated too (their names carry no
content hash) except vendored libraries, whose version only changes with
``npm ci`` and can be cached for a day.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from microtome.core.settings import Settings
from microtome.pyramid import errors

FRONTEND_DIR = web.AppKey("frontend_dir", Path)

#: URL pattern → HTML file under ``frontend/static``.  The page's script reads
#: ids from ``location`` itself.
PAGES: dict[str, str] = {
    "/": "index.html",
    "/login": "login.html",
    "/projects/{project_id}": "project.html",
    "/projects/{project_id}/dashboard": "dashboard.html",
    "/viewer/{image_id}": "viewer.html",
    "/viewer.html": "viewer.html",
    "/compare": "compare.html",
    "/share/{token}": "viewer.html",
    "/keys": "keys.html",
    "/links": "links.html",
    "/trash": "trash.html",
    "/users": "users.html",
    "/account": "account.html",
    "/reset": "reset.html",
}

_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_VENDOR_MAX_AGE = 86400


def _static_root(app: web.Application) -> Path:
    return app[FRONTEND_DIR] / "static"


def _page_handler(filename: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def page(request: web.Request) -> web.StreamResponse:
        # FileResponse stats the file in an executor; a missing page is a 404.
        return web.FileResponse(_static_root(request.app) / filename, headers=_PAGE_HEADERS)

    page.__name__ = f"page_{filename.replace('.', '_')}"
    return page


def resolve_asset(root: Path, rel: str) -> Path | None:
    """The file under ``root`` named by the URL tail ``rel``, or None.

    Rejects anything that would leave ``root`` (``..``, absolute paths,
    symlinks pointing outside) and directories.
    """
    if not rel or rel.startswith("/") or "\\" in rel or "\x00" in rel:
        return None
    root = root.resolve()
    try:
        path = (root / rel).resolve()
        path.relative_to(root)
    except (ValueError, OSError):
        return None
    return path if path.is_file() else None


async def static_asset(request: web.Request) -> web.StreamResponse:
    rel = request.match_info["path"]
    # resolve() and is_file() touch the disk: keep them off the event loop.
    path = await asyncio.get_running_loop().run_in_executor(
        None, resolve_asset, _static_root(request.app), rel)
    if path is None:
        raise errors.NotFound("asset not found", rel)
    cache = (f"public, max-age={_VENDOR_MAX_AGE}" if rel.startswith("vendor/")
             else "no-cache")
    return web.FileResponse(path, headers={"Cache-Control": cache,
                                           "X-Content-Type-Options": "nosniff"})


async def favicon(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(_static_root(request.app) / "img" / "favicon.svg",
                             headers={"Cache-Control": "public, max-age=86400"})


def setup_frontend(app: web.Application, settings: Settings) -> None:
    """Register the UI pages and ``/static/...`` on ``app``."""
    app[FRONTEND_DIR] = Path(settings.frontend_dir)
    for pattern, filename in PAGES.items():
        app.router.add_get(pattern, _page_handler(filename))
    app.router.add_get("/static/{path:.+}", static_asset)
    app.router.add_get("/favicon.ico", favicon)
