"""The viewer opens a converted slide and really draws it (foundation slice)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.frontend.browser import (
    ADMIN,
    ConsoleLog,
    LiveServer,
    api_call,
    api_setup_admin,
    drawn_fraction,
    register_slide,
    screenshot,
    ui_login,
    wait_tiles,
)


def test_viewer_draws_tiles(live_server: LiveServer, context: Any, page: Any,
                            converted_slide: Path, console: ConsoleLog) -> None:
    csrf = api_setup_admin(context)
    project = api_call(context, "POST", "/api/projects", csrf, {"name": "Viewer test"})
    image_id = register_slide(live_server, converted_slide, name="CMU-1-Small-Region",
                              project_id=project["id"])

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
