"""Server-side filters and auto-contrast in the viewer (issue 20, item 6), in Debian chromium.

The Display panel's Auto button stretches the slide from the stored histogram;
the Filters panel asks the tile server for colour deconvolution, a threshold and
edges (tile URLs carry the parameters; the link keeps them).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tests.frontend.browser import (
    ADMIN,
    LiveServer,
    admin_project_slide,
    api_call,
    screenshot,
    ui_login,
    wait_tiles,
)


def _osd_pixels(page: Any) -> np.ndarray:
    png = page.locator("#osd").screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def _reloaded(page: Any, query: str) -> None:
    page.wait_for_function(
        f"window.microtome.state.renderQuery === {query!r} && "
        "window.microtome.state.viewer.world.getItemCount() === 1 && "
        "window.microtome.state.viewer.world.getItemAt(0).getFullyLoaded()", timeout=20_000)
    page.wait_for_timeout(200)


def test_auto_contrast_and_server_filters(live_server: LiveServer, context: Any, page: Any,
                                          converted_slide: Path) -> None:
    csrf, project, iid = admin_project_slide(context, live_server, converted_slide,
                                             project="Filters", image="filters")
    tile_urls: list[str] = []
    page.on("request", lambda r: tile_urls.append(r.url) if "/dzi/" in r.url else None)
    ui_login(page, *ADMIN, next_path=f"/viewer/{iid}?project={project['id']}")
    wait_tiles(page)
    before = _osd_pixels(page)

    # Auto-contrast: brightness/contrast from the stored histogram's 0.5/99.5 % points.
    hist = api_call(context, "GET", f"/images/{iid}/histogram", csrf)
    lo = min(c["percentiles"]["0.5"] for c in hist["channels"]) / 255
    hi = min(1.0, max(c["percentiles"]["99.5"] + c["bin_width"] for c in hist["channels"]) / 255)
    page.click("#adjust-panel summary")
    page.click("#adjust-auto")
    page.wait_for_function("document.querySelector('#adjust-con-value').textContent !== '1.00'")
    con = float(page.input_value("#adjust-con"))
    bri = float(page.input_value("#adjust-bri"))
    assert abs(con - min(3, (hi + lo) / (hi - lo))) < 0.03 and abs(bri - 1 / (hi + lo)) < 0.03
    assert "contrast(" in page.evaluate("window.microtome.state.viewer.drawer.canvas.style.filter")
    # The CSS filter shows from the next composited frame on: poll briefly.
    for _ in range(25):
        page.wait_for_timeout(200)
        stretched = _osd_pixels(page)
        if stretched.std() > before.std() + 0.1:
            break
    screenshot(page, "viewer-autocontrast")
    assert stretched.std() > before.std() + 0.1, (stretched.std(), before.std(), con, bri)
    assert "con=" in page.url and "bri=" in page.url
    page.click("#adjust-reset")

    # Colour deconvolution: haematoxylin only, rendered by the tile server.
    page.click("#filter-panel summary")
    page.select_option("#filter-stain", "H")
    _reloaded(page, "stain=H")
    assert any("stain=H" in u for u in tile_urls)
    screenshot(page, "viewer-filter-haematoxylin")
    h_only = _osd_pixels(page)
    # Haematoxylin is blue-violet: no pixel is redder than it is blue (eosin gone).
    tissue = h_only[(h_only.sum(axis=2) < 600) & (h_only.sum(axis=2) > 100)]
    assert len(tissue) > 1000 and (tissue[:, 0] <= tissue[:, 2] + 8).mean() > 0.98

    # Otsu threshold on top: black and white only (the dark background aside).
    page.select_option("#filter-threshold", "otsu")
    _reloaded(page, "stain=H&threshold=otsu")
    screenshot(page, "viewer-filter-otsu")
    px = _osd_pixels(page)
    grey = (np.abs(px[..., 0] - px[..., 2]) < 12) & (np.abs(px[..., 1] - px[..., 2]) < 12)
    assert grey.mean() > 0.97
    assert (px > 200).all(axis=2).mean() > 0.05 and (px < 40).all(axis=2).mean() > 0.05

    # Edges of the threshold mask: mostly black with white outlines.
    page.check("#filter-edge")
    _reloaded(page, "stain=H&threshold=otsu&edge=sobel")
    screenshot(page, "viewer-filter-edges")
    px = _osd_pixels(page)
    assert 0.005 < (px > 128).all(axis=2).mean() < 0.4

    # The link keeps the filters; reopening it shows them again.
    assert "stain=H" in page.url and "threshold=otsu" in page.url and "edge=sobel" in page.url
    page.reload()
    _reloaded(page, "stain=H&threshold=otsu&edge=sobel")
    assert page.input_value("#filter-stain") == "H" and page.is_checked("#filter-edge")


def test_auto_contrast_sets_channel_windows(live_server: LiveServer, context: Any, page: Any,
                                            fluorescence: Path) -> None:
    csrf, _, iid = admin_project_slide(context, live_server, fluorescence,
                                       project="Fluo auto", image="z-series")
    ui_login(page, *ADMIN, next_path=f"/viewer/{iid}")
    wait_tiles(page, minimum=1)
    hist = api_call(context, "GET", f"/images/{iid}/histogram", csrf)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "_files/" in r.url else None)
    page.click("#channels-auto")
    page.wait_for_function("window.microtome.state.renderQuery.includes('windows=')")
    wait_tiles(page, minimum=1)
    windows = page.evaluate(
        "new URLSearchParams(window.microtome.state.renderQuery).get('windows')").split(",")
    channels = page.evaluate(
        "new URLSearchParams(window.microtome.state.renderQuery).get('channels')").split(",")
    for idx, w in zip(channels, windows, strict=True):
        c = hist["channels"][int(idx)]
        lo, hi = (float(v) for v in w.split(":"))
        # Sliders step in whole stored units.
        assert abs(lo - c["percentiles"]["0.5"]) <= 1
        expect_hi = min(c["percentiles"]["99.5"] + c["bin_width"],
                        max(c["max"], c["percentiles"]["0.5"] + c["bin_width"]))
        assert abs(hi - expect_hi) <= 1
    assert any("windows=" in u for u in requests)
    screenshot(page, "viewer-channels-autocontrast")
