"""The viewer a lab expects (issue 14, items 4, 7, 8, 9), in Debian chromium.

- nested shapes of one term are each filled (only real holes stay open);
- contributors get no Delete on others' annotations, viewers no Share;
  shortcuts work after clicks in the side panel; "?" opens the shortcut list;
- back to the project, previous/next image (buttons and keys), the
  magnification shown and editable, recently viewed images;
- a boxed scale bar, brightness/contrast/gamma kept in the link and restored
  on reload, plane/channel choices kept in the link, a shape crossing the
  image's edge clipped (and saved by Retry after a failed first save).
"""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.frontend.browser import (
    ADMIN,
    ConsoleLog,
    LiveServer,
    admin_project_slide,
    api_call,
    screenshot,
    ui_login,
    wait_tiles,
)

PASSWORD = "a long enough password"


def _overlay_alpha(page: Any, ix: float, iy: float) -> int:
    """Alpha of the annotation overlay at image pixel (ix, iy)."""
    return int(page.evaluate(f"""(() => {{
        const l = window.microtome.annotations, m = l.transform(), c = l.canvas, d = l.dpr;
        const x = (m[0] * {ix} + m[2] * {iy} + m[4]) * d;
        const y = (m[1] * {ix} + m[3] * {iy} + m[5]) * d;
        return c.getContext('2d').getImageData(Math.round(x), Math.round(y), 1, 1).data[3];
    }})()"""))


def _ring(x: float, y: float, w: float, h: float, ccw: bool = False) -> list[list[float]]:
    r = [[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]
    return r[::-1] if ccw else r


def test_nested_same_term_shapes_are_filled(live_server: LiveServer, context: Any, page: Any,
                                            converted_slide: Path) -> None:
    csrf, project, iid = admin_project_slide(context, live_server, converted_slide,
                                             project="Nested", image="nested")
    pid = project["id"]
    term = api_call(context, "POST", f"/api/projects/{pid}/terms", csrf,
                    {"name": "Tumour", "color": "#3e63dd"})["id"]
    url = f"/api/images/{iid}/annotations"

    def add(rings: list[list[list[float]]]) -> None:
        api_call(context, "POST", url, csrf, {"geometry": {"type": "Polygon", "coordinates": rings},
                                              "terms": [term], "project_id": pid})

    # An outer region and, inside it, a smaller one of the same term drawn
    # the other way round (as another tool or QuPath may store it) ...
    add([_ring(200, 200, 1200, 1200)])
    add([_ring(500, 500, 400, 400, ccw=True)])
    # ... and elsewhere a polygon with a real hole.
    add([_ring(1500, 1600, 600, 600), _ring(1700, 1800, 200, 200, ccw=True)])
    ui_login(page, *ADMIN, next_path=f"/viewer/{iid}?project={pid}")
    wait_tiles(page)
    page.wait_for_function("window.microtome.annotations.features.size === 3")
    page.wait_for_timeout(100)
    screenshot(page, "lab-nested-shapes")
    assert _overlay_alpha(page, 700, 700) > 0, "the inner shape is drawn as a hole"
    assert _overlay_alpha(page, 300, 300) > 0
    assert _overlay_alpha(page, 1550, 1650) > 0
    assert _overlay_alpha(page, 1800, 1900) == 0, "a real hole is filled"


# -- roles and keyboard ----------------------------------------------------------
def test_ui_offers_what_the_role_can_do(live_server: LiveServer, context: Any, page: Any,
                                        converted_slide: Path, other_pages: Any) -> None:
    csrf, project, iid = admin_project_slide(context, live_server, converted_slide,
                                             project="Roles", image="roles")
    pid = project["id"]
    for name, role in (("carol", "contributor"), ("victor", "viewer")):
        api_call(context, "POST", "/api/users", csrf, {"username": name, "password": PASSWORD})
        api_call(context, "POST", f"/api/projects/{pid}/members", csrf,
                 {"username": name, "role": role})
    admins = api_call(context, "POST", f"/api/images/{iid}/annotations", csrf,
                      {"geometry": {"type": "Polygon", "coordinates": [_ring(300, 300, 600, 600)]},
                       "project_id": pid})
    path = f"/viewer/{iid}?project={pid}"

    # A contributor: no Delete on the admin's annotation (nor with the key), Delete on her own.
    carol = other_pages()
    ui_login(carol, "carol", PASSWORD, next_path=path)
    wait_tiles(carol)
    carol.wait_for_function("window.microtome.tools"
                            " && window.microtome.annotations.features.size === 1")
    expect(carol.locator("#share")).to_be_visible()
    box = carol.locator("#osd").bounding_box()

    def at(p: Any, ix: float, iy: float) -> tuple[float, float]:
        sx, sy = p.evaluate(f"""(() => {{ const m = window.microtome.annotations.transform();
            return [m[0] * {ix} + m[2] * {iy} + m[4], m[1] * {ix} + m[3] * {iy} + m[5]]; }})()""")
        return box["x"] + sx, box["y"] + sy

    carol.keyboard.press("s")
    carol.mouse.click(*at(carol, 600, 600))
    expect(carol.locator("#selection")).to_contain_text("area")
    expect(carol.locator("#selected-delete")).to_have_count(0)
    expect(carol.locator("#selected-readonly")).to_be_visible()
    expect(carol.locator("#selected-term")).to_be_disabled()
    carol.keyboard.press("Delete")
    carol.wait_for_timeout(300)
    assert api_call(context, "GET", f"/api/annotations/{admins['id']}", csrf)["id"] == admins["id"]
    screenshot(carol, "lab-contributor-others")
    # Her own shape: drawn after a click in the side panel (the shortcut still works).
    carol.click("#anno-opacity")
    shown = carol.locator(".term-list input[type=checkbox]").first
    shown.click()  # hide untermed shapes ...
    shown.click()  # ... and show them again; the focus stays on the checkbox
    carol.keyboard.press("b")
    rect_tool = carol.locator("#anno-tools button[data-tool=rect]")
    expect(rect_tool).to_have_attribute("aria-pressed", "true")
    carol.mouse.move(*at(carol, 1300, 1300))
    carol.mouse.down()
    carol.mouse.move(*at(carol, 1700, 1700), steps=5)
    carol.mouse.up()
    carol.wait_for_function("window.microtome.annotations.features.size === 2"
                            " && window.microtome.annotations.local.size === 0")
    carol.keyboard.press("s")
    carol.mouse.click(*at(carol, 1500, 1500))
    expect(carol.locator("#selected-delete")).to_be_visible()
    # "?" opens the shortcut list, Escape closes it.
    carol.keyboard.press("?")
    expect(carol.locator("#shortcut-help")).to_be_visible()
    expect(carol.locator("#shortcut-help")).to_contain_text("Ctrl+Shift+Z")
    screenshot(carol, "lab-shortcut-help")
    carol.keyboard.press("Escape")
    expect(carol.locator("#shortcut-help")).to_be_hidden()
    carol.click("#selected-delete")
    carol.wait_for_function("window.microtome.annotations.features.size === 1")

    # A viewer: no Share, no tools.
    victor = other_pages()
    ui_login(victor, "victor", PASSWORD, next_path=path)
    wait_tiles(victor)
    victor.wait_for_function("window.microtome.tools !== undefined")
    victor.wait_for_timeout(300)
    expect(victor.locator("#share")).to_be_hidden()
    expect(victor.locator("#anno-tools")).to_be_hidden()


# -- case navigation ------------------------------------------------------------
def _another_image(server: LiveServer, like: int, name: str, project_id: int) -> int:
    """One more catalog image on the same stored pyramid (a second slide of the case)."""
    import asyncpg

    from microtome.catalog.images import register_image

    async def go() -> int:
        pool = await asyncpg.create_pool(server.database_url, min_size=1, max_size=1)
        try:
            r = await pool.fetchrow("SELECT * FROM images WHERE id = $1", like)
            return await register_image(
                pool, name=name, relpath=r["storage_path"], width=r["width"], height=r["height"],
                levels=r["levels"], format=r["format"], pixel_size_um=r["pixel_size_um"],
                version=r["version"], source_filename=name, project_id=project_id)
        finally:
            await pool.close()

    with ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, go()).result()


def test_case_navigation(live_server: LiveServer, context: Any, page: Any,
                         converted_slide: Path) -> None:
    _csrf, project, first = admin_project_slide(context, live_server, converted_slide,
                                                project="Case 12", image="block A")
    pid = project["id"]
    second = _another_image(live_server, first, "block B", pid)
    third = _another_image(live_server, first, "block C", pid)
    # The project page lists newest first: C, B, A.
    ui_login(page, *ADMIN, next_path=f"/viewer/{second}?project={pid}")
    wait_tiles(page)
    expect(page.locator("#image-position")).to_have_text("2 of 3")
    expect(page.locator("#back-to-project")).to_have_text("← Case 12")
    page.click("#next-image")
    page.wait_for_url(f"**/viewer/{first}?project={pid}")
    wait_tiles(page)
    expect(page.locator("#next-image")).to_be_disabled()
    page.locator("#osd").click()
    page.keyboard.press("[")
    page.wait_for_url(f"**/viewer/{second}?project={pid}")
    wait_tiles(page)
    # The neighbours are known once the position shows (the keys act on them).
    expect(page.locator("#image-position")).to_have_text("2 of 3")
    page.keyboard.press("[")
    page.wait_for_url(f"**/viewer/{third}?project={pid}")
    wait_tiles(page)
    # Arrow keys pan after a click in the side panel, too.
    page.click("#image-info")
    x0 = page.evaluate("window.microtome.state.viewer.viewport.getCenter(true).x")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("window.microtome.state.viewer.viewport.getCenter(true).x"
                           f" > {x0} + 0.01")
    # Recently viewed (this browser, this user): the two others, newest first.
    expect(page.locator("#recent-panel li")).to_have_text(["block B", "block A"])

    # The magnification is shown and can be typed (CMU-1 is scanned at 20x).
    mag = page.locator("#mag-input")
    expect(mag).to_have_value(__import__("re").compile(r"^[0-9.]+x$"))
    page.keyboard.press("m")
    expect(mag).to_be_focused()
    mag.fill("10")
    mag.press("Enter")
    page.wait_for_function("""(() => { const v = document.querySelector('#mag-input').value;
        return v === '10x'; })()""")
    shown = page.evaluate("""(() => { const v = window.microtome.state.viewer;
        return v.world.getItemAt(0).viewportToImageZoom(v.viewport.getZoom(true)); })()""")
    assert abs(shown * 20 - 10) < 0.2, shown
    screenshot(page, "lab-case-navigation")
    page.click("#back-to-project")
    page.wait_for_url(f"**/projects/{pid}")
    # The home page lists them too, last viewed first.
    page.goto("/")
    expect(page.locator("#recently-viewed a")).to_have_text(["block C", "block B", "block A"])


# -- readability, links, edges ---------------------------------------------------------
def _mean_luma(png: bytes, box: dict[str, float]) -> float:
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("L")).astype(float)
    x0, y0 = int(box["x"]) + 250, int(box["y"]) + 150
    return float(img[y0:y0 + 300, x0:x0 + 300].mean())


def test_adjustments_links_and_clipping(live_server: LiveServer, context: Any, page: Any,
                                        converted_slide: Path, console: ConsoleLog) -> None:
    _csrf, project, iid = admin_project_slide(context, live_server, converted_slide,
                                              project="Display", image="display")
    pid = project["id"]
    ui_login(page, *ADMIN, next_path=f"/viewer/{iid}?project={pid}")
    wait_tiles(page)
    page.wait_for_function("window.microtome.tools !== undefined")
    # The scale bar sits in an opaque box (readable on white glass or black).
    bar = page.locator("#scalebar")
    expect(bar).to_be_visible()
    bg = bar.evaluate("e => getComputedStyle(e).backgroundColor")
    assert bg.startswith("rgba(255, 255, 255, 0.9") or bg == "rgb(255, 255, 255)", bg

    box = page.locator("#osd").bounding_box()
    before = _mean_luma(page.screenshot(), box)
    page.click("#adjust-panel summary")
    page.locator("#adjust-bri").fill("0.5")
    page.locator("#adjust-gam").fill("1.5")
    page.wait_for_function("location.search.includes('bri=0.5')"
                           " && location.search.includes('gam=1.5')")
    page.wait_for_timeout(200)
    darker = _mean_luma(page.screenshot(), box)
    assert darker < before - 20, (before, darker)
    screenshot(page, "lab-adjusted")
    # A reload (or the copied link) restores them.
    page.reload()
    wait_tiles(page)
    expect(page.locator("#adjust-bri")).to_have_value("0.5")
    expect(page.locator("#adjust-bri-value")).to_have_text("0.50")
    assert "brightness(0.5)" in page.evaluate(
        "window.microtome.state.viewer.drawer.canvas.style.filter")
    page.click("#adjust-reset")
    page.wait_for_function("!location.search.includes('bri=')")

    # A rectangle dragged across the image's right edge is clipped, not refused;
    # its first save fails (server unavailable) and Retry saves it.
    page.wait_for_function("window.microtome.tools !== undefined")
    console.expected.append("/annotations")
    fail = "**/api/images/*/annotations?clip=true"
    page.route(fail, lambda route: route.fulfill(
        status=503, content_type="application/json",
        body='{"error": "database unavailable", "detail": null}')
        if route.request.method == "POST" else route.continue_())
    w, h = page.evaluate("[window.microtome.state.meta.width, window.microtome.state.meta.height]")

    def at(ix: float, iy: float) -> tuple[float, float]:
        sx, sy = page.evaluate(f"""(() => {{ const m = window.microtome.annotations.transform();
            return [m[0] * {ix} + m[2] * {iy} + m[4], m[1] * {ix} + m[3] * {iy} + m[5]]; }})()""")
        return box["x"] + sx, box["y"] + sy

    page.keyboard.press("b")
    page.mouse.move(*at(w - 400, 500))
    page.mouse.down()
    page.mouse.move(*at(w + 300, 900), steps=5)
    page.mouse.up()
    expect(page.locator(".toast.error")).to_contain_text("not saved")
    page.unroute(fail)
    page.keyboard.press("s")
    page.mouse.click(*at(w - 200, 700))
    page.click("#selection button:text-is('Retry')")
    page.wait_for_function("window.microtome.annotations.features.size === 1"
                           " && window.microtome.annotations.local.size === 0")
    saved = page.evaluate("[...window.microtome.annotations.features.values()][0]")
    assert saved["bbox"][2] == pytest.approx(w)
    assert saved["bbox"][0] == pytest.approx(w - 400, abs=2)
    assert 0 <= saved["bbox"][1] and saved["bbox"][3] <= h


def test_plane_and_channels_kept_in_link(live_server: LiveServer, context: Any, page: Any,
                                         fluorescence: Path) -> None:
    _csrf, project, iid = admin_project_slide(context, live_server, fluorescence,
                                              project="Fluo links", image="z-series")
    ui_login(page, *ADMIN, next_path=f"/viewer/{iid}?project={project['id']}")
    wait_tiles(page, minimum=1)
    page.uncheck("#ch-0")
    page.locator("#plane-z").fill("0")
    page.wait_for_function("location.search.includes('plane=0')"
                           " && location.search.includes('channels=1%2C2')")
    with page.expect_request(lambda r: "_files/" in r.url and "z=0" in r.url
                             and "channels=1%2C2" in r.url):
        page.reload()
    wait_tiles(page, minimum=1)
    expect(page.locator("#plane-z-label")).to_have_text("1 of 5")
    expect(page.locator("#ch-0")).not_to_be_checked()
    expect(page.locator("#ch-1")).to_be_checked()
    # The copied view link holds the zoom (z) and the plane (plane) side by side.
    link = page.evaluate("""import('/static/js/viewer/link.js').then(m =>
        m.viewUrl(window.microtome.state.viewer))""")
    assert "plane=0" in link and "&z=" in link and "channels=1%2C2" in link
    screenshot(page, "lab-plane-link")

    # An old link (x, y, z = zoom; no plane) still opens at its zoom on the default plane.
    page.goto(f"/viewer/{iid}?project={project['id']}&x=200&y=150&z=0.5")
    wait_tiles(page, minimum=1)
    expect(page.locator("#plane-z-label")).to_have_text("3 of 5")
    zoom = page.evaluate("""(() => { const v = window.microtome.state.viewer;
        return v.world.getItemAt(0).viewportToImageZoom(v.viewport.getZoom(true)); })()""")
    assert zoom == pytest.approx(0.5, rel=0.02)


# -- the annotation table -------------------------------------------------------------
def test_annotation_table(live_server: LiveServer, context: Any, page: Any,
                          converted_slide: Path) -> None:
    import csv
    import json

    from tests.frontend.browser import db_run

    csrf, project, iid = admin_project_slide(context, live_server, converted_slide,
                                             project="Table", image="table")
    pid = project["id"]
    api_call(context, "POST", "/api/users", csrf, {"username": "carol", "password": PASSWORD})
    carol = api_call(context, "POST", f"/api/projects/{pid}/members", csrf,
                     {"username": "carol", "role": "contributor"})
    t1 = api_call(context, "POST", f"/api/projects/{pid}/terms", csrf,
                  {"name": "Tumour", "color": "#e5484d"})["id"]
    url = f"/api/images/{iid}/annotations"
    made = [api_call(context, "POST", url, csrf, {**body, "project_id": pid})["id"] for body in (
        {"geometry": {"type": "Polygon", "coordinates": [_ring(100, 100, 1000, 1000)]},
         "terms": [t1]},
        {"geometry": {"type": "Polygon", "coordinates": [_ring(1800, 2600, 200, 200)]},
         "terms": [t1]},
        {"geometry": {"type": "LineString", "coordinates": [[100, 2800], [1100, 2800]]}},
    )]
    # The line is carol's.
    db_run(live_server, lambda c: c.execute("UPDATE annotations SET user_id = $1 WHERE id = $2",
                                            carol["user_id"], made[2]))
    ui_login(page, *ADMIN, next_path=f"/viewer/{iid}?project={pid}&x=500&y=500&z=1")
    wait_tiles(page)
    page.wait_for_function("window.microtome.tools !== undefined")
    page.click("#open-table")
    rows = page.locator("#anno-table tbody tr")
    expect(rows).to_have_count(3)  # all of them, though only one is in view
    px = 0.499  # µm per pixel of CMU-1-Small-Region
    def row(i: int) -> Any:
        return page.locator(f"#anno-table tbody tr[data-id='{i}']")

    first = row(made[0])
    expect(first).to_contain_text("Tumour")
    expect(first).to_contain_text("admin")
    expect(first).to_contain_text(f"{(1000 * px) ** 2 / 1e6:.3g} mm²")
    line = row(made[2])
    expect(line).to_contain_text("carol")
    expect(line).to_contain_text(f"{1000 * px:.3g} µm")
    expect(line.locator("td.date")).not_to_have_text("…")
    screenshot(page, "lab-annotation-table")

    page.select_option("#table-term", str(t1))
    expect(rows).to_have_count(2)
    page.select_option("#table-author", str(carol["user_id"]))
    expect(rows).to_have_count(0)
    page.select_option("#table-term", "")
    expect(rows).to_have_count(1)
    page.select_option("#table-author", "")

    # A click goes there and selects it.
    row(made[1]).click()
    page.wait_for_function(f"window.microtome.annotations.selectedId === {made[1]}")
    page.wait_for_timeout(800)
    c = page.evaluate("""(() => { const v = window.microtome.state.viewer;
        const p = v.world.getItemAt(0).viewportToImageCoordinates(v.viewport.getCenter(true));
        return [p.x, p.y]; })()""")
    assert abs(c[0] - 1900) < 60 and abs(c[1] - 2700) < 60, c

    # Exports: the server's GeoJSON, and a CSV with the measurements.
    with page.expect_download() as dl:
        page.click("#export-geojson")
    fc = json.loads(Path(dl.value.path()).read_text())
    assert len(fc["features"]) == 3
    with page.expect_download() as dl:
        page.click("#export-csv")
    table = list(csv.DictReader(Path(dl.value.path()).read_text().splitlines()))
    assert sorted(int(r["id"]) for r in table) == sorted(made)
    by_id = {int(r["id"]): r for r in table}
    assert float(by_id[made[0]]["area_um2"]) == pytest.approx((1000 * px) ** 2, rel=1e-3)
    assert by_id[made[2]]["author"] == "carol" and by_id[made[0]]["term"] == "Tumour"
    # The crop gallery shows the page's annotations as images.
    page.click("#toggle-gallery")
    expect(page.locator("#crop-gallery img")).to_have_count(3)
    page.wait_for_function("[...document.querySelectorAll('#crop-gallery img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
