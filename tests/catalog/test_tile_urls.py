"""MICROTOME_TILE_URLS: validated at start-up, handed out at /api/tile-urls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient

from microtome.core.settings import SettingsError, dask_scheduler_from_env, tile_urls_from_env
from tests.catalog.conftest import make_app, make_settings
from tests.catalog.helpers import ANON, call


def test_tile_urls_and_scheduler_are_validated() -> None:
    assert tile_urls_from_env({}) == ()
    assert tile_urls_from_env({"MICROTOME_TILE_URLS": " https://t1.example.org/, http://t2:81"}) \
        == ("https://t1.example.org", "http://t2:81")
    for bad in ("ftp://x", "t1.example.org", "https://x/?a=1", ",".join(["http://h"] * 17)):
        with pytest.raises(SettingsError, match="MICROTOME_TILE_URLS"):
            tile_urls_from_env({"MICROTOME_TILE_URLS": bad})
    assert dask_scheduler_from_env({"MICROTOME_DASK_SCHEDULER": "tcp://10.0.0.5:8786"}) \
        == "tcp://10.0.0.5:8786"
    with pytest.raises(SettingsError, match="MICROTOME_DASK_SCHEDULER"):
        dask_scheduler_from_env({"MICROTOME_DASK_SCHEDULER": "10.0.0.5:8786"})


async def test_catalog_hands_out_the_tile_urls(aiohttp_client: Any, tmp_path: Path,
                                               database_url: str, client: TestClient) -> None:
    status, body = await call(client, ANON, "GET", "/api/tile-urls")
    assert status == 200 and body == {"items": []}
    urls = ("https://t1.example.org", "https://t2.example.org")
    sharded = await aiohttp_client(make_app(make_settings(tmp_path / "b", database_url,
                                                          tile_urls=urls)),
                                   cookie_jar=DummyCookieJar())
    status, body = await call(sharded, ANON, "GET", "/api/tile-urls")
    assert status == 200 and body == {"items": list(urls)}
