"""The viewer's "Similar" panel, in Debian chromium, on a server with pgvector.

A reference slide in one project holds hand-labelled annotations; the user draws a
rectangle over stroma on another slide of another project: the panel lists
neighbours from the reference slide (thumbnail, image name, term), suggests
"stroma" (the query project's own term of that name), applies it in one click, and a
neighbour's link opens the reference slide at that region.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.frontend.browser import (
    ADMIN,
    LiveServer,
    admin_project_slide,
    api_call,
    register_slide,
    screenshot,
    ui_login,
    view_center,
    wait_tiles,
)
from tests.retrieval.conftest import (  # noqa: F401 (fixtures)
    vector_database_url,
    vector_server_url,
    vector_template,
)
from tests.retrieval.labelled_tiles import LABELS, TILE


@pytest.fixture
def database_url(vector_database_url: str) -> str:  # noqa: F811
    """The live server runs on a database with pgvector (retrieval on)."""
    return vector_database_url


def _rect(gx: int, gy: int, inset: int = 0) -> dict[str, Any]:
    x0, y0, x1, y1 = gx * TILE + inset, gy * TILE + inset, (gx + 1) * TILE - inset, \
        (gy + 1) * TILE - inset
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1],
                                                [x0, y0]]]}


def test_drawing_a_region_shows_similar_regions_and_applies_the_suggested_term(
        live_server: LiveServer, context: Any, page: Any, converted_slide: Path,
        tmp_path: Path) -> None:
    csrf, ref_project, ref_image = admin_project_slide(
        context, live_server, converted_slide, project="Reference", image="reference-slide")
    ref_terms = {name: api_call(context, "POST", f"/api/projects/{ref_project['id']}/terms",
                                csrf, {"name": name})["id"] for name in LABELS}
    items = [{"geometry": _rect(gx, gy), "terms": [ref_terms[label]]}
             for label, cells in LABELS.items() for gx, gy in cells]
    api_call(context, "POST", f"/api/images/{ref_image}/annotations/batch", csrf,
             {"annotations": items, "project_id": ref_project["id"]})
    project = api_call(context, "POST", "/api/projects", csrf, {"name": "Study"})
    terms = {name: api_call(context, "POST", f"/api/projects/{project['id']}/terms",
                            csrf, {"name": name})["id"] for name in LABELS}
    copy = tmp_path / "copy" / converted_slide.name
    shutil.copytree(converted_slide, copy)
    copy = copy.rename(copy.with_name("study-" + copy.name))
    image = register_slide(live_server, copy, name="study-slide", project_id=project["id"])

    ui_login(page, *ADMIN, next_path=f"/viewer/{image}?project={project['id']}")
    wait_tiles(page)
    page.wait_for_function("window.microtome.tools !== undefined")
    expect(page.locator("#similar-panel")).to_contain_text("Select or draw an annotation")

    # Draw a rectangle inside a stroma tile (image → screen through OpenSeadragon).
    gx, gy = LABELS["stroma"][0]
    corners = [page.evaluate(
        """([x, y]) => { const v = window.microtome.state.viewer;
            const p = v.viewport.imageToViewerElementCoordinates(new OpenSeadragon.Point(x, y));
            return [p.x, p.y]; }""", [gx * TILE + dx, gy * TILE + dy])
        for dx, dy in ((16, 16), (TILE - 16, TILE - 16))]
    box = page.locator("#osd").bounding_box()
    page.keyboard.press("b")
    page.mouse.move(box["x"] + corners[0][0], box["y"] + corners[0][1])
    page.mouse.down()
    page.mouse.move(box["x"] + corners[1][0], box["y"] + corners[1][1], steps=5)
    page.mouse.up()

    listed = page.locator("#similar-list li")
    expect(listed.first).to_be_visible(timeout=30_000)
    assert listed.count() == 8
    # Neighbours come from the other slide; most of the nearest are stroma.
    names = page.locator("#similar-list .similar-image").all_inner_texts()
    assert set(names) == {"reference-slide"}
    near = page.locator("#similar-list .similar-term").all_inner_texts()[:5]
    assert sum(t == "stroma" for t in near) >= 4, near
    first_img = page.locator("#similar-list img").first
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                           arg=first_img.element_handle())
    page.locator("#similar-panel").scroll_into_view_if_needed()
    screenshot(page, "similar-panel")

    # The suggestion is the study project's own "stroma"; one click applies it.
    top = page.locator("#similar-terms li").first
    expect(top.locator(".similar-term-name")).to_have_text("stroma")
    drawn = page.evaluate("window.microtome.similar.current()")
    top.locator("button.similar-apply").click()
    page.wait_for_function(
        "([id, t]) => (window.microtome.annotations.get(id) || {terms: []}).terms.includes(t)",
        arg=[drawn, terms["stroma"]])
    expect(page.locator("#similar-terms li").first).to_contain_text("(has it)")
    for _ in range(50):  # the edit is optimistic: the server has it a moment later
        saved = api_call(context, "GET", f"/api/annotations/{drawn}", csrf)
        if saved["properties"]["terms"]:
            break
        page.wait_for_timeout(100)
    assert saved["properties"]["terms"] == [terms["stroma"]], saved

    # "Find similar regions on this slide": a heat-map layer and candidates to accept.
    page.locator("#similar-slide-search").click()
    candidates = page.locator("#similar-candidates li")
    expect(candidates.first).to_be_visible(timeout=60_000)
    assert candidates.count() == 5
    page.wait_for_function("window.microtome.state.viewer.world.getItemCount() === 2")
    page.wait_for_timeout(500)
    screenshot(page, "similar-heatmap")
    page.locator("#similar-candidates li").first.locator("button").first.click()
    saved_ids = "[...window.microtome.annotations.features.keys()].filter(k => k > 0).length"
    before = page.evaluate(saved_ids)
    candidates.first.locator("button.similar-accept").click()
    page.wait_for_function(f"{saved_ids} === {before + 1}")
    page.locator("#heatmap-hide").click()
    page.wait_for_function("window.microtome.state.viewer.world.getItemCount() === 1")

    # Accepting showed the new annotation's neighbours (the drawn region among them);
    # back to the drawn one: a neighbour on the reference slide opens it centred there.
    page.evaluate(f"window.microtome.similar.show({drawn})")
    link = page.locator("#similar-list a", has_text="reference-slide").first
    href = link.get_attribute("href")
    assert href is not None and href.startswith(f"/viewer/{ref_image}?")
    link.click()
    page.wait_for_url(f"**/viewer/{ref_image}?**")
    wait_tiles(page)
    c = view_center(page)
    from urllib.parse import parse_qs, urlparse

    q = parse_qs(urlparse(href).query)
    assert abs(c["x"] - float(q["x"][0])) < 5 and abs(c["y"] - float(q["y"][0])) < 5
