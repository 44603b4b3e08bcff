"""Analyses from the web UI, in Debian chromium (issue 16, "Done when").

On a fresh server whose only worker is the one `microtome serve` starts by
itself: open the H&E sample, run tissue detection then nucleus detection from
the Analyse panel (a form generated from each app's schema), watch them
finish, see the result layer and the count, hide and show the layer, export
the results; then the project's Analyses tab lists both runs; a bad parameter
is named next to its field.
"""

from __future__ import annotations

import json
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


@pytest.fixture
def server_env() -> dict[str, str]:
    return {"MICROTOME_LOCAL_WORKERS": "1"}  # the default of `microtome serve`


def _run(page: Any, app: str, timeout_ms: int) -> Any:
    page.select_option("#analyse-app", app)
    page.select_option("#analyse-region", "whole")
    before = page.locator("#analysis-runs li").count()
    page.click("#analyse-run")
    expect(page.locator("#analysis-runs li")).to_have_count(before + 1)
    run = page.locator("#analysis-runs li").first
    expect(run.locator(".badge")).to_have_text("done", timeout=timeout_ms)
    return run


def test_tissue_then_nuclei_from_the_viewer_then_export(
        live_server: LiveServer, context: Any, page: Any, converted_slide: Path,
        tmp_path: Path, console: ConsoleLog) -> None:
    console.expected.append("status of 400")  # the bad parameter, on purpose
    csrf, project, iid = admin_project_slide(context, live_server, converted_slide,
                                             project="Samples", image="CMU-1-Small-Region")
    _draw_training(context, csrf, project["id"], iid, converted_slide)
    ui_login(page, *ADMIN, next_path=f"/viewer/{iid}?project={project['id']}")
    wait_tiles(page)
    expect(page.locator("#analyse-panel")).to_be_visible()
    # The form follows the app's schema: an enum, numbers with their ranges.
    page.select_option("#analyse-app", "tissue_detection")
    expect(page.locator("#param-method")).to_have_value("saturation")
    expect(page.locator("#param-smoothing")).to_have_attribute("max", "20")

    # A bad value comes back from the server named next to its field.
    page.fill("#param-smoothing", "50")
    page.click("#analyse-run")
    expect(page.locator(".param-error:not([hidden])")).to_contain_text("50")
    page.fill("#param-smoothing", "2")

    tissue = _run(page, "tissue_detection", 60_000)
    expect(tissue.locator(".analysis-count")).to_contain_text("objects")
    nuclei = _run(page, "nucleus_detection", 240_000)
    count_text = nuclei.locator(".analysis-count").inner_text()
    count = int(count_text.split()[0])
    assert count > 500, count_text  # the sample holds thousands of nuclei
    expect(nuclei.locator(".analysis-summary")).to_contain_text("Nucleus")
    aid = int(nuclei.get_attribute("data-id"))

    # The layer: nuclei are drawn; hiding that analysis hides them, showing them back.
    page.evaluate("window.microtome.state.viewer.viewport.zoomTo(window.microtome.state"
                  ".viewer.world.getItemAt(0).imageToViewportZoom(1))")
    page.wait_for_function(
        f"""[...window.microtome.annotations.features.values()].filter(
            (f) => f.properties.analysis_id === {aid}).length > 20""",
        timeout=20_000)
    screenshot(page, "analyse-nuclei")
    visible = ("[...window.microtome.annotations.allFeatures()].filter((f) => "
               f"window.microtome.annotations.visible(f) && f.properties.analysis_id === {aid})"
               ".length")
    assert page.evaluate(visible) > 20
    nuclei.get_by_label("Show the results").uncheck()
    assert page.evaluate(visible) == 0
    nuclei.get_by_label("Show the results").check()
    assert page.evaluate(visible) > 20

    # Export: the downloaded GeoJSON holds exactly the counted nuclei, with measurements.
    with page.expect_download() as dl:
        nuclei.get_by_role("link", name="Export").click()
    path = tmp_path / "nuclei.geojson"
    dl.value.save_as(path)
    doc = json.loads(path.read_text())
    assert len(doc["features"]) == count
    assert "Area µm^2" in json.dumps(doc["features"][0]["properties"], ensure_ascii=False)
    # Attribution: the results are the person's who pressed Run, in the project the
    # viewer showed; the local worker is recorded as the executor, not the author.
    me = page.evaluate("fetch('/api/session').then((r) => r.json())")["user"]["id"]
    run = page.evaluate(f"fetch('/api/analyses/{aid}').then((r) => r.json())")
    assert run["user_id"] == me and run["project_id"] == project["id"]
    assert run["executor_id"] not in (None, me) and run["executor"]
    assert {f["properties"]["microtome"].get("user_id") for f in doc["features"]} == {me}

    # Mean and median per term in the summary; the layer coloured by a measurement,
    # with a legend; back to the term colours.
    expect(nuclei.locator(".analysis-term[data-term='Nucleus']")).to_contain_text("median")
    nuclei.get_by_label(f"Colour nucleus_detection #{aid} by").select_option("Area µm^2")
    expect(nuclei.locator(".measure-legend li")).to_have_count(8)
    colours = ("new Set([...window.microtome.annotations.allFeatures()].filter((f) => "
               f"f.properties.analysis_id === {aid}).map((f) => "
               "window.microtome.annotations.measureColor(f)))")
    shades = page.evaluate(f"[...{colours}]")
    ramp = page.evaluate("import('/static/js/viewer/analyses/colour.js').then((m) => m.RAMP)")
    assert set(shades) <= set(ramp) and len(shades) >= 4, shades
    screenshot(page, "analyse-nuclei-by-area")
    nuclei.get_by_label(f"Colour nucleus_detection #{aid} by").select_option("Terms")
    expect(nuclei.locator(".measure-legend")).to_have_count(0)
    assert page.evaluate(f"[...{colours}]") == [None]

    # The pixel classifier learns the two terms drawn before (form: a term picker).
    page.select_option("#analyse-app", "pixel_classifier")
    page.select_option("#param-terms", label=["Cells", "Glass"])
    page.fill("#param-resolution", "4")
    pixels = _run(page, "pixel_classifier", 120_000)
    expect(pixels.locator(".analysis-term[data-term='Cells']")).to_be_visible()
    expect(pixels.locator(".analysis-term[data-term='Glass']")).to_be_visible()
    trained = int(pixels.get_attribute("data-id"))  # its model: applied again below

    # The project's Analyses tab: both runs, who ran them, a link back to the results.
    page.goto(f"/projects/{project['id']}")
    page.click("#analyses-button")
    rows = page.locator("#analyses-body tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("pixel_classifier")
    expect(rows.nth(1)).to_contain_text("nucleus_detection")
    expect(rows.nth(1)).to_contain_text(ADMIN[0])
    expect(rows.nth(1)).to_contain_text(f"{count} results")
    expect(rows.nth(2)).to_contain_text("tissue_detection")
    expect(page.locator("#project-apps li")).to_have_count(
        page.locator("#project-apps input[type=checkbox]").count())
    screenshot(page, "analyse-project-tab")

    # The model that classifier run trained is offered by the form (the project's
    # trained models) and applied again: nothing is learnt the second time.
    page.goto(f"/viewer/{iid}?project={project['id']}")
    wait_tiles(page)
    page.select_option("#analyse-app", "pixel_classifier")
    expect(page.locator(f"#param-model option[value='{trained}']")).to_contain_text("Cells")
    page.select_option("#param-model", str(trained))
    with page.expect_response(lambda r: r.request.method == "POST"
                              and r.url.endswith(f"/api/images/{iid}/analyses")) as created:
        page.click("#analyse-run")
    assert created.value.status == 201, created.value.text()
    run = created.value.json()
    assert run["params"]["model"] == trained
    applied = page.locator(f"#analysis-runs li.analysis-run[data-id='{run['id']}']")
    expect(applied.locator(".badge")).to_have_text("done", timeout=120_000)
    expect(applied.locator(".analysis-term[data-term='Glass']")).to_be_visible()
    assert f"model {trained}" in applied.locator(".analysis-log").text_content()


def _draw_training(context: Any, csrf: str, pid: int, iid: int, slide: Path) -> None:
    """Two terms, Cells and Glass, each with one polygon drawn well inside tissue or
    glass (found here by the tissue app on the pyramid): the pixel classifier's lesson."""
    from shapely.geometry import box, mapping
    from shapely.ops import unary_union

    from microtome.analysis import get_app, run_app, validate_params
    from microtome.analysis.raster import PyramidRaster

    raster = PyramidRaster(slide)
    app = get_app("tissue_detection")
    feats, _ = run_app(app, raster, validate_params(app.descriptor, {}))
    tissue = unary_union([f.geometry for f in feats])
    glass = box(0, 0, raster.width, raster.height).difference(tissue.buffer(60))
    for name, color, where in (("Cells", "#7030a0", tissue.buffer(-60)),
                               ("Glass", "#d0d0d0", glass)):
        term = api_call(context, "POST", f"/api/projects/{pid}/terms", csrf,
                        {"name": name, "color": color})
        c = where.representative_point()
        poly = where.intersection(box(c.x - 150, c.y - 150, c.x + 150, c.y + 150))
        poly = max(getattr(poly, "geoms", [poly]), key=lambda g: g.area)
        api_call(context, "POST", f"/api/images/{iid}/annotations", csrf,
                 {"geometry": mapping(poly), "terms": [term["id"]], "project_id": pid})
