"""Mass spectrometry images in Debian chromium: the .ibd and the .imzML uploaded
one after the other through the project page (the first waits for the
second, by name), converted as one image; in the viewer a click on a pixel
shows that pixel's spectrum from the server, and a chosen m/z ± tolerance
shows its ion image over the slide."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from playwright.sync_api import expect
from pyimzml.ImzMLParser import ImzMLParser

from tests.frontend.browser import (
    ADMIN,
    ConsoleLog,
    LiveServer,
    api_call,
    api_setup_admin,
    screenshot,
    ui_login,
)

PAIR = ("Example_Continuous.imzML", "Example_Continuous.ibd")


def test_msi_upload_spectrum_and_ion_image(live_server: LiveServer, context: Any, page: Any,
                                           console: ConsoleLog, testdata: Path) -> None:
    csrf = api_setup_admin(context)
    project = api_call(context, "POST", "/api/projects", csrf, {"name": "MSI"})
    ui_login(page, *ADMIN, next_path=f"/projects/{project['id']}")
    # The file input listens once the page knows the role (it then shows the section).
    expect(page.locator("#upload-section")).to_be_visible()

    # The data half alone: uploaded, then it says what it waits for.
    page.set_input_files("#file-input", [str(testdata / PAIR[1])])
    ibd_row = page.locator(f"#uploads li[data-file='{PAIR[1]}']")
    expect(ibd_row.locator(".msi-note")).to_contain_text(f"needs {PAIR[0]} too")
    expect(ibd_row).to_contain_text(f"waiting for {PAIR[0]}", timeout=30_000)
    assert context.request.get(f"/api/projects/{project['id']}/images").json()["items"] == []

    # The XML half: the pair becomes one image and converts.
    page.set_input_files("#file-input", [str(testdata / PAIR[0])])
    xml_row = page.locator(f"#uploads li[data-file='{PAIR[0]}']")
    expect(xml_row).to_have_attribute("data-state", "ready", timeout=120_000)
    expect(ibd_row).to_have_attribute("data-state", "ready", timeout=30_000)
    images = context.request.get(f"/api/projects/{project['id']}/images").json()["items"]
    assert len(images) == 1
    image_id = images[0]["id"]

    page.goto(f"/viewer/{image_id}?project={project['id']}")
    page.wait_for_function("window.microtome && window.microtome.opened")
    panel = page.locator("#msi-panel")
    expect(panel).to_be_visible()

    # Click the centre pixel of the 3 x 3 image: its spectrum comes from the server.
    box = page.evaluate("""(() => {
        const v = window.microtome.state.viewer, item = v.world.getItemAt(0);
        const p = item.imageToViewerElementCoordinates(new OpenSeadragon.Point(1.5, 1.5));
        const r = v.element.getBoundingClientRect();
        return {x: r.left + p.x, y: r.top + p.y};
    })()""")
    with page.expect_response(lambda r: "/spectrum?" in r.url) as resp_info:
        page.mouse.click(box["x"], box["y"])
    spectrum = resp_info.value.json()
    assert (spectrum["x"], spectrum["y"]) == (1, 1)
    parser = ImzMLParser(str(testdata / PAIR[0]))
    index = parser.coordinates.index((2, 2, 1))
    ref_mz, ref_int = parser.getspectrum(index)
    assert np.allclose(spectrum["mz"], ref_mz) and np.allclose(spectrum["intensity"], ref_int)
    expect(page.locator("#msi-pixel")).to_contain_text("Pixel (1, 1)")
    assert page.locator("#msi-spectrum path").count() == 1
    expect(page.locator("#msi-csv")).to_be_visible()

    # A chosen m/z ± tolerance: its ion image is laid over the slide.
    page.fill("#msi-mz", "152")
    page.fill("#msi-tol", "0.2")
    with page.expect_response(lambda r: "/ion-image?" in r.url) as ion_info:
        page.locator("#msi-form button[type=submit]").click()
    ion = ion_info.value
    assert ion.status == 200 and ion.headers["content-type"] == "image/png"
    page.wait_for_function("window.microtome.msi && window.microtome.msi.layers === 2")
    expect(page.locator("#msi-ion")).to_contain_text("m/z 152 ± 0.2")
    values = context.request.get(f"/images/{image_id}/ion-image?mz=152&tol=0.2&format=json"
                                 ).json()["values"]
    want = np.zeros((3, 3))
    for i, (x, y, _z) in enumerate(parser.coordinates):
        mz, inten = parser.getspectrum(i)
        want[y - 1, x - 1] = np.asarray(inten)[np.abs(np.asarray(mz) - 152) <= 0.2].sum()
    assert np.allclose(values, want, rtol=1e-5)
    assert float(ion.headers["x-ion-max"]) == float(np.max(want)) or np.isclose(
        float(ion.headers["x-ion-max"]), np.max(want), rtol=1e-5)
    screenshot(page, "msi-viewer")
    page.locator("#msi-clear").click()
    page.wait_for_function("window.microtome.msi.layers === 1")
    assert not console.unexpected(), console.errors
