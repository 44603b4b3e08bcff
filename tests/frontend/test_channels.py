"""Fluorescence: the channel panel drives the tile server's rendering parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.frontend.browser import (
    ADMIN,
    LiveServer,
    admin_project_slide,
    screenshot,
    ui_login,
    wait_tiles,
)


@pytest.fixture(scope="session")
def fluorescence(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from converters import convert

    out = tmp_path_factory.mktemp("fluo") / "multi-channel-z-series.ome.zarr"
    convert(testdata / "multi-channel-z-series.ome.tif", out)
    return out


def test_channel_panel_drives_rendering(live_server: LiveServer, context: Any, page: Any,
                                        fluorescence: Path) -> None:
    _csrf, _project, image_id = admin_project_slide(context, live_server, fluorescence,
                                                  project="Fluo", image="z-series")
    ui_login(page, *ADMIN, next_path=f"/viewer/{image_id}")
    wait_tiles(page, minimum=1)
    panel = page.locator("#channel-panel")
    expect(panel).to_be_visible()
    expect(panel.locator(".channel")).to_have_count(3)
    expect(page.locator("#plane-z")).to_have_attribute("max", "4")

    # Hiding the first channel reloads the tiles with only the other two.
    with page.expect_request(lambda r: "channels=1%2C2" in r.url or "channels=1,2" in r.url):
        page.uncheck("#ch-0")
    # Another z plane.
    with page.expect_request(lambda r: "z=4" in r.url and "_files/" in r.url):
        page.locator("#plane-z").fill("4")
    wait_tiles(page, minimum=1)
    screenshot(page, "12-channels")
