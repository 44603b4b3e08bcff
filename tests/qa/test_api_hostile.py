"""Hand-made hostile requests against the whole app (`microtome serve`).

Each one was a 500 or stored garbage before it was fixed; the rest of the
list are near neighbours.  Every answer: its expected status, a JSON body
with an "error" for 4xx.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests

from microtome.app import create_app
from microtome.core.settings import from_env
from tests.livesrv import live_app
from tests.qa.test_api_fuzz import _pyramid, _seed


def _cases(ids: dict[str, Any]) -> list[tuple[str, str, Any, dict[str, str], int]]:
    iid, pid, tid = ids["image_id"], ids["project_id"], ids["term_id"]
    tus = {"Tus-Resumable": "1.0.0"}
    return [
        # str.isdigit() accepts '²' but int() does not.
        ("GET", "/api/images/%C2%B2", None, {}, 404),
        ("GET", f"/api/projects/{pid}/terms/%C2%B9", None, {}, 405),
        ("GET", "/iiif/3/%C2%B2/info.json", None, {}, 404),
        ("GET", "/dzi/%D9%A3%C2%B2.dzi", None, {}, 404),
        ("GET", f"/dzi/{iid}_files/%C2%B2/0_0.jpg", None, {}, 400),
        ("GET", f"/images/{iid}/thumbnail.jpg?size=%C2%B2", None, {}, 400),
        ("POST", "/api/uploads", None, {**tus, "Upload-Length": "\u00b2"}, 400),
        ("POST", "/api/uploads", None,
         {**tus, "Upload-Length": "1", "Upload-Metadata": "filename eC50aWY=,project_id wrI="},
         400),
        # JSON of the wrong type where a term id or name belongs.
        ("POST", f"/api/projects/{pid}/terms", {"name": "a", "parent_id": [[]]}, {}, 400),
        ("POST", f"/api/projects/{pid}/terms", {"name": "b", "parent_id": "1"}, {}, 400),
        ("POST", f"/api/projects/{pid}/terms", {"name": "c", "parent_id": True}, {}, 400),
        ("POST", f"/api/projects/{pid}/terms", {"name": "d", "parent_id": 2**70}, {}, 400),
        ("PATCH", f"/api/projects/{pid}/terms/{tid}", {"parent_id": {"a": 1}}, {}, 400),
        ("PATCH", f"/api/projects/{pid}/terms/{tid}", {"name": ["x"]}, {}, 400),
        ("PATCH", f"/api/projects/{pid}/terms/{tid}", {"name": {"a": 1}}, {}, 400),
    ]


def test_hostile_requests_get_precise_4xx(tmp_path: Path, database_url: str) -> None:
    pyramid = _pyramid(tmp_path)
    settings = from_env(var_dir=tmp_path / "var", database_url=database_url, job_workers=0)
    with live_app(lambda: create_app(settings)) as base:
        session, ids = _seed(base, database_url, settings.images_dir, pyramid)
        wrong = []
        for method, url, body, headers, want in _cases(ids):
            data = None if body is None else json.dumps(body)
            if body is not None:
                headers = {**headers, "Content-Type": "application/json"}
            r = session.request(method, base + url, data=data, timeout=30,
                                headers={k: v.encode("latin-1") for k, v in headers.items()})
            ok = r.status_code == want and r.headers["Content-Type"].startswith(
                "application/json") and isinstance(r.json().get("error"), str)
            if not ok:
                wrong.append(f"{method} {url} {body!r}: {r.status_code} {r.text[:200]}")
        # The term kept its name (nothing was stored from the rejected bodies).
        terms = session.get(f"{base}/api/projects/{ids['project_id']}/terms", timeout=30).json()
        names = [t["name"] for t in (terms["items"] if isinstance(terms, dict) else terms)]
        assert requests.get(f"{base}/api/setup", timeout=10).status_code == 200
    assert not wrong, "\n".join(wrong)
    assert names == ["tumour"], names
