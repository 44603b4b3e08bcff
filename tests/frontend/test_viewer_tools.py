"""Every annotation tool, in Debian chromium.

Rectangle, circle,
freehand, line, point; select + move, delete, undo; a save that fails keeps
the drawing and can be retried.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.frontend.browser import (
    ADMIN,
    ConsoleLog,
    LiveServer,
    admin_project_slide,
    screenshot,
    ui_login,
    wait_tiles,
)

FEATURES = "[...window.microtome.annotations.features.values()]"


@pytest.fixture
def viewer_page(live_server: LiveServer, context: Any, page: Any,
                converted_slide: Path) -> tuple[Any, str]:
    _csrf, project, image_id = admin_project_slide(context, live_server, converted_slide,
                                                  project="Tools", image="tools")
    path = f"/viewer/{image_id}?project={project['id']}"
    ui_login(page, *ADMIN, next_path=path)
    wait_tiles(page)
    page.wait_for_function("window.microtome.tools !== undefined")
    return page, path


def _drag(page: Any, box: dict[str, float], a: tuple[float, float], b: tuple[float, float],
          path: list[tuple[float, float]] | None = None) -> None:
    page.mouse.move(box["x"] + a[0], box["y"] + a[1])
    page.mouse.down()
    for p in (path or []) + [b]:
        page.mouse.move(box["x"] + p[0], box["y"] + p[1], steps=4)
    page.mouse.up()


def test_annotation_tools(viewer_page: tuple[Any, str], console: ConsoleLog) -> None:
    page, _ = viewer_page
    box = page.locator("#osd").bounding_box()
    # The slide (home view) spans about x 207-774 of this 980 px wide viewer.

    page.keyboard.press("b")  # rectangle
    _drag(page, box, (260, 150), (360, 230))
    page.keyboard.press("c")  # circle from its centre
    _drag(page, box, (560, 200), (600, 200))
    page.keyboard.press("d")  # freehand
    _drag(page, box, (300, 400), (320, 520), path=[(400, 410), (410, 500), (350, 540)])
    page.keyboard.press("i")  # line: clicks, double-click to finish
    page.mouse.click(box["x"] + 450, box["y"] + 450)
    page.wait_for_timeout(150)
    page.mouse.dblclick(box["x"] + 650, box["y"] + 500)
    page.keyboard.press("p")  # point
    page.mouse.click(box["x"] + 700, box["y"] + 300)
    page.wait_for_function(f"{FEATURES}.length === 5")
    kinds = sorted(page.evaluate(f"{FEATURES}.map(f => f.geometry.type + ':' + "
                                 "(f.geometry.type === 'Polygon' ? f.geometry.coordinates[0].length"
                                 " : f.geometry.coordinates.length))"))
    types = [k.split(":")[0] for k in kinds]
    assert types.count("Polygon") == 3 and "LineString" in types and "Point" in types
    assert "LineString:2" in kinds  # the double click did not add a duplicate vertex
    screenshot(page, "10-tools")

    # Select the rectangle, move it by dragging, and see the server's geometry follow.
    page.keyboard.press("s")
    page.mouse.click(box["x"] + 310, box["y"] + 190)
    expect(page.locator("#selection")).to_contain_text("area")
    rect_id = page.evaluate("window.microtome.annotations.selectedId")
    x0 = page.evaluate(f"window.microtome.annotations.get({rect_id}).bbox[0]")
    _drag(page, box, (310, 190), (370, 190))
    page.wait_for_function(
        f"window.microtome.annotations.features.get({rect_id}).bbox[0] > {x0} + 20"
        f" && !window.microtome.annotations.local.has({rect_id})")

    # Edit a vertex: drag the rectangle's third corner handle.
    sx, sy, ix, iy = page.evaluate(f"""(() => {{
        const l = window.microtome.annotations, m = l.transform();
        const [x, y] = l.get({rect_id}).geometry.coordinates[0][2];
        return [m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5], x, y]; }})()""")
    _drag(page, box, (sx, sy), (sx + 30, sy + 20))
    page.wait_for_function(
        f"(() => {{ const f = window.microtome.annotations.features.get({rect_id});"
        f" const v = f.geometry.coordinates[0][2];"
        f" return v[0] > {ix} + 20 && v[1] > {iy} + 10"
        f" && !window.microtome.annotations.local.has({rect_id}); }})()")

    # Delete with the keyboard, undo brings it back.
    page.keyboard.press("Delete")
    page.wait_for_function(f"{FEATURES}.length === 4")
    page.keyboard.press("Control+z")
    page.wait_for_function(f"{FEATURES}.length === 5")

    # A save that fails keeps the drawing (red) and offers a retry.
    console.expected.append("/annotations")
    page.route("**/api/images/*/annotations?clip=true", lambda route: route.fulfill(
        status=503, content_type="application/json",
        body='{"error": "database unavailable", "detail": null}')
        if route.request.method == "POST" else route.continue_())
    page.keyboard.press("p")
    page.mouse.click(box["x"] + 720, box["y"] + 620)
    expect(page.locator(".toast.error")).to_contain_text("not saved")
    assert page.evaluate("[...window.microtome.annotations.local.values()]"
                         ".filter(f => f.error).length") == 1
    page.unroute("**/api/images/*/annotations?clip=true")
    page.keyboard.press("s")
    page.mouse.click(box["x"] + 720, box["y"] + 620)
    page.click("#selection button:text-is('Retry')")
    page.wait_for_function(f"{FEATURES}.length === 6"
                           " && window.microtome.annotations.local.size === 0")
