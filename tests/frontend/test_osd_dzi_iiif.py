"""OpenSeadragon shows the same slide through Deep Zoom and through IIIF.

A third-party page (about:blank, another origin than the tile server) loads
OpenSeadragon from our vendored copy and opens the standalone tile server's
`.dzi` and IIIF `info.json` of the converted CMU-1-Small-Region side by side,
with CORS-enabled image loading so the canvases stay readable.  The two
renderings of the same view must match pixel for pixel (within JPEG noise)
and show tissue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.frontend.browser import ARTIFACTS, CHROMIUM_ARGS, REPO, _ensure_chromium
from tests.tileserver.livesrv import live_server

OSD = REPO / "frontend" / "static" / "vendor" / "openseadragon" / "openseadragon.min.js"

OPEN_BOTH = """
([dzi, iiif]) => {
  const opts = (id, src) => ({
    element: document.getElementById(id), tileSources: src, drawer: 'canvas',
    crossOriginPolicy: 'Anonymous', animationTime: 0, blendTime: 0,
    immediateRender: false, showNavigationControl: false, prefixUrl: '',
  });
  window.viewers = [OpenSeadragon(opts('a', dzi)), OpenSeadragon(opts('b', iiif))];
  window.failures = [];
  for (const v of window.viewers) {
    v.addHandler('open-failed', e => window.failures.push(String(e.message)));
    v.addHandler('tile-load-failed', e => window.failures.push(String(e.message)));
  }
}
"""

LOADED = """
() => window.failures.length > 0 || window.viewers.every(v =>
  v.world.getItemCount() === 1 && v.world.getItemAt(0).getFullyLoaded())
"""

COMPARE = """
() => {
  const px = v => {
    const c = v.drawer.canvas;
    return c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  };
  const [a, b] = window.viewers.map(px);
  let diff = 0, n = 0, sum = 0, sq = 0;
  for (let i = 0; i < a.length; i += 4) {
    for (let k = 0; k < 3; k++) {
      diff += Math.abs(a[i + k] - b[i + k]); sum += a[i + k]; sq += a[i + k] ** 2; n++;
    }
  }
  const mean = sum / n;
  return {mae: diff / n, std: Math.sqrt(sq / n - mean * mean), n: n,
          levels: window.viewers.map(v => v.world.getItemAt(0).source.maxLevel)};
}
"""


def open_side_by_side(page: Any, dzi_url: str, iiif_url: str) -> dict[str, Any]:
    """Open the DZI and the IIIF source in two OpenSeadragon viewers side by side,
    wait until both are fully drawn, and compare their canvases (COMPARE)."""
    page.set_content(
        "<body style='margin:0;display:flex;gap:20px'>"
        "<div id=a style='width:520px;height:600px'></div>"
        "<div id=b style='width:520px;height:600px'></div></body>")
    page.add_script_tag(path=str(OSD))
    page.evaluate(OPEN_BOTH, [dzi_url, iiif_url])
    page.wait_for_function(LOADED, timeout=30_000)
    assert page.evaluate("window.failures") == []
    result: dict[str, Any] = page.evaluate(COMPARE)
    return result


def test_openseadragon_dzi_and_iiif_show_the_same_pixels(converted_slide: Path) -> None:
    from playwright.sync_api import sync_playwright

    name = converted_slide.name.removesuffix(".ome.zarr")
    with live_server(converted_slide.parent) as host, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(_ensure_chromium()),
                                     args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 620})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            base = f"http://{host}"
            result = open_side_by_side(page, f"{base}/dzi/{name}.dzi",
                                       f"{base}/iiif/3/{name}/info.json")
            page.screenshot(path=str(ARTIFACTS / "osd-dzi-vs-iiif.png"))
        finally:
            browser.close()
    assert not errors
    assert result["n"] > 100_000
    assert result["std"] > 10, "the view is blank"
    assert result["mae"] < 2.0, f"DZI and IIIF renderings differ: {result}"
