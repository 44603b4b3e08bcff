"""The scale-out Done-when scenario in one browser session.

A slide converted straight into S3 (``microtome convert -o s3://...``, the
`s3_slides` fixture: no local copy exists) is served by the two `tiles`
processes (``--root s3://...``) behind HAProxy to OpenSeadragon in Chromium:
every tile request answers, tiles come from both backends, and both backends
read the slide from S3.  In the same browser, a login throttle counted on one
`serve` process refuses the right password on the other.
"""

from __future__ import annotations

import re
import urllib.request
from typing import Any

from microtome.catalog.ratelimit import USER_LIMIT
from tests.frontend.browser import CHROMIUM_ARGS, REPO, _ensure_chromium
from tests.scaleout.conftest import PASSWORD, World

OSD = REPO / "frontend" / "static" / "vendor" / "openseadragon" / "openseadragon.min.js"

OPEN = """
(src) => {
  window.failures = [];
  window.loaded = 0;
  const v = OpenSeadragon({
    element: document.getElementById('osd'), tileSources: src, drawer: 'canvas',
    crossOriginPolicy: 'Anonymous', animationTime: 0, blendTime: 0,
    showNavigationControl: false, prefixUrl: '',
  });
  v.addHandler('open-failed', e => window.failures.push('open: ' + e.message));
  v.addHandler('tile-load-failed', e => window.failures.push('tile: ' + e.message));
  v.addHandler('tile-loaded', () => { window.loaded += 1; });
  window.viewer = v;
}
"""

SETTLED = """
() => window.failures.length > 0 || (window.viewer.world.getItemCount() === 1
  && window.viewer.world.getItemAt(0).getFullyLoaded())
"""


def _remote_gets(port: int) -> float:
    """The S3 requests a `tiles` process made so far (its Prometheus /metrics)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(r"^microtome_store_remote_requests_total\S* ([0-9.e+]+)$", text, re.M)
    assert m, "no remote request counter in /metrics"
    return float(m.group(1))


def test_slide_in_s3_through_the_balancer_to_openseadragon_and_shared_throttle(
        world: World) -> None:
    from playwright.sync_api import sync_playwright

    assert world.tiles_root.startswith("s3://")
    gets_before = [_remote_gets(p.port) for p in world.tiles]
    backends: list[str] = []
    bad: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(_ensure_chromium()),
                                     args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 700})

            def seen(resp: Any) -> None:
                if "/dzi/cmu" not in resp.url:
                    return
                if resp.status != 200:
                    bad.append(f"{resp.status} {resp.url}")
                elif "_files/" in resp.url:
                    backends.append(resp.headers.get("x-backend", "?"))

            page.on("response", seen)
            page.on("requestfailed", lambda req: bad.append(f"failed {req.url}"))
            page.on("pageerror", lambda e: bad.append(f"page error {e}"))
            page.set_content("<body style='margin:0'>"
                             "<div id=osd style='width:880px;height:680px'></div></body>")
            page.add_script_tag(path=str(OSD))
            page.evaluate(OPEN, f"{world.tile_url}/dzi/cmu.dzi")
            page.wait_for_function(SETTLED, timeout=60_000)
            # Zoom into the middle: full-resolution tiles, fetched from S3 now.
            page.evaluate("(() => { const vp = window.viewer.viewport;"
                          " vp.zoomTo(vp.getMaxZoom()); vp.applyConstraints(true); })()")
            page.wait_for_function(SETTLED, timeout=60_000)
            failures = page.evaluate("window.failures")
            loaded = page.evaluate("window.loaded")
            painted = page.evaluate("""(() => {
                const c = window.viewer.drawer.canvas;
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let dark = 0;
                for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] < 600) dark++;
                return dark / (d.length / 4);
            })()""")

            # The login throttle, in the same browser: USER_LIMIT wrong passwords on
            # serve1's own port, then the right one on serve2's is refused.
            user = "s3-pathologist"
            ctx = page.context.request
            admin = ctx.post(f"{world.app}/api/setup", headers={"Origin": world.app},
                             data={"username": "admin", "password": PASSWORD})
            if admin.status == 409:
                admin = ctx.post(f"{world.app}/api/session", headers={"Origin": world.app},
                                 data={"username": "admin", "password": PASSWORD})
            assert admin.ok, admin.text()
            csrf = ctx.get(f"{world.app}/api/session").json()["csrf_token"]
            made = ctx.post(f"{world.app}/api/users",
                            headers={"Origin": world.app, "X-CSRF-Token": csrf},
                            data={"username": user, "password": PASSWORD})
            assert made.status in (201, 409), made.text()
            first = f"http://127.0.0.1:{world.serve[0].port}"
            second = f"http://127.0.0.1:{world.serve[1].port}"
            # A fresh context: no admin cookie (cookies ignore ports).
            login = browser.new_context().new_page()
            login.goto(f"{first}/login")
            for _ in range(USER_LIMIT):
                login.fill("#username", user)
                login.fill("#password", "not the password")
                login.click("#login-submit")
                login.wait_for_function(
                    "document.querySelector('#login-error').textContent.startsWith('Wrong')"
                    " && !document.querySelector('#login-submit').disabled")
                login.evaluate("document.querySelector('#login-error').textContent = ''")
            login.goto(f"{second}/login")
            login.fill("#username", user)
            login.fill("#password", PASSWORD)
            login.click("#login-submit")
            login.wait_for_function(
                "document.querySelector('#login-error').textContent.length > 0")
            refusal = login.text_content("#login-error") or ""
            still_on_login = "/login" in login.url
        finally:
            browser.close()
    assert not failures and not bad, (failures, bad[:5], world.logs())
    assert loaded >= 8 and len(backends) >= 8, (loaded, backends)
    # Round robin over the two tiles processes, both reading the slide from S3.
    assert set(backends) == {"tiles1", "tiles2"}, backends
    gets_after = [_remote_gets(p.port) for p in world.tiles]
    assert all(a > b for a, b in zip(gets_after, gets_before, strict=True)), \
        (gets_before, gets_after)
    assert painted > 0.05, f"the canvas shows no tissue ({painted:.3f} dark)"
    assert refusal.startswith("Too many failed attempts"), refusal
    assert still_on_login
