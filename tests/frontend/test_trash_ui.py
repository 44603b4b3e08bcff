"""Nothing is lost by a delete (issue 14, item 1), in Debian chromium: the dialog says
what goes and exports it first; the project comes back from the Trash page with every
annotation; an image likewise; a contributor sees an empty trash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.frontend.browser import (
    ADMIN,
    ConsoleLog,
    LiveServer,
    admin_project_slide,
    api_call,
    screenshot,
    ui_login,
)

PASSWORD = "a long enough password"


def _square(x: float, y: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[x, y], [x + 50, y], [x + 50, y + 50],
                                                [x, y + 50], [x, y]]]}


def test_delete_project_then_restore_every_annotation(
        live_server: LiveServer, browser: Any, context: Any, page: Any, console: ConsoleLog,
        converted_slide: Path) -> None:
    csrf, project, iid = admin_project_slide(context, live_server, converted_slide,
                                             project="Case 7", image="case-7-he")
    pid = project["id"]
    user = api_call(context, "POST", "/api/users", csrf,
                    {"username": "tech", "password": PASSWORD})
    api_call(context, "PUT", f"/api/projects/{pid}/members/{user['id']}", csrf,
             {"role": "contributor"})
    ids = [api_call(context, "POST", f"/api/images/{iid}/annotations", csrf,
                    {"geometry": _square(100 * k, 100)})["id"] for k in (1, 2)]
    # A second author, through their own session.
    other = browser.new_context(base_url=live_server.url)
    try:
        r = other.request.post("/api/session", data={"username": "tech", "password": PASSWORD})
        tech_csrf = r.json()["csrf_token"]
        ids.append(api_call(other, "POST", f"/api/images/{iid}/annotations", tech_csrf,
                            {"geometry": _square(400, 100)})["id"])
        # A contributor's trash is empty: restoring is for managers.
        other_page = other.new_page()
        ui_login(other_page, "tech", PASSWORD, next_path="/trash")
        expect(other_page.locator("#trash")).to_contain_text("The trash is empty.")
        other_page.close()
    finally:
        other.close()

    ui_login(page, *ADMIN, next_path=f"/projects/{pid}")
    page.click("#delete-project")
    dialog = page.locator("#delete-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#delete-summary")).to_contain_text("1 image link")
    expect(dialog.locator("#delete-summary")).to_contain_text("3 annotations by 2 people")
    expect(dialog).to_contain_text("for 30 days")
    with page.expect_download() as dl:
        dialog.locator("#delete-export").click()
    exported = json.loads(Path(dl.value.path()).read_text())
    assert sorted(f["properties"]["microtome"]["id"] for f in exported["features"]) == sorted(ids)
    assert {f["properties"]["image_id"] for f in exported["features"]} == {iid}
    expect(dialog).to_contain_text("Exported 3 annotations.")
    screenshot(page, "trash-delete-dialog")
    dialog.locator("#delete-confirm").click()
    page.wait_for_url(lambda url: url.rstrip("/").endswith(live_server.url.split("//")[1])
                      or url.endswith("/"))
    assert context.request.get(f"/api/projects/{pid}").status == 404

    page.goto("/trash")
    row = page.locator("#trash tr", has_text="Case 7")
    expect(row).to_contain_text("3 annotations by 2 people")
    expect(row).to_contain_text("admin")
    screenshot(page, "trash-page")
    row.get_by_role("button", name="Restore Case 7").click()
    expect(page.locator("#trash-status")).to_contain_text("Restored “Case 7”")
    expect(page.locator("#trash")).to_contain_text("The trash is empty.")
    page.locator("#trash-status a").click()
    page.wait_for_url(f"**/projects/{pid}")
    expect(page.locator("#grid")).to_contain_text("case-7-he")
    counts = context.request.get(f"/api/images/{iid}/annotations/counts").json()
    assert counts["total"] == 3
    for aid in ids:
        assert context.request.get(f"/api/annotations/{aid}").status == 200
    members = context.request.get(f"/api/projects/{pid}/members").json()
    assert {m["username"]: m["role"] for m in members["items"]}["tech"] == "contributor"

    # An image: deleted from the project page, restored from the trash.
    page.get_by_role("button", name="Delete case-7-he").click()
    expect(page.locator("#delete-summary")).to_contain_text("3 annotations by 2 people")
    page.locator("#delete-confirm").click()
    expect(page.locator("#grid")).to_contain_text("No images yet")
    page.goto("/trash")
    page.select_option("#trash-kind", "image")
    page.get_by_role("button", name="Restore case-7-he").click()
    expect(page.locator("#trash-status")).to_contain_text("Restored")
    assert context.request.get(f"/api/images/{iid}/annotations/counts").json()["total"] == 3
    assert not console.unexpected(), console.errors
