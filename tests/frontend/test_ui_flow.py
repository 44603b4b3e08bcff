"""The whole web UI as a person uses it (issue 7), in Debian chromium.

First-admin setup → project → upload (a slide and a non-image) with progress
→ viewer with tiles → polygon with a term → reload → share link in a fresh,
cookie-less browser → a second user is refused the project.  Screenshots of
every page go to tests/artifacts/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.frontend.browser import (
    ADMIN,
    ConsoleLog,
    LiveServer,
    drawn_fraction,
    screenshot,
    ui_login,
    wait_tiles,
    watch_console,
)

TERM_COLOR = "#e5484d"
ONE_SHAPE = ("window.microtome.annotations"
             " && window.microtome.annotations.features.size === 1")


def _canvas_rgba(page: Any, x: float, y: float) -> list[int]:
    """RGBA of the annotation overlay at CSS pixel (x, y) of the viewer."""
    return list(page.evaluate(
        """([x, y]) => {
            const c = document.querySelector('#anno-canvas');
            const d = window.devicePixelRatio || 1;
            const px = c.getContext('2d').getImageData(Math.round(x * d), Math.round(y * d), 1, 1);
            return Array.from(px.data);
        }""", [x, y]))


def _draw_polygon(page: Any) -> tuple[float, float]:
    """Click a quadrilateral around the viewer's centre; returns that centre (viewer px)."""
    page.click("button[data-tool=polygon]")
    box = page.locator("#osd").bounding_box()
    cx, cy = box["width"] / 2, box["height"] / 2
    for dx, dy in [(-90, -70), (100, -60), (80, 90), (-70, 80)]:
        page.mouse.click(box["x"] + cx + dx, box["y"] + cy + dy)
        page.wait_for_timeout(120)  # separate clicks, not a double click
    # Live measurement while drawing, in physical units.
    assert "µm²" in page.inner_text("#measure") or "mm²" in page.inner_text("#measure")
    page.keyboard.press("Enter")
    return cx, cy


def test_full_ui_flow(live_server: LiveServer, browser: Any, context: Any, page: Any,
                      testdata: Path, console: ConsoleLog, tmp_path: Path) -> None:
    # -- first run: the login page offers to create the administrator -----------
    page.goto("/")
    page.wait_for_url("**/login**")
    expect(page.locator("#login-title")).to_have_text("Create the administrator account")
    screenshot(page, "01-setup")
    page.fill("#username", ADMIN[0])
    page.fill("#password", ADMIN[1])
    page.fill("#password2", ADMIN[1])
    page.click("#login-submit")
    page.wait_for_url(f"{live_server.url}/")

    # -- a project ------------------------------------------------------------------
    page.fill("#new-project", "Dermatology")
    page.click("text=Create project")
    page.wait_for_url("**/projects/*")
    project_id = int(page.url.rstrip("/").split("/")[-1])
    expect(page.locator("#project-name")).to_have_text("Dermatology")
    expect(page.locator("#upload-section")).to_be_visible()

    # -- uploads: a real slide and a text file, side by side -----------------------
    # (A text file is refused before upload: tests/frontend/test_upload_explain.py.
    # Bytes no browser can judge reach the server and fail there.)
    junk = tmp_path / "notanimage.bin"
    junk.write_bytes(bytes(range(256)) * 64)
    page.set_input_files("#file-input", [str(testdata / "CMU-1-Small-Region.svs"), str(junk)])
    slide_row = page.locator("#uploads li[data-file='CMU-1-Small-Region.svs']")
    bad_row = page.locator("#uploads li[data-file='notanimage.bin']")
    expect(slide_row).to_have_attribute("data-state", "ready", timeout=120_000)
    expect(bad_row).to_have_attribute("data-state", "conversion-failed", timeout=30_000)
    expect(bad_row.locator(".status")).to_contain_text("failed")
    card = page.locator(".tile-card", has_text="CMU-1-Small-Region")
    expect(card.locator(".badge")).to_have_text("ready")
    expect(card).to_contain_text("2,220 × 2,967 px")
    expect(card.locator(".thumb img")).to_be_visible()
    page.wait_for_function("[...document.querySelectorAll('.thumb img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    screenshot(page, "02-project")

    # the failed one explains itself in the viewer too
    bad_href = page.locator(".tile-card", has_text="notanimage.bin").locator("a.name")
    bad_href.click()
    expect(page.locator("#viewer-status")).to_contain_text("could not be converted")
    expect(page.locator("#viewer-status")).to_contain_text("not a recognised image format")
    page.go_back()

    # search narrows the grid
    page.fill("#search", "nothing-like-this")
    expect(page.locator(".tile-card")).to_have_count(0)
    page.fill("#search", "CMU")
    expect(page.locator(".tile-card")).to_have_count(1)

    # -- the viewer -------------------------------------------------------------------
    card.locator("a.name").click()
    page.wait_for_url("**/viewer/**")
    image_url = page.url
    wait_tiles(page)
    drawn, spread = drawn_fraction(page.locator("#osd").screenshot())
    assert drawn > 0.3 and spread > 20

    # a term, then a polygon drawn with it
    page.fill("#term-name", "Tumour")
    page.fill("#term-color", TERM_COLOR)
    page.click("#anno-panel form button[type=submit]")
    expect(page.locator(".term-list li", has_text="Tumour")).to_have_count(1)
    cx, cy = _draw_polygon(page)
    page.wait_for_function("window.microtome.annotations.features.size === 1")
    feature = page.evaluate(
        "(() => { const f = [...window.microtome.annotations.features.values()][0];"
        " return {id: f.id, terms: f.terms, type: f.geometry.type}; })()")
    assert feature["type"] == "Polygon" and len(feature["terms"]) == 1
    r, g, b, a = _canvas_rgba(page, cx, cy)
    assert a > 0 and r > g and r > b, "the polygon is not filled with the term colour"
    screenshot(page, "03-viewer-annotated")

    # -- reload: the annotation comes back from the server -------------------------
    page.reload()
    wait_tiles(page)
    page.wait_for_function(ONE_SHAPE)
    page.wait_for_timeout(200)
    r, g, b, a = _canvas_rgba(page, cx, cy)
    assert a > 0 and r > g and r > b
    page.locator(".anno-list button").first.click()  # click-to-zoom selects it
    expect(page.locator("#selected-term")).to_have_value(str(feature["terms"][0]))
    expect(page.locator(".term-list li", has_text="Tumour")).to_contain_text("Tumour 1")
    assert "mm²" in page.inner_text("#selection") or "µm²" in page.inner_text("#selection")

    # -- share link, opened in a fresh browser context without cookies -------------
    page.click("#share")
    page.click("#share-create")
    share_url = page.locator("#share-url").input_value()
    assert "share=" in share_url
    screenshot(page, "04-share-dialog")
    page.keyboard.press("Escape")

    anon = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        assert anon.cookies() == []
        anon_page = anon.new_page()
        anon_log = ConsoleLog()
        watch_console(anon_page, anon_log)
        anon_page.goto(share_url)
        wait_tiles(anon_page)
        anon_page.wait_for_function(ONE_SHAPE)
        expect(anon_page.locator("#anno-tools")).to_be_hidden()  # read-only
        screenshot(anon_page, "05-shared-view")
        assert not anon_log.unexpected(), anon_log.errors
        # Without the token the same image is refused.
        anon_page.goto(image_url.split("?")[0])
        anon_page.wait_for_url("**/login**")
    finally:
        anon.close()

    # -- a whole project shared: its images listed, each opens with the token ---
    page.goto(f"/projects/{project_id}")
    page.click("#share-project")
    page.click("#share-create")
    project_share = page.locator("#share-url").input_value()
    assert "/share/" in project_share
    page.keyboard.press("Escape")
    anon = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        anon_page = anon.new_page()
        anon_log = ConsoleLog()
        watch_console(anon_page, anon_log)
        anon_page.goto(project_share)
        anon_page.locator(".shared-images a", has_text="CMU-1-Small-Region").click()
        wait_tiles(anon_page)
        assert not anon_log.unexpected(), anon_log.errors
    finally:
        anon.close()

    # -- a second user: created by the admin, not a member of the project ----------
    page.goto("/")
    expect(page.locator("table.list")).to_contain_text("Dermatology")
    screenshot(page, "06-projects")
    page.goto("/keys")
    page.fill("#key-name", "scripts")
    page.click("#key-form button")
    prefix = page.locator("#keys code").first.inner_text()[:6]
    expect(page.locator("#new-key-value")).to_contain_text(prefix)
    screenshot(page, "07-keys")
    page.goto("/users")
    page.fill("#user-name", "bob")
    page.fill("#user-password", "bob-password-1")
    page.uncheck("#user-must-change")  # bob keeps this password (no forced change)
    page.click("#user-form button")
    expect(page.locator("#users")).to_contain_text("bob")
    screenshot(page, "07-users")

    other = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    try:
        bob = other.new_page()
        bob_log = ConsoleLog(expected=[f"/api/projects/{project_id}"])
        watch_console(bob, bob_log)
        ui_login(bob, "bob", "bob-password-1", next_path=f"/projects/{project_id}")
        expect(bob.locator("#project-error")).to_contain_text("not a member")
        expect(bob.locator(".tile-card")).to_have_count(0)
        screenshot(bob, "08-denied")
        bob.goto("/")
        expect(bob.locator("table.list")).not_to_contain_text("Dermatology")
        assert not bob_log.unexpected(), bob_log.errors
    finally:
        other.close()

    # -- the manager adds bob as a viewer: now he sees the images, read-only -----
    page.goto(f"/projects/{project_id}")
    page.click("#members-button")
    page.fill("#member-name", "bob")
    page.select_option("#member-role", "viewer")
    page.click("#members-dialog button[type=submit]")
    expect(page.locator("#members-dialog tbody")).to_contain_text("bob")
    screenshot(page, "09-members")
    page.click("#members-dialog button:text-is('Close')")

    other = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    try:
        bob = other.new_page()
        bob_log = ConsoleLog()
        watch_console(bob, bob_log)
        ui_login(bob, "bob", "bob-password-1", next_path=f"/projects/{project_id}")
        expect(bob.locator(".tile-card", has_text="CMU-1-Small-Region")).to_have_count(1)
        expect(bob.locator("#upload-section")).to_be_hidden()
        expect(bob.locator(".tile-card button", has_text="Delete")).to_have_count(0)
        expect(bob.locator("#project-role")).to_have_text("viewer")
        # A viewer sees the annotations but gets no drawing tools.
        bob.locator(".tile-card a.name", has_text="CMU-1-Small-Region").click()
        wait_tiles(bob)
        bob.wait_for_function(ONE_SHAPE)
        expect(bob.locator("#anno-tools")).to_be_hidden()
        expect(bob.locator(".term-list")).to_contain_text("Tumour")
        assert not bob_log.unexpected(), bob_log.errors
    finally:
        other.close()
