"""A review session in Debian chromium (issue 20, item 1 "Done when"): the manager
requires review; two contributors draw in the viewer; the reviewer accepts (one
from the table's bulk bar, one with a new term) and rejects (with a reason);
the image shows reviewed, in the viewer and on the project's grid; the export
of the reviewed layer holds only the accepted annotations.  Also the layers
panel: hiding an author's layer hides their shapes and their counts.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.frontend.browser import (
    ADMIN,
    LiveServer,
    admin_project_slide,
    api_call,
    screenshot,
    ui_login,
    wait_tiles,
)

PASSWORD = "a long enough password"


def _at(p: Any, ix: float, iy: float) -> tuple[float, float]:
    box = p.locator("#osd").bounding_box()
    sx, sy = p.evaluate(f"""(() => {{ const m = window.microtome.annotations.transform();
        return [m[0] * {ix} + m[2] * {iy} + m[4], m[1] * {ix} + m[3] * {iy} + m[5]]; }})()""")
    return box["x"] + sx, box["y"] + sy


def _draw_rect(p: Any, x0: float, y0: float, x1: float, y1: float, n: int) -> None:
    p.click("#anno-tools button[data-tool=rect]")
    p.mouse.move(*_at(p, x0, y0))
    p.mouse.down()
    p.mouse.move(*_at(p, x1, y1), steps=5)
    p.mouse.up()
    p.wait_for_function(f"window.microtome.annotations.features.size === {n}"
                        " && window.microtome.annotations.local.size === 0")


def test_review_session(live_server: LiveServer, context: Any, page: Any,
                        converted_slide: Path, other_pages: Any) -> None:
    csrf, project, iid = admin_project_slide(context, live_server, converted_slide,
                                             project="Review", image="review")
    pid = project["id"]
    for name, role in (("ann", "contributor"), ("bob", "contributor"), ("rev", "reviewer")):
        api_call(context, "POST", "/api/users", csrf, {"username": name, "password": PASSWORD})
        api_call(context, "POST", f"/api/projects/{pid}/members", csrf,
                 {"username": name, "role": role})
    term = api_call(context, "POST", f"/api/projects/{pid}/terms", csrf,
                    {"name": "Tumour", "color": "#e5484d"})["id"]
    # The manager (admin) switches review on from the project page.
    ui_login(page, *ADMIN, next_path=f"/projects/{pid}")
    page.click("#requires-review")
    page.wait_for_function(f"fetch('/api/projects/{pid}/review').then(r => r.json())"
                           ".then(j => j.requires_review)")
    path = f"/viewer/{iid}?project={pid}&x=1200&y=1200&z=1"

    # Two contributors draw: ann two rectangles, bob one.
    made: dict[str, int] = {}
    ann = other_pages()
    ui_login(ann, "ann", PASSWORD, next_path=path)
    wait_tiles(ann)
    ann.wait_for_function("window.microtome.tools !== undefined")
    _draw_rect(ann, 950, 950, 1150, 1150, 1)
    _draw_rect(ann, 1250, 950, 1450, 1150, 2)
    bob = other_pages()
    ui_login(bob, "bob", PASSWORD, next_path=path)
    wait_tiles(bob)
    bob.wait_for_function("window.microtome.tools !== undefined"
                          " && window.microtome.annotations.features.size === 2")
    _draw_rect(bob, 950, 1250, 1150, 1450, 3)
    rows = api_call(context, "GET", f"/api/images/{iid}/annotations/table?sort=id", csrf)["items"]
    assert [r["review_status"] for r in rows] == ["pending"] * 3
    made = {"ann1": rows[0]["id"], "ann2": rows[1]["id"], "bob": rows[2]["id"]}
    assert [r["author"] for r in rows] == ["ann", "ann", "bob"]

    # The reviewer: the image is not reviewed yet.
    rev = other_pages()
    ui_login(rev, "rev", PASSWORD, next_path=path)
    wait_tiles(rev)
    rev.wait_for_function("window.microtome.tools !== undefined"
                          " && window.microtome.annotations.features.size === 3")
    expect(rev.locator("#image-review")).to_contain_text("3 pending")
    # Layers: one per author, hiding bob's hides his shape.
    rev.locator("#layers summary").click()
    expect(rev.locator("#layer-list li")).to_have_count(2)
    rev.locator("#layer-list li", has_text="bob").locator("input[type=checkbox]").uncheck()
    rev.wait_for_function("[...window.microtome.annotations.allFeatures()]"
                          ".filter(f => window.microtome.annotations.visible(f)).length === 2")
    rev.locator("#layer-list li", has_text="bob").locator("input[type=checkbox]").check()
    # Bulk accept of ann's first from the table.
    rev.click("#open-table")
    table_rows = rev.locator("#anno-table tbody tr")
    expect(table_rows).to_have_count(3)
    rev.locator(f"#anno-table tbody tr[data-id='{made['ann1']}'] input[type=checkbox]").check()
    rev.click("#bulk-accept")
    expect(rev.locator(f"#anno-table tbody tr[data-id='{made['ann1']}'] td.review")
           ).to_have_text("accepted")
    # Reject bob's with a reason, from the selection.
    rev.locator(f"#anno-table tbody tr[data-id='{made['bob']}']").click()
    rev.wait_for_function(f"window.microtome.annotations.selectedId === {made['bob']}")
    rev.fill("#review-reason", "not tumour: a fold")
    rev.click("#review-reject")
    expect(rev.locator("#review-status")).to_contain_text("rejected")
    # Accept ann's second, giving it a term.
    rev.locator(f"#anno-table tbody tr[data-id='{made['ann2']}']").click()
    rev.wait_for_function(f"window.microtome.annotations.selectedId === {made['ann2']}")
    rev.select_option("#review-term", str(term))
    rev.click("#review-accept")
    expect(rev.locator("#review-status")).to_contain_text("accepted")
    expect(rev.locator("#image-review")).to_contain_text("Reviewed")
    screenshot(rev, "review-reviewer-done")

    # The export of the reviewed layer holds only the accepted annotations.
    rev.check("#export-reviewed")
    with rev.expect_download() as dl:
        rev.click("#export-csv")
    exported = list(csv.DictReader(Path(dl.value.path()).read_text().splitlines()))
    assert sorted(int(r["id"]) for r in exported) == sorted([made["ann1"], made["ann2"]])
    by = {int(r["id"]): r for r in exported}
    assert by[made["ann2"]]["term"] == "Tumour" and by[made["ann2"]]["reviewed_by"] == "rev"
    with rev.expect_download() as dl:
        rev.click("#export-xlsx")
    assert Path(dl.value.path()).read_bytes()[:2] == b"PK"

    # Recorded: who rejected what and why.
    hist = api_call(context, "GET", f"/api/annotations/{made['bob']}/reviews", csrf)["items"]
    assert [(h["action"], h["reviewer"], h["reason"]) for h in hist] == [
        ("reject", "rev", "not tumour: a fold")]

    # The project grid shows the image reviewed.
    rev.goto(f"/projects/{pid}")
    badge = rev.locator(f".tile-card[data-image-id='{iid}'] .review-badge")
    expect(badge).to_have_attribute("data-reviewed", "true")
    expect(badge).to_contain_text("2 accepted, 1 rejected")
    screenshot(rev, "review-project-grid")

    # The project's statistics and its export of the reviewed layer.
    rev.click("#project-annotations summary")
    expect(rev.locator("#project-stats-body table")).to_contain_text("Tumour")
    rev.check("#project-export-reviewed")
    with rev.expect_download() as dl:
        rev.click("#project-export-csv")
    exported = list(csv.DictReader(Path(dl.value.path()).read_text().splitlines()))
    assert sorted(int(r["id"]) for r in exported) == sorted([made["ann1"], made["ann2"]])
