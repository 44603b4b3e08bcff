"""Helpers for catalog tests: an API caller that checks every response against the
OpenAPI document, and ready-made users with roles."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import orjson
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator

from microtome.app import openapi_document

PASSWORD = "correct horse battery"
SECRET = b"test-secret-key-0123456789abcdef"


@dataclass
class Actor:
    """Credentials to call the API with: a session (cookie + CSRF), an API key,
    a share token, or nothing (anonymous)."""

    name: str
    user_id: int | None = None
    cookie: str | None = None
    csrf: str | None = None
    api_key: str | None = None
    share: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def headers(self, method: str) -> dict[str, str]:
        h = dict(self.extra)
        if self.cookie:
            h["Cookie"] = f"microtome_session={self.cookie}"
            if self.csrf and method not in ("GET", "HEAD", "OPTIONS"):
                h["X-CSRF-Token"] = self.csrf
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        if self.share:
            h["X-Share-Token"] = self.share
        return h


ANON = Actor("anonymous")


@cache
def _routes() -> list[tuple[re.Pattern[str], str]]:
    out = []
    for template in openapi_document()["paths"]:
        rx = re.sub(r"\{[^}]+\}", "[^/]+", template)
        out.append((re.compile(f"^{rx}$"), template))
    return out


def spec_operation(method: str, path: str) -> dict[str, Any] | None:
    for rx, template in _routes():
        if rx.match(path):
            return openapi_document()["paths"][template].get(method.lower())  # type: ignore[no-any-return]
    return None


def check_against_spec(method: str, path: str, status: int, body: Any) -> None:
    """The response must be documented, and JSON bodies must match their schema."""
    op = spec_operation(method, path)
    assert op is not None, f"{method} {path} is not in the OpenAPI document"
    response = op["responses"].get(str(status))
    assert response is not None, f"{method} {path}: status {status} not documented"
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return
    validator = Draft202012Validator({**schema, "components": openapi_document()["components"]})
    errors = sorted(validator.iter_errors(body), key=str)
    assert not errors, f"{method} {path} {status}: {errors[0].message}"


async def call(client: TestClient, actor: Actor, method: str, path: str, json: Any = None,
               *, data: bytes | None = None, expect: int | None = None,
               validate: bool = True, content_type: str = "application/json"
               ) -> tuple[int, Any]:
    headers = actor.headers(method)
    if json is not None:
        data = orjson.dumps(json)
    if data is not None:
        headers.setdefault("Content-Type", content_type)
    resp = await client.request(method, path, data=data, headers=headers)
    raw = await resp.read()
    body: Any = None
    if raw and resp.content_type == "application/json":
        body = orjson.loads(raw)
    if expect is not None:
        assert resp.status == expect, f"{method} {path}: {resp.status} {body!r}"
    if resp.status >= 400:
        # Every error has the JSON shape {"error", "detail"}.
        assert isinstance(body, dict) and "error" in body, f"{method} {path}: {raw!r}"
    if validate and path.startswith("/api/"):
        check_against_spec(method, path.split("?")[0], resp.status, body)
    return resp.status, body


async def create_user(client: TestClient, admin: Actor, username: str,
                      is_admin: bool = False) -> Actor:
    _, body = await call(client, admin, "POST", "/api/users",
                         {"username": username, "password": PASSWORD, "is_admin": is_admin},
                         expect=201)
    return await login(client, username, body["id"])


async def login(client: TestClient, username: str, user_id: int | None = None,
                password: str = PASSWORD) -> Actor:
    resp = await client.post("/api/session", json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    cookie = resp.cookies["microtome_session"].value
    return Actor(username, body["user"]["id"], cookie=cookie, csrf=body["csrf_token"])


async def setup_admin(client: TestClient, username: str = "admin") -> Actor:
    resp = await client.post("/api/setup", json={"username": username, "password": PASSWORD})
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    return Actor(username, body["user"]["id"], cookie=resp.cookies["microtome_session"].value,
                 csrf=body["csrf_token"])
