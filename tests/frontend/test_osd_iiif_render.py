"""An IIIF viewer keeps rendering parameters given on info.json on every tile.

OpenSeadragon builds its IIIF tile URLs from the info.json ``id`` alone (the
query of the info.json URL is dropped), so the server carries the parameters
in the ``id``.  A multi-channel image opened through IIIF with
``?channels=1&colors=00FF00`` must show the same pixels as through Deep Zoom
(whose .dzi query OpenSeadragon repeats on every tile) with the same query.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from microtome.pyramid.layout import Channel
from tests.frontend.browser import ARTIFACTS, CHROMIUM_ARGS, _ensure_chromium
from tests.frontend.test_osd_dzi_iiif import open_side_by_side
from tests.tileserver.conftest import build_nd
from tests.tileserver.livesrv import live_server

QUERY = "channels=1&colors=00FF00"


def test_iiif_viewer_keeps_render_parameters(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    yy, xx = np.mgrid[0:600, 0:800]
    data = np.zeros((1, 2, 1, 600, 800), np.uint16)
    data[0, 0] = (xx * 4) % 4000  # channel 0 (blue by default): stripes
    data[0, 1] = yy * 6  # channel 1: a vertical ramp
    chans = (Channel("A", "0000FF", 0, 4000, 0, 65535), Channel("B", "FF0000", 0, 4000, 0, 65535))
    build_nd(tmp_path / "nd.ome.zarr", data, tile=256, shard=512, channels=chans)
    with live_server(tmp_path) as host, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(_ensure_chromium()),
                                     args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 620})
            iiif_tiles: list[str] = []
            page.on("request", lambda r: iiif_tiles.append(r.url)
                    if "/iiif/" in r.url and "info.json" not in r.url else None)
            base = f"http://{host}"
            result = open_side_by_side(page, f"{base}/dzi/nd.dzi?{QUERY}",
                                       f"{base}/iiif/3/nd/info.json?{QUERY}")
            green = page.evaluate("""() => {
              const c = window.viewers[1].drawer.canvas;
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              let r = 0, g = 0, b = 0;
              for (let i = 0; i < d.length; i += 4) { r += d[i]; g += d[i + 1]; b += d[i + 2]; }
              return [r, g, b];
            }""")
            page.screenshot(path=str(ARTIFACTS / "osd-iiif-render-params.png"))
        finally:
            browser.close()
    assert iiif_tiles and all(f"/iiif/3/nd/{QUERY}/" in u for u in iiif_tiles), iiif_tiles[:3]
    r, g, b = green
    assert g > 20 * max(r, b, 1), "IIIF tiles lost the rendering parameters"
    assert result["std"] > 10 and result["mae"] < 2.0, result
