"""50,000 annotations on one slide: the viewer pans smoothly (frame times reported).

Timings are measured and written to tests/artifacts/pan-frames.json (and
printed), never asserted: the assertions check behaviour (every frame drew,
clusters at low zoom, thousands of real shapes once zoomed in).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tests.frontend.browser import (
    ADMIN,
    ARTIFACTS,
    LiveServer,
    admin_project_slide,
    api_call,
    screenshot,
    ui_login,
    wait_tiles,
)

N = 50_000

# Pan the view for `frames` animation frames; collect rAF intervals and the
# overlay's own draw times.
PAN_JS = """async ([frames, dx]) => {
  const v = window.microtome.state.viewer;
  const layer = window.microtome.annotations;
  layer.frameTimes = [];
  const gaps = [];
  let last = performance.now();
  for (let i = 0; i < frames; i++) {
    await new Promise((r) => requestAnimationFrame(r));
    const now = performance.now();
    gaps.push(now - last);
    last = now;
    // Right, then down, like a user following tissue: new areas keep coming in.
    const right = i < frames / 2;
    v.viewport.panBy(new OpenSeadragon.Point(right ? dx : 0, right ? 0 : dx), true);
  }
  const q = (a, p) => {
    const s = [...a].sort((x, y) => x - y);
    return s[Math.min(s.length - 1, Math.floor(p * s.length))];
  };
  const draws = layer.frameTimes;
  // Let the last answer arrive, then report what is on screen.
  await new Promise((r) => setTimeout(r, 1500));
  return {frames: gaps.length, draws: draws.length,
          frame_ms: {median: q(gaps, 0.5), p95: q(gaps, 0.95), max: Math.max(...gaps)},
          draw_ms: {median: q(draws, 0.5), p95: q(draws, 0.95), max: Math.max(...draws)},
          build_ms: layer.lastBuildMs, shapes: layer.features.size,
          clusters: layer.clusters.length, lod: layer.lod};
}"""


def _cells(width: int, height: int) -> list[dict[str, Any]]:
    """N small hexagonal 'cells' on a regular grid covering the slide."""
    cols = int(math.sqrt(N * width / height)) + 1
    rows = -(-N // cols)
    sx, sy = width / cols, height / rows
    r = min(sx, sy) * 0.4
    out = []
    for i in range(N):
        cx, cy = (i % cols + 0.5) * sx, (i // cols + 0.5) * sy
        ring = [[round(cx + r * math.cos(k * math.pi / 3), 2),
                 round(cy + r * math.sin(k * math.pi / 3), 2)] for k in range(6)]
        ring.append(ring[0])
        out.append({"geometry": {"type": "Polygon", "coordinates": [ring]}})
    return out


def test_pan_with_50k_annotations(live_server: LiveServer, context: Any, page: Any,
                                  converted_slide: Path) -> None:
    csrf, project, image_id = admin_project_slide(context, live_server, converted_slide,
                                                  project="Cells", image="cells")
    cells = [{"type": "Feature", "properties": {}, **c} for c in _cells(2220, 2967)]
    result = api_call(context, "POST",
                      f"/api/images/{image_id}/annotations/import?project={project['id']}",
                      csrf, {"type": "FeatureCollection", "features": cells})
    assert result["project_id"] == project["id"]

    ui_login(page, *ADMIN, next_path=f"/viewer/{image_id}?project={project['id']}")
    wait_tiles(page)
    page.wait_for_function("window.microtome.annotations && window.microtome.annotations.lod"
                           " === 'clusters' && window.microtome.annotations.clusters.length > 0")
    overview = page.evaluate(PAN_JS, [120, 0.002])
    screenshot(page, "20-50k-overview")

    # Zoom in on the upper left of the slide until the server sends real
    # shapes (thousands of them).
    page.evaluate("""(() => { const v = window.microtome.state.viewer;
        const item = v.world.getItemAt(0);
        v.viewport.zoomTo(item.imageToViewportZoom(3), null, true);
        v.viewport.panTo(item.imageToViewportCoordinates(600, 800), true); })()""")
    page.wait_for_function("window.microtome.annotations.lod === 'features'"
                           " && window.microtome.annotations.features.size > 1000",
                           timeout=20_000)
    page.wait_for_timeout(300)
    zoomed = page.evaluate(PAN_JS, [120, 0.002])
    screenshot(page, "21-50k-zoomed")

    figures = {"annotations": N, "overview": overview, "zoomed": zoomed}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "pan-frames.json").write_text(json.dumps(figures, indent=1))
    print("\n50k-annotation pan:", json.dumps(figures))
    assert overview["frames"] == 120 and overview["draws"] >= 100
    assert zoomed["frames"] == 120 and zoomed["draws"] >= 100
    assert zoomed["shapes"] > 1000
