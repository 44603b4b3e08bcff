"""Collaboration tests: the catalog and annotation APIs on a populated world."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import DummyCookieJar, web
from aiohttp.test_utils import TestClient

from microtome.annotations.web import setup_annotations
from microtome.core.settings import Settings
from tests.catalog.conftest import ClientFactory, make_app, make_settings, small_pyramid  # noqa: F401
from tests.catalog.world import World, build_world


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


def full_app(settings: Settings) -> web.Application:
    app = make_app(settings)
    setup_annotations(app)
    return app


@pytest.fixture
async def client(aiohttp_client: ClientFactory, settings: Settings) -> TestClient:
    return await aiohttp_client(full_app(settings), cookie_jar=DummyCookieJar())


@pytest.fixture
async def world(client: TestClient, settings: Settings, database_url: str,
                small_pyramid: Path) -> World:  # noqa: F811
    return await build_world(client, settings, database_url, small_pyramid)
