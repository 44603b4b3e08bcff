"""Side-by-side viewing (issue 20, item 7) in Debian chromium: two sample slides, linked
and independent navigation, manual alignment captured, saved and used after a reload.

The second slide is the first one cut 300 px in from the left and 200 px from the
top (a "serial section" whose true alignment is a shift of (300, 200)), so the
test knows what the alignment must be and can compare what both panes show.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.frontend.browser import (
    ADMIN,
    LiveServer,
    admin_project_slide,
    api_call,
    register_slide,
    screenshot,
    ui_login,
)

SHIFT = (300, 200)


@pytest.fixture(scope="session")
def shifted_slide(converted_slide: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import tifffile

    from microtome.converters.convert import convert
    from microtome.pyramid.reader import open_pyramid

    pyr = open_pyramid(converted_slide)
    w, h = pyr.meta.width, pyr.meta.height
    pixels = pyr.read_region(0, 0, 0, w, h)[SHIFT[1]:, SHIFT[0]:]
    folder = tmp_path_factory.mktemp("shifted")
    src = folder / "section-2.tif"
    tifffile.imwrite(src, np.ascontiguousarray(pixels), photometric="rgb", tile=(256, 256))
    out = folder / "section-2.ome.zarr"
    convert(src, out)
    return out


def _ready(page: Any) -> None:
    page.wait_for_function(
        "window.compare && window.compare.ready && window.compare.panes.every("
        "p => p.opened && p.viewer.world.getItemAt(0).getFullyLoaded())", timeout=30_000)


def _view(page: Any, i: int) -> dict[str, float]:
    return dict(page.evaluate(f"window.compare.viewOf({i})"))


def _go(page: Any, i: int, x: float, y: float, zoom: float, rotation: float = 0) -> None:
    page.evaluate(f"""(() => {{ const c = window.compare; c.lead({i});
        c.setView({i}, {{x: {x}, y: {y}, zoom: {zoom}, rotation: {rotation}}});
        if (c.linked) c.syncFrom({i}); }})()""")
    page.wait_for_timeout(100)
    _ready(page)


def _pane_pixels(page: Any, i: int) -> np.ndarray:
    png = page.locator(f"#pane-osd-{i}").screenshot()
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)
    return img[img.shape[0] // 4:]  # below the pane's tool bar


def test_side_by_side_linked_aligned_and_independent(
        live_server: LiveServer, context: Any, page: Any, converted_slide: Path,
        shifted_slide: Path) -> None:
    csrf, project, a = admin_project_slide(context, live_server, converted_slide,
                                           project="Serial sections", image="H&E section 1")
    b = register_slide(live_server, shifted_slide, name="section 2", project_id=project["id"])
    ui_login(page, *ADMIN, next_path=f"/compare?images={a},{b}")
    _ready(page)
    assert page.locator(".compare-pane").count() == 2
    assert page.locator(".compare-pane .name").all_inner_texts() == ["H&E section 1", "section 2"]

    # Linked, not aligned yet: the second pane shows the same pixel coordinates.
    _go(page, 0, 1000, 1200, 0.5)
    v0, v1 = _view(page, 0), _view(page, 1)
    assert abs(v1["x"] - 1000) < 1 and abs(v1["y"] - 1200) < 1
    assert abs(v1["zoom"] - v0["zoom"]) < 1e-6
    unaligned = np.abs(_pane_pixels(page, 0) - _pane_pixels(page, 1)).mean()
    screenshot(page, "compare-linked-unaligned")

    # Manual alignment: unlink, bring pane 2 onto the same tissue, capture, save.
    page.click("#compare-linked")
    assert page.evaluate("window.compare.linked") is False
    _go(page, 1, 1000 - SHIFT[0], 1200 - SHIFT[1], 0.5)
    assert abs(_view(page, 0)["x"] - 1000) < 1  # pane 1 did not follow
    page.click(".compare-pane[data-index='1'] .align-capture")
    page.click(".compare-pane[data-index='1'] .align-save")
    page.wait_for_function("window.compare.panes[1].saved === true")
    saved = api_call(context, "GET", f"/api/images/{a}/alignments/{b}", csrf)
    assert saved["saved"] and abs(saved["tx"] - SHIFT[0]) < 1 and abs(saved["ty"] - SHIFT[1]) < 1
    assert abs(saved["scale"] - 1) < 1e-6 and abs(saved["rotation"]) < 1e-6

    # After a reload the saved alignment links the sections: pane 2 follows pane 1.
    page.reload()
    _ready(page)
    assert page.evaluate("window.compare.linked") is True
    _go(page, 0, 1500, 900, 1.0)
    v1 = _view(page, 1)
    assert abs(v1["x"] - (1500 - SHIFT[0])) < 1 and abs(v1["y"] - (900 - SHIFT[1])) < 1
    aligned = np.abs(_pane_pixels(page, 0) - _pane_pixels(page, 1)).mean()
    screenshot(page, "compare-linked-aligned")
    # Same tissue in both panes (JPEG re-encoding aside) and far closer than unaligned.
    assert aligned < 6 and aligned < unaligned / 3, (aligned, unaligned)
    # Navigating the second pane moves the first through the inverse alignment.
    _go(page, 1, 800, 1000, 0.8, rotation=90)
    v0 = _view(page, 0)
    assert abs(v0["x"] - (800 + SHIFT[0])) < 1 and abs(v0["y"] - (1000 + SHIFT[1])) < 1
    assert abs(v0["rotation"] - 90) < 1e-6 and abs(v0["zoom"] - 0.8) < 1e-6

    # Independent navigation: unlinked panes keep their own views.
    page.click("#compare-linked")
    _go(page, 0, 400, 400, 0.3, rotation=0)
    v1 = _view(page, 1)
    assert abs(v1["x"] - 800) < 1 and abs(v1["y"] - 1000) < 1
    screenshot(page, "compare-independent")


def test_compare_page_needs_two_to_four_images(live_server: LiveServer, context: Any,
                                               page: Any, converted_slide: Path) -> None:
    _, _, a = admin_project_slide(context, live_server, converted_slide, project="One",
                                  image="alone")
    ui_login(page, *ADMIN, next_path=f"/compare?images={a}")
    page.wait_for_function("document.querySelector('#compare-status').textContent.length > 0")
    assert "two to four" in page.inner_text("#compare-status")
