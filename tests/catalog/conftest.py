"""Catalog test helpers: an app on a fresh migrated database, users with roles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from catalog.web import setup_catalog
from microtome.http import error_middleware
from microtome.settings import Settings

SECRET = b"test-secret-key-0123456789abcdef"


def make_settings(tmp_path: Path, database_url: str, **kw: Any) -> Settings:
    values: dict[str, Any] = {"var_dir": tmp_path / "var", "database_url": database_url,
                              "secret_key": SECRET, "job_workers": 0}
    values.update(kw)
    return Settings(**values)


def make_app(settings: Settings, tiles: bool = False) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    setup_catalog(app, settings)
    if tiles:
        from catalog.resolver import CatalogResolver
        from tileserver.app import TileSettings, setup_tiles

        setup_tiles(app, CatalogResolver(app), TileSettings.from_settings(settings))
    return app


@dataclass
class Actor:
    """A logged-in API client: session cookie + CSRF header, or an API key."""

    name: str
    user_id: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


ClientFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def client(aiohttp_client: ClientFactory, settings: Settings) -> TestClient:
    return await aiohttp_client(make_app(settings))
