"""The viewer opens a converted slide and really draws it (foundation slice)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from tests.frontend.browser import (
    ADMIN,
    ARTIFACTS,
    ConsoleLog,
    LiveServer,
    admin_project_slide,
    drawn_fraction,
    screenshot,
    ui_login,
    view_center,
    wait_tiles,
)


def test_viewer_draws_tiles(live_server: LiveServer, context: Any, page: Any,
                            converted_slide: Path, console: ConsoleLog) -> None:
    _csrf, _project, image_id = admin_project_slide(context, live_server, converted_slide,
                                                  project="Viewer test", image="CMU-1-Small-Region")

    ui_login(page, *ADMIN, next_path=f"/viewer/{image_id}")
    assert page.url.endswith(f"/viewer/{image_id}")
    wait_tiles(page)
    state = page.evaluate("({loaded: window.microtome.tilesLoaded,"
                          " failed: window.microtome.tilesFailed})")
    assert state["loaded"] >= 4 and state["failed"] == 0

    png = page.locator("#osd").screenshot()
    drawn, spread = drawn_fraction(png)
    # The slide fills most of the viewer height: a large share of the canvas
    # shows tissue/glass instead of the empty background, with real contrast.
    assert drawn > 0.3, f"only {drawn:.0%} of the viewer shows the slide"
    assert spread > 20, f"pixel spread {spread:.1f}: the slide looks blank"
    screenshot(page, "viewer")

    # Details panel: name, size and pixel size from the metadata.
    assert page.locator("#image-name").inner_text() == "CMU-1-Small-Region"
    info = page.locator("#image-info").inner_text()
    assert "2,220 × 2,967 px" in info and "µm" in info
    # Scale bar in physical units, magnification buttons from the 20x objective.
    assert "µm" in page.locator("#scalebar .label").inner_text()
    assert page.locator("#mag-buttons button", has_text="20x").count() == 1
    # Download of the portable OME-Zarr (viewer/export.js → /api/images/{id}/export).
    with page.expect_download() as dl:
        page.click("#export-download a")
    assert dl.value.suggested_filename == "CMU-1-Small-Region.ome.zarr.zip"
    with zipfile.ZipFile(dl.value.path()) as zf:
        assert zf.namelist()[0] == "zarr.json" and "0/zarr.json" in zf.namelist()

    # First tiles after opening the slide (page already cached once): measured, not asserted.
    page.reload()
    wait_tiles(page)
    first_ms = page.evaluate("window.microtome.firstTileMs")
    assert first_ms > 0
    (ARTIFACTS / "viewer-timing.json").write_text(json.dumps({"first_tile_ms": first_ms}))
    print(f"\nfirst tile {first_ms:.0f} ms after navigation")

    # -- view controls ---------------------------------------------------------
    # Magnification: the slide's objective is 20x, so 10x is half the native resolution.
    page.click("#mag-buttons button:text-is('10x')")
    page.wait_for_function("""(() => { const v = window.microtome.state.viewer;
        const z = v.world.getItemAt(0).viewportToImageZoom(v.viewport.getZoom(true));
        return Math.abs(z - 0.5) < 0.01; })()""")
    # Rotation by 90° steps, with R.
    page.locator("#osd").click()
    page.keyboard.press("r")
    page.wait_for_function("window.microtome.state.viewer.viewport.getRotation(true) === 90")
    page.click("#rotate-left")
    page.wait_for_function("window.microtome.state.viewer.viewport.getRotation(true) === 0")
    # Copy link: the URL now names the view; opening it shows the same view.
    page.evaluate("window.microtome.state.viewer.viewport"
                  ".panBy(new OpenSeadragon.Point(0.05, 0.1), true)")
    page.wait_for_timeout(100)
    before = view_center(page)
    page.click("#copy-link")
    url = page.url
    assert "x=" in url and "y=" in url and "z=" in url
    other = context.new_page()
    other.goto(url)
    wait_tiles(other)
    after = view_center(other)
    assert abs(after["x"] - before["x"]) < 2 and abs(after["y"] - before["y"]) < 2
    assert abs(after["z"] - before["z"]) / before["z"] < 0.01
    other.close()
