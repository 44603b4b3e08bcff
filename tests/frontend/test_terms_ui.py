"""Terms in the viewer: shared views draw annotations in their terms' colours;
managers rename, recolour and delete terms from the term panel."""

from __future__ import annotations

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
    wait_tiles,
)

GREEN = "#30a46c"  # unlike the default yellow, green dominates red here


def _seed(live_server: LiveServer, context: Any, slide: Path, shapes: int = 1
          ) -> dict[str, Any]:
    """A project with the slide, a green term and a big polygon using it (through the API)."""
    csrf, project, image_id = admin_project_slide(context, live_server, slide,
                                                  project="Pathology", image="CMU-1-Small-Region")
    term = api_call(context, "POST", f"/api/projects/{project['id']}/terms", csrf,
                    {"name": "Stroma", "color": GREEN})
    for i in range(shapes):
        x, y = 500 + 40 * i, 700 + 40 * i
        ring = [[x, y], [x + 1200, y], [x + 1200, y + 1600], [x, y + 1600], [x, y]]
        api_call(context, "POST", f"/api/images/{image_id}/annotations", csrf,
                 {"geometry": {"type": "Polygon", "coordinates": [ring]},
                  "terms": [term["id"]], "project_id": project["id"]})
    return {"csrf": csrf, "project": project, "image_id": image_id, "term": term}


def _centre_rgba(page: Any) -> list[int]:
    """RGBA of the annotation overlay at the centre of the viewer."""
    return list(page.evaluate("""(() => {
        const c = document.querySelector('#anno-canvas');
        const px = c.getContext('2d').getImageData(c.width >> 1, c.height >> 1, 1, 1);
        return Array.from(px.data);
    })()"""))


def test_shared_view_uses_term_colours(live_server: LiveServer, context: Any,
                                       other_pages: Any, converted_slide: Path) -> None:
    seed = _seed(live_server, context, converted_slide)
    link = api_call(context, "POST", "/api/share-links", seed["csrf"],
                    {"image_id": seed["image_id"], "expires_in": 3600})
    # No cookies: an anonymous visitor (console errors fail the test, see other_pages).
    page = other_pages(viewport={"width": 1000, "height": 700})
    page.goto(link["url"])
    wait_tiles(page)
    page.wait_for_function("window.microtome.annotations"
                           " && window.microtome.annotations.features.size === 1")
    # The term is known to the shared view (listed, read-only) ...
    expect(page.locator(".term-list li", has_text="Stroma")).to_have_count(1)
    expect(page.locator("#anno-tools")).to_be_hidden()
    expect(page.locator(".term-edit")).to_have_count(0)  # read-only: no term editing
    assert page.evaluate("window.microtome.annotations.termColor("
                         f"[{seed['term']['id']}])") == GREEN
    # ... and the polygon is painted in its colour, not the default yellow.
    page.wait_for_timeout(150)
    r, g, b, a = _centre_rgba(page)
    assert a > 0 and g > r and g > b, (r, g, b, a)


def test_manager_renames_and_deletes_terms(live_server: LiveServer, context: Any, page: Any,
                                           converted_slide: Path, console: ConsoleLog) -> None:
    seed = _seed(live_server, context, converted_slide, shapes=2)
    pid, iid, term = seed["project"]["id"], seed["image_id"], seed["term"]
    api_call(context, "POST", f"/api/projects/{pid}/terms", seed["csrf"],
             {"name": "Spare", "color": "#888888"})
    ui_login(page, *ADMIN, next_path=f"/viewer/{iid}?project={pid}")
    wait_tiles(page)
    page.wait_for_function("window.microtome.annotations.features.size === 2")
    terms = page.locator(".term-list li")

    # Rename and recolour.
    page.click("button[aria-label='Edit term Stroma']")
    page.fill("#term-edit-name", "Fibrosis")
    page.fill("#term-edit-color", "#3e63dd")
    page.click("#term-save")
    expect(terms.filter(has_text="Fibrosis")).to_have_count(1)
    expect(terms.filter(has_text="Stroma")).to_have_count(0)
    assert page.evaluate(f"window.microtome.annotations.termColor([{term['id']}])") == "#3e63dd"
    stored = api_call(context, "GET", f"/api/projects/{pid}/terms", seed["csrf"])
    assert {(t["name"], t["color"]) for t in stored} == {("Fibrosis", "#3e63dd"),
                                                         ("Spare", "#888888")}

    # An unused term goes at once.
    page.click("button[aria-label='Edit term Spare']")
    page.click("#term-delete")
    expect(terms.filter(has_text="Spare")).to_have_count(0)

    # A term in use: the server's 409 becomes a confirmation with the count.
    console.expected.append(f"/api/projects/{pid}/terms/{term['id']}")
    page.click("button[aria-label='Edit term Fibrosis']")
    page.click("#term-delete")
    expect(page.locator("#term-edit-msg")).to_contain_text("used by 2 annotations")
    screenshot(page, "10-term-delete-confirm")
    expect(terms.filter(has_text="Fibrosis")).to_have_count(1)  # nothing deleted yet
    page.click("#term-delete-force")
    expect(page.locator("#term-dialog")).to_be_hidden()
    expect(terms.filter(has_text="Fibrosis")).to_have_count(0)
    assert api_call(context, "GET", f"/api/projects/{pid}/terms", seed["csrf"]) == []
    counts = api_call(context, "GET", f"/api/images/{iid}/annotations/counts", seed["csrf"])
    assert counts["total"] == 2 and counts["untermed"] == 2
