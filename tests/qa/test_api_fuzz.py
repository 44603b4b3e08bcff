"""Schemathesis over the whole REST API, as a logged-in administrator.

The real application (catalog + tiles + annotations + UI) runs on a free
loopback port over a fresh migrated database that holds one project, one
converted image, one term and one annotation, so that small generated ids
reach real rows.  Every operation of /api/openapi.json gets a bounded number
of generated requests (valid and invalid ones); every response must pass
schemathesis' checks: no 5xx, a documented status, a documented content type
and a body matching the documented schema.

Operations that end the caller's own access (logging out, deleting users
and API keys) run last so they cannot hide the others behind 401s.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import requests
import schemathesis
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from microtome.app import create_app
from microtome.catalog.images import register_image, storage_relpath
from microtome.core.settings import from_env
from tests.livesrv import live_app

EXAMPLES_PER_OPERATION = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
#: Deletes run after every read and write, leaves before their parents, and the
#: ones that revoke the fuzzer's own credentials at the very end.
DELETE_ORDER = ["/api/analyses/", "/api/annotations/", "/api/attachments/",
                "/api/projects/{project_id}/terms/",
                "/api/share-links/", "/api/trash/", "/api/uploads/",
                "/api/projects/{project_id}/members/",
                "/api/projects/{project_id}/images/", "/api/images/", "/api/projects/",
                "/api/api-keys/", "/api/users/",
                "/api/account/sessions",
                "/api/session"]


def _pyramid(tmp: Path) -> Path:
    from microtome.converters import convert

    yy, xx = np.mgrid[0:300, 0:400]
    rgb = np.stack([xx % 256, yy % 256, (xx + yy) % 256], axis=-1).astype(np.uint8)
    src = tmp / "gradient.tif"
    tifffile.imwrite(src, rgb, photometric="rgb")
    dst = tmp / "gradient.ome.zarr"
    convert(src, dst)
    return dst


def _seed(base: str, database_url: str, images_dir: Path,
          pyramid: Path) -> tuple[requests.Session, dict[str, Any]]:
    """Admin session with CSRF header, and one real row of each kind for the fuzzer."""
    s = requests.Session()
    r = s.post(f"{base}/api/setup", json={"username": "admin", "password": "correct horse 1"})
    assert r.status_code == 201, r.text
    s.headers["X-CSRF-Token"] = r.json()["csrf_token"]

    def post(path: str, body: Any, **kw: Any) -> Any:
        r = s.post(f"{base}{path}", json=body, timeout=30, **kw)
        assert r.status_code == 201, (path, r.status_code, r.text)
        return r.json() if r.content else r

    pid = post("/api/projects", {"name": "QA", "description": "fuzzed"})["id"]
    uid = post("/api/users", {"username": "viewer", "password": "another pass 2"})["id"]
    r = s.put(f"{base}/api/projects/{pid}/members/{uid}", json={"role": "viewer"})
    assert r.status_code == 200, r.text

    async def register() -> int:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
        try:
            iid = await register_image(pool, name="gradient", relpath="pending", width=400,
                                       height=300, levels=2, project_id=pid)
            await pool.execute("UPDATE images SET storage_path = $2 WHERE id = $1", iid,
                               storage_relpath(iid))
            return iid
        finally:
            await pool.close()

    iid = asyncio.run(register())
    dst = images_dir / storage_relpath(iid)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(pyramid, dst)
    tid = post(f"/api/projects/{pid}/terms", {"name": "tumour", "color": "#ff0000"})["id"]
    feature = {"type": "Feature", "properties": {"term_id": tid},
               "geometry": {"type": "Polygon",
                            "coordinates": [[[10, 10], [100, 10], [100, 80], [10, 10]]]}}
    aid = post(f"/api/images/{iid}/annotations", feature)["id"]
    kid = post("/api/api-keys", {"name": "fuzz"})["id"]
    sid = post("/api/share-links", {"image_id": iid, "expires_in": 3600})["id"]
    b64 = lambda v: base64.b64encode(v.encode()).decode()  # noqa: E731
    meta = f"filename {b64('x.tif')},project_id {b64(str(pid))}"
    r = s.post(f"{base}/api/uploads", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "100",
                                               "Upload-Metadata": meta})
    assert r.status_code == 201, r.text
    upload = r.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    # A deleted project in the trash, so restore and purge reach a real item.
    gone = post("/api/projects", {"name": "QA deleted"})["id"]
    assert s.delete(f"{base}/api/projects/{gone}", timeout=30).status_code == 204
    trash_id = s.get(f"{base}/api/trash", timeout=30).json()["items"][0]["id"]
    ids = {"project_id": pid, "user_id": uid, "image_id": iid, "term_id": tid,
           "annotation_id": aid, "key_id": kid, "share_id": sid, "upload_id": upload,
           "trash_id": trash_id}
    return s, ids


def _operations(schema: Any) -> list[Any]:
    """Reads and writes first, then deletes, then what revokes our own credentials."""
    ops = [result.ok() for result in schema.get_all_operations()]

    def rank(op: Any) -> int:
        if op.method.upper() != "DELETE":
            return -1
        return next(i for i, p in enumerate(DELETE_ORDER) if op.path.startswith(p))

    return sorted(ops, key=rank)


def test_every_operation_conforms(tmp_path: Path, database_url: str) -> None:
    pyramid = _pyramid(tmp_path)
    app_settings = from_env(var_dir=tmp_path / "var", database_url=database_url, job_workers=0)
    with live_app(lambda: create_app(app_settings)) as base:
        session, ids = _seed(base, database_url, app_settings.images_dir, pyramid)
        spec = requests.get(f"{base}/api/openapi.json", timeout=10).json()
        schema = schemathesis.openapi.from_dict(spec)
        schema.config.update(base_url=base)
        failures: list[str] = []
        for op in _operations(schema):
            failures.extend(_fuzz(op, base, session, ids))
        # The server is still healthy after the whole run.
        assert requests.get(f"{base}/api/setup", timeout=10).status_code == 200
    assert not failures, "\n\n".join(failures)


def _fuzz(op: Any, base: str, session: requests.Session, ids: dict[str, Any]) -> list[str]:
    found: list[str] = []
    names = {p.name for p in op.path_parameters}
    real = {k: v for k, v in ids.items() if k in names}
    strategies = [op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE)]
    if real:
        # Half of the cases address the seeded rows, so handlers get past their 404.
        strategies += [op.as_strategy(GenerationMode.POSITIVE, path_parameters=real),
                       op.as_strategy(GenerationMode.NEGATIVE, path_parameters=real)]

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              derandomize=True, suppress_health_check=list(HealthCheck))
    @given(case=st.one_of(strategies))
    def run(case: Any) -> None:
        try:
            case.call_and_validate(base_url=base, session=session, checks=CHECKS, timeout=30)
        except (Exception, BaseExceptionGroup) as exc:  # collect: report every broken op
            msg = f"{op.method.upper()} {op.path}: {type(exc).__name__}: {exc}"
            if len(found) < 3:
                found.append(msg[:3000])

    run()
    return found


#: Header values a browser would never send but a hostile client can: printable
#: ASCII mixed with bytes that are not UTF-8 (0x80-0xff).  Control characters are
#: refused by aiohttp's HTTP parser itself (a plain 400) before our code runs.
_HEADER_BYTES = st.lists(st.one_of(st.integers(0x21, 0x7E), st.integers(0x80, 0xFF)),
                         min_size=1, max_size=64).map(bytes)
_CREDENTIAL_HEADERS = ("Authorization", "Cookie", "X-Share-Token", "X-CSRF-Token")


def _deep_json(depth: int, kind: int) -> bytes:
    opener, closer = [(b"[", b"]"), (b'{"a":', b"}"), (b'[{"a":', b"}]")][kind]
    return opener * depth + b"1" * (kind > 0) + closer * depth


def _concrete(template: str, ids: dict[str, Any]) -> str:
    for name, value in ids.items():
        template = template.replace("{" + name + "}", str(value))
    return template


def test_hostile_headers_and_deep_json_on_every_operation(tmp_path: Path,
                                                          database_url: str) -> None:
    """Hypothesis sends non-UTF-8 credential headers and deeply nested JSON to every
    operation of the OpenAPI document: never a 5xx, always our JSON error shape."""
    pyramid = _pyramid(tmp_path)
    app_settings = from_env(var_dir=tmp_path / "var", database_url=database_url, job_workers=0)
    with live_app(lambda: create_app(app_settings)) as base:
        session, ids = _seed(base, database_url, app_settings.images_dir, pyramid)
        spec = requests.get(f"{base}/api/openapi.json", timeout=10).json()
        ops = sorted((method.upper(), _concrete(path, ids)) for path, item in
                     spec["paths"].items() for method in item
                     if method in ("get", "post", "put", "patch", "delete")
                     and not path.endswith("/session") and "/users/" not in path)
        bad: list[str] = []

        def check(method: str, path: str, resp: requests.Response, what: str) -> None:
            ok = resp.status_code < 500
            if resp.status_code >= 400 and resp.content:
                ok = ok and resp.headers.get("Content-Type", "").startswith("application/json")
                ok = ok and isinstance(resp.json().get("error"), str)
            if not ok and len(bad) < 10:
                bad.append(f"{method} {path} {what}: {resp.status_code} {resp.text[:200]}")

        @settings(max_examples=120, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(op=st.sampled_from(ops), header=st.sampled_from(_CREDENTIAL_HEADERS),
               value=_HEADER_BYTES)
        def headers_case(op: tuple[str, str], header: str, value: bytes) -> None:
            method, path = op
            if header == "Cookie":
                value = b"microtome_session=" + value
            elif header == "Authorization" and value[0] % 2:
                value = b"Bearer " + value
            resp = requests.request(method, base + path, headers={header: value}, timeout=30)
            check(method, path, resp, f"{header}={value!r}")

        writes = [op for op in ops if op[0] in ("POST", "PUT", "PATCH")]

        @settings(max_examples=60, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(op=st.sampled_from(writes), depth=st.integers(40, 3000),
               kind=st.integers(0, 2))
        def deep_case(op: tuple[str, str], depth: int, kind: int) -> None:
            method, path = op
            resp = session.request(method, base + path, data=_deep_json(depth, kind),
                                   headers={"Content-Type": "application/json"}, timeout=30)
            check(method, path, resp, f"depth {depth}")
            # Uploads and attachments take any bytes as they are (a JSON file is a file).
            if resp.status_code < 300 and not path.startswith("/api/uploads") \
                    and not path.endswith("/attachments"):
                bad.append(f"{method} {path}: nesting {depth} accepted")

        headers_case()
        deep_case()
        assert requests.get(f"{base}/api/setup", timeout=10).status_code == 200
    assert not bad, "\n".join(bad)
