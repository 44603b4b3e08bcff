"""Browser tests: the image grid filters and sorts by property; the viewer shows a hostile
description inertly; a follower's viewer moves with the leader's (follow mode)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.frontend.browser import (
    ADMIN,
    ConsoleLog,
    LiveServer,
    admin_project_slide,
    api_call,
    register_slide,
    screenshot,
    ui_login,
    view_center,
    wait_tiles,
    watch_console,
)

PASSWORD = "student password 1"
HOSTILE = ("# Case notes\n<img src=x onerror=\"window.pwned=1\">\n"
           "<script>window.pwned=2</script>\n[link](javascript:window.pwned=3)\n**HE stain**")


def _copy(pyramid: Path, tmp: Path, name: str) -> Path:
    dst = tmp / f"{name}.ome.zarr"
    shutil.copytree(pyramid, dst)
    return dst


def test_grid_filters_and_sorts_by_property(live_server: LiveServer, context: Any, page: Any,
                                            converted_slide: Path, tmp_path: Path,
                                            console: ConsoleLog) -> None:
    csrf, project, first = admin_project_slide(context, live_server, converted_slide,
                                               project="Props", image="slide-a")
    pid = project["id"]
    ids = [first] + [register_slide(live_server, _copy(converted_slide, tmp_path, n), name=n,
                                    project_id=pid) for n in ("slide-b", "slide-c")]
    for iid, stain, size in zip(ids, ("HE", "IHC", "he"), ("10", "9", "100"), strict=True):
        api_call(context, "PATCH", f"/api/images/{iid}/properties", csrf,
                 {"stain": stain, "size": size})
    ui_login(page, *ADMIN, next_path=f"/projects/{pid}")
    page.wait_for_selector("#grid [data-image-id]")
    assert page.locator("#grid [data-image-id]").count() == 3
    page.wait_for_selector("#prop-key option[value=stain]", state="attached")
    page.select_option("#prop-key", "stain")
    page.fill("#prop-value", "he")
    page.wait_for_function("document.querySelectorAll('#grid [data-image-id]').length === 2")
    shown = sorted(page.locator("#grid [data-image-id]").evaluate_all(
        "els => els.map(e => Number(e.dataset.imageId))"))
    assert shown == sorted([ids[0], ids[2]])
    page.fill("#prop-value", "")
    page.select_option("#prop-key", "")
    page.select_option("#prop-sort", "-size")
    page.wait_for_function("document.querySelector('#grid .prop-value') &&"
                           " document.querySelector('#grid .prop-value').textContent"
                           " === 'size: 100'")
    order = page.locator("#grid [data-image-id]").evaluate_all(
        "els => els.map(e => Number(e.dataset.imageId))")
    assert order == [ids[2], ids[0], ids[1]]  # 100 > 10 > 9: numbers sort as numbers
    screenshot(page, "collab-grid-sorted-by-property")
    # Managers reach the project dashboard from the project page.
    page.goto(f"/viewer/{ids[2]}")
    wait_tiles(page)
    page.wait_for_timeout(1500)  # the open is written by the batch writer
    page.goto(f"/projects/{pid}")
    page.click("#dashboard-link")
    page.wait_for_selector("#most-viewed tbody a")
    assert page.locator("#most-viewed tbody a").first.inner_text() == "slide-c"
    assert "admin" in page.locator("#users tbody").inner_text()
    screenshot(page, "collab-dashboard")


def test_hostile_description_stays_inert(live_server: LiveServer, context: Any, browser: Any,
                                         converted_slide: Path, console: ConsoleLog) -> None:
    csrf, project, iid = admin_project_slide(context, live_server, converted_slide,
                                             project="Notes", image="slide")
    api_call(context, "PATCH", f"/api/images/{iid}/about", csrf,
             {"description": HOSTILE, "tags": ["teaching"]})
    api_call(context, "POST", "/api/users", csrf, {"username": "reader", "password": PASSWORD})
    api_call(context, "POST", f"/api/projects/{project['id']}/members", csrf,
             {"username": "reader", "role": "viewer"})
    other = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    try:
        page = other.new_page()
        watch_console(page, console)
        ui_login(page, "reader", PASSWORD, next_path=f"/viewer/{iid}")
        wait_tiles(page)
        page.wait_for_selector("#about-panel .description h1")
        page.locator("#about-panel a", has_text="link").count()
        assert page.evaluate("window.pwned") is None
        assert page.locator("#about-panel .description img, #about-panel script").count() == 0
        assert "HE stain" in page.locator("#about-panel .description").inner_text()
        hrefs = page.locator("#about-panel .description a").evaluate_all(
            "els => els.map(e => e.getAttribute('href'))")
        assert not any((h or "").startswith("javascript:") for h in hrefs)
        assert page.locator("#about-panel .tags").inner_text() == "teaching"
        screenshot(page, "collab-about-hostile-description")
    finally:
        other.close()


def test_follow_mode(live_server: LiveServer, context: Any, page: Any, browser: Any,
                     converted_slide: Path, console: ConsoleLog) -> None:
    csrf, project, iid = admin_project_slide(context, live_server, converted_slide,
                                             project="Teaching", image="slide")
    api_call(context, "POST", "/api/users", csrf, {"username": "student", "password": PASSWORD})
    api_call(context, "POST", f"/api/projects/{project['id']}/members", csrf,
             {"username": "student", "role": "viewer"})
    admin_id = api_call(context, "GET", "/api/session", csrf)["user"]["id"]
    ui_login(page, *ADMIN, next_path=f"/viewer/{iid}")
    wait_tiles(page)
    student_ctx = browser.new_context(base_url=live_server.url,
                                      viewport={"width": 1280, "height": 800})
    try:
        student = student_ctx.new_page()
        watch_console(student, console)
        ui_login(student, "student", PASSWORD, next_path=f"/viewer/{iid}")
        wait_tiles(student)
        # The teacher is listed as someone to follow.
        student.click("#refresh-live")
        student.wait_for_selector(f"#follow-user option[value='{admin_id}']", state="attached")
        student.select_option("#follow-user", str(admin_id))
        page.wait_for_function("!document.querySelector('#live-followers').hidden")
        assert "1 following you" in page.locator("#live-followers").inner_text()
        # The teacher zooms into a corner; the student's view follows.
        page.evaluate("""(() => {
            const v = window.microtome.state.viewer;
            v.viewport.fitBounds(v.viewport.imageToViewportRectangle(300, 400, 600, 500));
        })()""")
        page.wait_for_timeout(2600)  # positions go out at most every 2 s
        teacher = view_center(page)
        student.wait_for_function(
            f"""(() => {{
                const v = window.microtome.state.viewer, item = v.world.getItemAt(0);
                const c = item.viewportToImageCoordinates(v.viewport.getCenter(true));
                return Math.abs(c.x - {teacher['x']}) < 60 && Math.abs(c.y - {teacher['y']}) < 60;
            }})()""", timeout=15_000)
        followed = view_center(student)
        assert abs(followed["x"] - teacher["x"]) < 60 and abs(followed["y"] - teacher["y"]) < 60
        assert "Following admin" in student.locator("#live-status").inner_text()
        screenshot(page, "collab-follow-teacher")
        screenshot(student, "collab-follow-student")
        student.click("#stop-follow")
        assert student.locator("#live-status").inner_text() == ""
        # The teacher (a manager) replays where the student looked.
        student.evaluate("""(() => {
            const v = window.microtome.state.viewer;
            v.viewport.fitBounds(v.viewport.imageToViewportRectangle(1000, 1500, 400, 300));
        })()""")
        page.wait_for_timeout(3500)  # sent, sampled and written by the batch writer
    finally:
        student_ctx.close()
    page.wait_for_timeout(1500)
    page.reload()
    wait_tiles(page)
    page.click("#replay-button")
    page.wait_for_selector("#replay-session option >> text=student", state="attached")
    value = page.locator("#replay-session option", has_text="student").first.get_attribute(
        "value")
    page.select_option("#replay-session", value)
    page.wait_for_function("document.querySelector('#live-status').textContent"
                           ".startsWith('Replay finished')", timeout=20_000)
    assert page.evaluate("window.microtome.replayed") >= 1
