"""Every operation of /api/openapi.json (so every route the web UI uses) has a client
method, named in `microtome_client.coverage`; the names resolve."""

from __future__ import annotations

import re

import httpx
import microtome_client
from microtome_client.coverage import COVERAGE, PIXEL_ROUTES

from tests.client.conftest import LiveServer
from tests.conftest import REPO

METHODS = ("get", "post", "put", "patch", "delete", "head")


def _operations(spec: dict) -> set[str]:  # type: ignore[type-arg]
    return {f"{m.upper()} {path}" for path, ops in spec["paths"].items()
            for m in ops if m in METHODS}


def test_every_operation_has_a_client_method(live_server: LiveServer) -> None:
    spec = httpx.get(live_server.url + "/api/openapi.json", timeout=30).json()
    ops = _operations(spec) | {"GET /api/openapi.json"}
    missing = sorted(ops - COVERAGE.keys())
    stale = sorted(COVERAGE.keys() - ops)
    assert not missing, f"operations without a client method: {missing}"
    assert not stale, f"coverage entries for operations the server no longer has: {stale}"
    for op, name in {**COVERAGE, **PIXEL_ROUTES}.items():
        cls, meth = name.split(".")
        assert callable(getattr(getattr(microtome_client, cls), meth, None)), (op, name)


def _ui_paths() -> set[str]:
    """'/api/...' templates the web UI calls: api(`projects/${id}/members`) and the like."""
    out = set()
    for js in (REPO / "frontend" / "static" / "js").rglob("*.js"):
        for m in re.finditer(r"api\(\s*[`'\"]([^`'\"?]*)", js.read_text()):
            raw = m.group(1)
            if not raw or raw.startswith("$"):
                continue  # the helper itself or a computed path
            out.add("/api/" + re.sub(r"\$\{[^}]*\}", "{x}", raw).rstrip("/"))
    return out


def test_routes_the_web_ui_uses_are_documented_hence_covered(live_server: LiveServer) -> None:
    spec = httpx.get(live_server.url + "/api/openapi.json", timeout=30).json()
    templates = [re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$") for p in spec["paths"]]
    ui = _ui_paths()
    assert len(ui) > 15  # the parse found the UI's calls
    undocumented = sorted(p for p in ui if not any(t.match(p) for t in templates))
    assert not undocumented, f"the UI calls routes outside the OpenAPI document: {undocumented}"

