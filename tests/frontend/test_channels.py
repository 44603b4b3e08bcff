"""Fluorescence: the channel panel drives the tile server's rendering parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.frontend.browser import (
    ADMIN,
    LiveServer,
    admin_project_slide,
    screenshot,
    ui_login,
    wait_tiles,
)


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
    # The last shown channel cannot be hidden (an empty choice is a 400 from the server).
    with page.expect_request(lambda r: "channels=2" in r.url and "_files/" in r.url):
        page.uncheck("#ch-1")
    wait_tiles(page, minimum=1)
    bad: list[str] = []
    page.on("request", lambda r: bad.append(r.url) if "channels=&" in r.url
            or r.url.endswith("channels=") else None)
    page.click("#ch-2")
    page.wait_for_timeout(600)
    expect(page.locator("#ch-2")).to_be_checked()
    assert bad == []
    screenshot(page, "12-channels")


def test_z_plane_zero_is_shown(live_server: LiveServer, context: Any, page: Any,
                               fluorescence: Path) -> None:
    """Plane 0 must be asked for: the server's default is the middle plane."""
    import io
    import re

    import numpy as np
    from PIL import Image

    _csrf, _project, image_id = admin_project_slide(context, live_server, fluorescence,
                                                  project="Planes", image="z-series")
    ui_login(page, *ADMIN, next_path=f"/viewer/{image_id}")
    wait_tiles(page, minimum=1)
    # Labelled from 1, as OMERO and QuPath do; the middle of five planes is the third.
    expect(page.locator("#plane-z-label")).to_have_text("3 of 5")
    tiles: dict[int, bytes] = {}
    for z in (4, 0):
        with page.expect_response(lambda r, z=z: "_files/" in r.url and f"z={z}" in r.url
                                  and r.status == 200) as info:
            page.locator("#plane-z").fill(str(z))
        tiles[z] = info.value.body()
        expect(page.locator("#plane-z-label")).to_have_text(f"{z + 1} of 5")
        wait_tiles(page, minimum=1)
    screenshot(page, "12-z-plane-0")
    # The tile the viewer got for plane 0 is the stored plane 0 rendered by the
    # server, not the middle plane it shows when no plane is given.
    url = info.value.url
    direct = context.request.get(url)
    assert direct.ok
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(tiles[0]))),
                          np.asarray(Image.open(io.BytesIO(direct.body()))))
    # ...and plane 0 is not what the server shows without a plane (the middle one):
    # compared through a window wide enough that the planes cannot both saturate.
    # (The viewer's URL may not name windows yet when its first plane-0 tile is asked
    # for: the window is then added, never left to the server's default.)
    windows = "windows=" + "%2C".join(["0%3A255"] * 3)
    wide = (re.sub(r"windows=[^&]*", windows, url) if "windows=" in url
            else url + ("&" if "?" in url else "?") + windows)
    planes = [context.request.get(wide.replace("z=0", z)) for z in ("z=0", "z=2")]
    assert all(r.ok for r in planes)
    z0, z2 = (np.asarray(Image.open(io.BytesIO(r.body()))) for r in planes)
    assert not np.array_equal(z0, z2)
