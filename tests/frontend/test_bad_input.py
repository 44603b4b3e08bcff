"""What goes wrong, in the browser: a dropped connection mid-upload, a slide
still converting, an expired session."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.frontend.browser import (
    ADMIN,
    ConsoleLog,
    LiveServer,
    api_call,
    api_setup_admin,
    db_run,
    screenshot,
    ui_login,
    wait_tiles,
)


def test_upload_resumes_after_a_dropped_connection(
        live_server: LiveServer, context: Any, page: Any, testdata: Path,
        console: ConsoleLog, converted_slide: Path) -> None:
    csrf = api_setup_admin(context)
    project = api_call(context, "POST", "/api/projects", csrf, {"name": "Flaky"})
    ui_login(page, *ADMIN, next_path=f"/projects/{project['id']}")

    # The first PATCH dies mid-flight (connection reset); the client must ask
    # the server for the offset and carry on.
    dropped: list[str] = []

    def flaky(route: Any) -> None:
        if route.request.method == "PATCH" and not dropped:
            dropped.append(route.request.url)
            route.abort("connectionreset")
        else:
            route.continue_()

    console.expected.append("ERR_CONNECTION_RESET")
    page.route("**/api/uploads/*", flaky)
    # The drop zone is shown once the page has wired it up.
    expect(page.locator("#upload-section")).to_be_visible()
    page.set_input_files("#file-input", str(testdata / "sample.jpg"))
    row = page.locator("#uploads li[data-file='sample.jpg']")
    expect(row).to_have_attribute("data-state", "ready", timeout=120_000)
    assert dropped, "the connection drop was not exercised"
    card = page.locator(".tile-card", has_text="sample.jpg")
    expect(card.locator(".badge")).to_have_text("ready")

    # -- a slide still converting: the viewer says so, then opens by itself ------
    async def pending(conn: Any) -> int:
        from microtome.catalog.images import create_pending

        return int(await create_pending(conn, name="slow slide", source_filename="slow.svs",
                                        owner_id=None, project_id=project["id"]))

    image_id = db_run(live_server, pending)
    page.goto(f"/viewer/{image_id}")
    expect(page.locator("#viewer-status")).to_contain_text("still being converted")
    screenshot(page, "11-converting")

    async def finish(conn: Any) -> None:
        from microtome.catalog.images import storage_relpath
        from microtome.pyramid.reader import open_pyramid

        dst = live_server.var_dir / "images" / storage_relpath(image_id)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(converted_slide, dst)
        meta = open_pyramid(dst).meta
        await conn.execute(
            "UPDATE images SET status = 'ready', width = $2, height = $3, levels = $4,"
            " version = $5 WHERE id = $1", image_id, meta.width, meta.height,
            len(meta.levels), meta.version)

    db_run(live_server, finish)
    wait_tiles(page)
    expect(page.locator("#viewer-status")).to_be_hidden()

    # -- an expired session: back to the login page, then back to where we were --
    page.goto(f"/projects/{project['id']}")
    expect(page.locator(".tile-card")).to_have_count(2)
    console.expected.append("401")
    context.clear_cookies()
    page.select_option("#sort", "-created_at")  # the next API call finds no session
    page.wait_for_url("**/login?next=*")
    ui_login_here(page)
    page.wait_for_url(f"**/projects/{project['id']}")
    expect(page.locator(".tile-card")).to_have_count(2)

    # -- the session expires while drawing: the shape is kept, saved after login --
    page.goto(f"/viewer/{image_id}?project={project['id']}")
    wait_tiles(page)
    context.clear_cookies()
    box = page.locator("#osd").bounding_box()
    page.keyboard.press("p")
    page.mouse.click(box["x"] + 500, box["y"] + 400)
    expect(page.locator(".toast.error")).to_contain_text("session has expired")
    assert page.url.split("?")[0].endswith(f"/viewer/{image_id}")  # still here
    other = context.new_page()
    other.goto("/login")
    ui_login_here(other)
    other.wait_for_url("**/")
    other.close()
    page.keyboard.press("s")
    page.mouse.click(box["x"] + 500, box["y"] + 400)
    page.click("#selection button:text-is('Retry')")
    page.wait_for_function("window.microtome.annotations.features.size === 1"
                           " && window.microtome.annotations.local.size === 0")


def ui_login_here(page: Any) -> None:
    page.fill("#username", ADMIN[0])
    page.fill("#password", ADMIN[1])
    page.click("#login-submit")
