"""Browser tests of the collaboration left-overs: the project's annotation table,
editing descriptions / properties / tags, saved layer colours, and the project
page's link into /compare."""

from __future__ import annotations

import csv
import io
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
    wait_tiles,
)
from tests.frontend.test_collab_ui import _copy

HOSTILE = ("# Study plan\n<script>window.pwned=1</script>\n"
           "<img src=x onerror=\"window.pwned=2\">\n[link](javascript:window.pwned=3)\n*ok*")


def square(x: float, y: float, s: float) -> dict[str, Any]:
    return {"type": "Polygon",
            "coordinates": [[[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]]}


def _two_slides(context: Any, server: LiveServer, slide: Path, tmp: Path
                ) -> tuple[str, int, list[int]]:
    csrf, project, first = admin_project_slide(context, server, slide, project="Study",
                                               image="slide-a")
    pid = project["id"]
    second = register_slide(server, _copy(slide, tmp, "slide-b"), name="slide-b",
                            project_id=pid)
    return csrf, pid, [first, second]


def _rows(page: Any) -> list[int]:
    return [int(x) for x in page.locator("#project-table tbody tr").evaluate_all(
        "els => els.map(e => e.dataset.id)")]


def _wait_rows(page: Any, n: int) -> None:
    page.wait_for_function(
        f"document.querySelectorAll('#project-table tbody tr').length === {n}")


def test_project_annotation_table(live_server: LiveServer, context: Any, page: Any,
                                  converted_slide: Path, tmp_path: Path,
                                  console: ConsoleLog) -> None:
    csrf, pid, (ia, ib) = _two_slides(context, live_server, converted_slide, tmp_path)
    tumour = api_call(context, "POST", f"/api/projects/{pid}/terms", csrf,
                      {"name": "Tumour", "color": "#ff0000"})
    stroma = api_call(context, "POST", f"/api/projects/{pid}/terms", csrf,
                      {"name": "Stroma", "color": "#00ff00"})
    made = []
    for i in range(6):
        iid = ia if i < 4 else ib
        body = {"geometry": square(100 + 150 * i, 200, 20 + 10 * i), "project_id": pid,
                "terms": [tumour["id"] if i % 2 else stroma["id"]],
                "data": {"grade": "high" if i in (1, 4) else "low"}}
        made.append(api_call(context, "POST", f"/api/images/{iid}/annotations", csrf, body))
    ids = [f["id"] for f in made]
    ui_login(page, *ADMIN, next_path=f"/projects/{pid}")
    page.click("#project-table-box summary")
    _wait_rows(page, 6)
    assert page.locator("#table-count").inner_text() == "6 annotations"
    # Sort by area both ways (server side): the largest first, then the smallest.
    page.click("#project-table th >> text=Area")
    page.wait_for_function("document.querySelector('#project-table th[aria-sort=ascending]')")
    assert _rows(page) == ids
    page.click("#project-table th >> text=Area")
    page.wait_for_function("document.querySelector('#project-table th[aria-sort=descending]')")
    assert _rows(page) == ids[::-1]
    # Image column and filter.
    page.click("#project-table th >> text=Image")
    page.wait_for_function("document.querySelector('#project-table tbody tr td:nth-child(3)')"
                           ".textContent === 'slide-a'")
    page.select_option("#table-image", str(ib))
    _wait_rows(page, 2)
    assert sorted(_rows(page)) == ids[4:]
    page.select_option("#table-image", "")
    _wait_rows(page, 6)
    # Property filter: key = value (case-insensitive), then with the term filter.
    page.fill("#table-prop", "grade")
    page.fill("#table-prop-value", "HIGH")
    page.press("#table-prop-value", "Enter")  # key and value apply together
    _wait_rows(page, 2)
    assert sorted(_rows(page)) == [ids[1], ids[4]]
    page.select_option("#table-term", str(tumour["id"]))
    _wait_rows(page, 1)
    assert _rows(page) == [ids[1]]
    # The exports take the current filter.
    href = page.get_attribute("#export-csv", "href")
    assert "prop=grade" in href and "prop_value=HIGH" in href
    text = context.request.get(href).text()
    exported = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["id"]) for r in exported] == [ids[1]]
    for fmt in ("geojson", "xlsx"):
        assert context.request.get(page.get_attribute(f"#export-{fmt}", "href")).ok
    screenshot(page, "collab-project-table-filtered")
    # Bulk action: the selected rows get another term.
    page.select_option("#table-term", "")
    _wait_rows(page, 2)
    page.check("#project-table thead input[type=checkbox]")
    page.select_option("#bulk-term", str(stroma["id"]))
    page.click("#bulk-set-term")
    page.wait_for_selector("#bulk-bar", state="detached")
    page.select_option("#table-term", str(tumour["id"]))
    _wait_rows(page, 0)
    # A row opens the annotation in the viewer, selected.
    page.select_option("#table-term", "")
    _wait_rows(page, 2)
    link = page.locator(f"#project-table tr[data-id='{ids[4]}'] a.open-in-viewer")
    assert link.get_attribute("href") == f"/viewer/{ib}?project={pid}#annotation-{ids[4]}"
    link.click()
    wait_tiles(page)
    page.wait_for_function(f"window.microtome.annotations.selectedId === {ids[4]}")
    screenshot(page, "collab-project-table-opened-in-viewer")


def test_edit_descriptions_properties_and_tags(live_server: LiveServer, context: Any,
                                               page: Any, converted_slide: Path,
                                               console: ConsoleLog) -> None:
    csrf, project, iid = admin_project_slide(context, live_server, converted_slide,
                                             project="Edits", image="slide")
    pid = project["id"]
    ann = api_call(context, "POST", f"/api/images/{iid}/annotations", csrf,
                   {"geometry": square(300, 300, 80), "project_id": pid})
    ui_login(page, *ADMIN, next_path=f"/projects/{pid}")
    # Project description (hostile Markdown: rendered inert) and properties.
    page.click("#project-description-edit")
    page.fill("#project-description-text", HOSTILE)
    page.click("#project-description-save")
    page.wait_for_selector("#project-description .description h1")
    page.fill("#project-props-form input[name=key]", "study")
    page.fill("#project-props-form input[name=value]", "S-42")
    page.click("#project-props-form button[type=submit]")
    page.wait_for_selector("#project-props tr[data-key=study]")
    page.reload()
    page.wait_for_selector("#project-description .description h1")
    assert page.locator("#project-description .description h1").inner_text() == "Study plan"
    assert page.locator("#project-description .description em").inner_text() == "ok"
    assert page.locator("#project-description script, #project-description img").count() == 0
    hrefs = page.locator("#project-description a").evaluate_all(
        "els => els.map(e => e.getAttribute('href'))")
    assert not any((h or "").startswith("javascript:") for h in hrefs)
    assert page.evaluate("window.pwned") is None
    page.wait_for_selector("#project-props tr[data-key=study]")
    assert page.locator("#project-props tr[data-key=study] .prop-value").inner_text() == "S-42"
    screenshot(page, "collab-project-about-edited")
    # Remove the property again; gone after a reload.
    page.click("#project-props button[aria-label='Remove property study']")
    page.wait_for_selector("#project-props tr[data-key=study]", state="detached")
    page.reload()
    page.wait_for_selector("#project-props .muted")
    assert page.locator("#project-props tr").count() == 0

    # The viewer: the annotation's properties, the image's description and tags.
    page.goto(f"/viewer/{iid}?project={pid}#annotation-{ann['id']}")
    wait_tiles(page)
    page.wait_for_selector("#anno-props-form")
    page.fill("#anno-props-form input[name=key]", "grade")
    page.fill("#anno-props-form input[name=value]", "3+")
    page.click("#anno-props-form button[type=submit]")
    page.wait_for_selector("#anno-props tr[data-key=grade]")
    page.click("#image-description-edit")
    page.fill("#image-description-text", "**Block A1**, stained <b>HE</b>")
    page.click("#image-description-save")
    page.wait_for_selector("#image-description .description strong")
    page.click("#image-tags-edit")
    page.fill("#image-tags-input", "teaching, HE ,teaching")
    page.click("#image-tags-save")
    page.wait_for_selector("#image-tags .tags")
    page.reload()
    wait_tiles(page)
    page.wait_for_selector("#anno-props tr[data-key=grade]")
    assert page.locator("#anno-props tr[data-key=grade] .prop-value").inner_text() == "3+"
    page.wait_for_selector("#image-description .description strong")
    desc = page.locator("#image-description .description")
    assert desc.locator("strong").inner_text() == "Block A1"
    assert desc.locator("b").count() == 0 and "<b>HE</b>" in desc.inner_text()
    assert page.locator("#image-tags .tags .badge").all_inner_texts() == ["teaching", "HE"]
    screenshot(page, "collab-viewer-edits")


def test_layer_colours_are_saved(live_server: LiveServer, context: Any, page: Any,
                                 converted_slide: Path, console: ConsoleLog) -> None:
    csrf, project, iid = admin_project_slide(context, live_server, converted_slide,
                                             project="Colours", image="slide")
    pid = project["id"]
    api_call(context, "POST", f"/api/images/{iid}/annotations", csrf,
             {"geometry": square(300, 300, 200), "project_id": pid})
    me = api_call(context, "GET", "/api/session", csrf)["user"]["id"]
    ui_login(page, *ADMIN, next_path=f"/viewer/{iid}?project={pid}")
    wait_tiles(page)
    page.click("#layers summary")
    swatch = page.locator(f"#layer-list li[data-layer='user:{me}'] input[type=color]")
    # the colour applies at once; the PATCH that saves it completes later
    with page.expect_response(lambda r: "/layer-colors" in r.url
                              and r.request.method == "PATCH") as saving:
        swatch.fill("#ff8800")
    assert saving.value.ok
    page.wait_for_function(f"window.microtome.annotations.layerColor("
                           f"{{id: 1, properties: {{user_id: {me}}}}}) === '#ff8800'")
    saved = api_call(context, "GET", f"/api/projects/{pid}/layer-colors", csrf)
    assert saved["colors"] == {f"user:{me}": "#ff8800"}
    page.reload()
    wait_tiles(page)
    page.click("#layers summary")
    page.wait_for_function(
        f"document.querySelector(\"#layer-list li[data-layer='user:{me}'] input[type=color]\")"
        "?.value === '#ff8800'")
    assert page.evaluate(f"window.microtome.annotations.layerColor("
                         f"{{id: 1, properties: {{user_id: {me}}}}})") == "#ff8800"
    screenshot(page, "collab-layer-colour-saved")
    # Back to the terms' colours: forgotten on the server too.
    page.click(f"#layer-list li[data-layer='user:{me}'] button.link")
    page.wait_for_function(
        f"fetch('/api/projects/{pid}/layer-colors').then(r => r.json())"
        ".then(d => Object.keys(d.colors).length === 0)")


def test_compare_from_the_project_page(live_server: LiveServer, context: Any, page: Any,
                                       converted_slide: Path, tmp_path: Path,
                                       console: ConsoleLog) -> None:
    _, pid, (ia, ib) = _two_slides(context, live_server, converted_slide, tmp_path)
    ui_login(page, *ADMIN, next_path=f"/projects/{pid}")
    page.wait_for_selector("#grid [data-image-id] .compare-check")
    assert page.locator("#compare-button").is_disabled()
    page.check("#grid [aria-label='Compare slide-a']")
    assert page.locator("#compare-button").is_disabled()  # one is not a comparison
    page.check("#grid [aria-label='Compare slide-b']")
    page.click("#compare-button")
    page.wait_for_url(f"**/compare?images={ia},{ib}")
    page.wait_for_function(
        "window.compare && window.compare.ready && window.compare.panes.length === 2 &&"
        " window.compare.panes.every(p => p.opened && p.viewer.world.getItemAt(0)"
        ".getFullyLoaded())", timeout=30_000)
    assert page.locator(".compare-pane .name").all_inner_texts() == ["slide-a", "slide-b"]
    screenshot(page, "collab-compare-from-project")
