"""Catalog test helpers: an app on a fresh migrated database, users with roles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import DummyCookieJar, web
from aiohttp.test_utils import TestClient

from microtome.app import MIGRATION_DIRS, openapi_document
from microtome.catalog.web import setup_catalog
from microtome.core.http import error_middleware
from microtome.core.settings import Settings
from tests.catalog.helpers import SECRET


def make_settings(tmp_path: Path, database_url: str, **kw: Any) -> Settings:
    # No background retrieval indexing unless a test asks for it (it would describe
    # the annotations of every test that makes some on a real slide).
    values: dict[str, Any] = {"var_dir": tmp_path / "var", "database_url": database_url,
                              "secret_key": SECRET, "job_workers": 0,
                              "retrieval_index_threads": 0}
    values.update(kw)
    return Settings(**values)


def make_app(settings: Settings, tiles: bool = False) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    setup_catalog(app, settings, migration_dirs=MIGRATION_DIRS, openapi=openapi_document())
    if tiles:
        from microtome.catalog.resolver import CatalogResolver
        from microtome.tileserver.app import setup_tiles

        setup_tiles(app, CatalogResolver(app), settings.tiles)
    return app


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


ClientFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def client(aiohttp_client: ClientFactory, settings: Settings) -> TestClient:
    # No cookie jar: every request carries exactly the credentials a test gives it.
    return await aiohttp_client(make_app(settings), cookie_jar=DummyCookieJar())


@pytest.fixture(scope="session")
def small_pyramid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real converted OME-Zarr of a generated 700x500 RGB image (converted once)."""
    import numpy as np
    import tifffile

    from microtome.converters import convert

    root = tmp_path_factory.mktemp("pyramid")
    yy, xx = np.mgrid[0:500, 0:700]
    rgb = np.stack([(xx % 256), (yy % 256), ((xx + yy) % 256)], axis=-1).astype(np.uint8)
    src = root / "gradient.tif"
    tifffile.imwrite(src, rgb, photometric="rgb")
    dst = root / "gradient.ome.zarr"
    convert(src, dst)
    return dst


@pytest.fixture
async def tile_client(aiohttp_client: ClientFactory, settings: Settings) -> TestClient:
    """The catalog plus the tile routes, resolving through CatalogResolver."""
    return await aiohttp_client(make_app(settings, tiles=True), cookie_jar=DummyCookieJar())
