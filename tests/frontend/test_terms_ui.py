"""Terms in the viewer: shared views draw annotations in their terms' colours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.frontend.browser import (
    ConsoleLog,
    LiveServer,
    api_call,
    api_setup_admin,
    register_slide,
    wait_tiles,
    watch_console,
)

GREEN = "#30a46c"  # unlike the default yellow, green dominates red here


def _seed(live_server: LiveServer, context: Any, slide: Path) -> dict[str, Any]:
    """A project with the slide, a green term and a big polygon using it (through the API)."""
    csrf = api_setup_admin(context)
    project = api_call(context, "POST", "/api/projects", csrf, {"name": "Pathology"})
    image_id = register_slide(live_server, slide, name="CMU-1-Small-Region",
                              project_id=project["id"])
    term = api_call(context, "POST", f"/api/projects/{project['id']}/terms", csrf,
                    {"name": "Stroma", "color": GREEN})
    ring = [[500, 700], [1700, 700], [1700, 2300], [500, 2300], [500, 700]]
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


def test_shared_view_uses_term_colours(live_server: LiveServer, browser: Any, context: Any,
                                       converted_slide: Path) -> None:
    seed = _seed(live_server, context, converted_slide)
    link = api_call(context, "POST", "/api/share-links", seed["csrf"],
                    {"image_id": seed["image_id"], "expires_in": 3600})
    anon = browser.new_context(base_url=live_server.url, viewport={"width": 1000, "height": 700})
    try:
        page = anon.new_page()
        log = ConsoleLog()
        watch_console(page, log)
        page.goto(link["url"])
        wait_tiles(page)
        page.wait_for_function("window.microtome.annotations"
                               " && window.microtome.annotations.features.size === 1")
        # The term is known to the shared view (listed, read-only) ...
        expect(page.locator(".term-list li", has_text="Stroma")).to_have_count(1)
        expect(page.locator("#anno-tools")).to_be_hidden()
        assert page.evaluate("window.microtome.annotations.termColor("
                             f"[{seed['term']['id']}])") == GREEN
        # ... and the polygon is painted in its colour, not the default yellow.
        page.wait_for_timeout(150)
        r, g, b, a = _centre_rgba(page)
        assert a > 0 and g > r and g > b, (r, g, b, a)
        assert not log.unexpected(), log.errors
    finally:
        anon.close()
