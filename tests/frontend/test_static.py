"""setup_frontend: pages, assets, cache headers, no escape from frontend/static."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from microtome.core.http import error_middleware
from microtome.core.settings import Settings
from microtome.frontend import resolve_asset, setup_frontend


def _app() -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    setup_frontend(app, Settings())
    return app


async def test_pages_and_assets(aiohttp_client: Any) -> None:
    client = await aiohttp_client(_app())
    for path in ("/", "/login", "/projects/3", "/viewer/12", "/viewer.html?id=4", "/keys"):
        r = await client.get(path)
        assert r.status == 200, path
        assert r.content_type == "text/html"
        assert r.headers["Cache-Control"] == "no-cache"
    r = await client.get("/viewer/12")
    assert "openseadragon.min.js" in await r.text()
    r = await client.get("/static/js/api.js")
    assert r.status == 200 and r.headers["Cache-Control"] == "no-cache"
    assert "javascript" in r.content_type
    r = await client.get("/favicon.ico")
    assert r.status == 200


async def test_vendor_is_built_cached_and_gzipped(aiohttp_client: Any) -> None:
    client = await aiohttp_client(_app())
    r = await client.get("/static/vendor/openseadragon/openseadragon.min.js",
                         headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert r.status == 200, "run `npm ci && npm run build` in frontend/ (make does)"
    assert r.headers["Cache-Control"].startswith("public, max-age=")
    assert r.headers.get("Content-Encoding") == "gzip"
    r = await client.get("/static/vendor/openseadragon/images/home_rest.png")
    assert r.status == 200 and r.content_type == "image/png"


async def test_missing_and_escaping_paths_are_json_404(aiohttp_client: Any) -> None:
    client = await aiohttp_client(_app())
    for path in ("/static/js/nope.js", "/static/%2e%2e/%2e%2e/pyproject.toml",
                 "/static/..%2f..%2fpyproject.toml", "/static/js"):
        r = await client.get(path)
        assert r.status == 404, path
        body = await r.json()
        assert body["error"] and "/work" not in str(body)


def test_resolve_asset_stays_inside(tmp_path: Any) -> None:
    root = tmp_path / "static"
    (root / "js").mkdir(parents=True)
    (root / "js" / "a.js").write_text("x")
    (tmp_path / "secret.txt").write_text("s")
    (root / "link").symlink_to(tmp_path / "secret.txt")
    assert resolve_asset(root, "js/a.js") == (root / "js" / "a.js").resolve()
    for bad in ("../secret.txt", "/etc/passwd", "js", "link", "js/../../secret.txt", "a\\b",
                "", "js/a.js\x00"):
        assert resolve_asset(root, bad) is None, bad
