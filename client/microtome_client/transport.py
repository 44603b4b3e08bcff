"""HTTP on httpx: authentication headers, timeouts, retries, errors as exceptions.

Retries (with exponential backoff and jitter) cover 503 answers and failures
to connect or read, and only for idempotent methods (GET, HEAD, PUT, DELETE,
OPTIONS) or calls marked ``idempotent=True`` (a tus PATCH at a known offset):
a POST that may have reached the server is never sent twice.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from ._version import __version__
from .errors import AuthenticationError, ConnectionFailed, error_for

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_UNSAFE = frozenset({"POST", "PATCH", "PUT", "DELETE"})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry idempotent calls on 503 / connection errors."""

    attempts: int = 4
    backoff: float = 0.25  # seconds before the first retry; doubles each time
    max_backoff: float = 5.0

    def delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * 2 ** attempt)
        return base * (0.5 + random.random() / 2)


def _json_or_text(resp: httpx.Response) -> Any:
    ctype = resp.headers.get("content-type", "")
    if "json" in ctype:
        try:
            return resp.json()
        except ValueError:
            pass
    return resp.text


class Transport:
    """One pooled async HTTP connection set to one server, with credentials."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 30.0,
                 retry: RetryPolicy | None = None, max_connections: int = 16,
                 verify: bool | str = True) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"server URL must start with http:// or https://, not {url!r}")
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.csrf: str | None = None
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        limits = httpx.Limits(max_connections=max_connections,
                              max_keepalive_connections=max_connections)
        self.http = httpx.AsyncClient(base_url=self.url, timeout=timeout, limits=limits,
                                      verify=verify, follow_redirects=False,
                                      headers={"User-Agent": f"microtome-client/{__version__}"})

    def headers(self, method: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        h: dict[str, str] = {}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        elif self.csrf and method in _UNSAFE:
            h["X-CSRF-Token"] = self.csrf  # session cookie logins need it on writes
        if extra:
            h.update(extra)
        return h

    async def _send(self, method: str, path: str, *, stream: bool, idempotent: bool | None,
                    auth: bool = True, **kw: Any) -> httpx.Response:
        retry = method in IDEMPOTENT if idempotent is None else idempotent
        extra = kw.pop("headers", None)
        headers = self.headers(method, extra) if auth else dict(extra or {})
        attempt = 0
        while True:
            try:
                req = self.http.build_request(method, path, headers=headers, **kw)
                resp = await self.http.send(req, stream=stream)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as e:
                if retry and attempt + 1 < self.retry.attempts:
                    await asyncio.sleep(self.retry.delay(attempt))
                    attempt += 1
                    continue
                raise ConnectionFailed(f"{method} {self.url}{path}: {type(e).__name__}: "
                                       f"{e or 'no answer'}") from e
            if resp.status_code == 503 and retry and attempt + 1 < self.retry.attempts:
                await resp.aclose()
                await asyncio.sleep(self.retry.delay(attempt))
                attempt += 1
                continue
            if resp.status_code >= 400:
                if stream:
                    await resp.aread()
                raise error_for(resp.status_code, _json_or_text(resp), method=method,
                                url=path, retry_after=resp.headers.get("retry-after"))
            return resp

    async def request(self, method: str, path: str, *, idempotent: bool | None = None,
                      **kw: Any) -> httpx.Response:
        """The whole answer (read); errors raise `APIError` subclasses.  ``auth=False``
        sends no credentials (e.g. to ask what a share token alone grants)."""
        return await self._send(method, path, stream=False, idempotent=idempotent, **kw)

    async def json(self, method: str, path: str, **kw: Any) -> Any:
        resp = await self.request(method, path, **kw)
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    @asynccontextmanager
    async def stream(self, method: str, path: str, **kw: Any) -> AsyncIterator[httpx.Response]:
        """An answer whose body is read in pieces (downloads, exports)."""
        resp = await self._send(method, path, stream=True, idempotent=None, **kw)
        try:
            yield resp
        finally:
            await resp.aclose()

    async def login(self, username: str, password: str) -> dict[str, Any]:
        """Session login: the cookie stays in the client, the CSRF token in ``csrf``."""
        try:
            body = await self.json("POST", "/api/session",
                                   json={"username": username, "password": password})
        except AuthenticationError:
            raise
        self.api_key = None
        self.csrf = body.get("csrf_token")
        return body  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        await self.http.aclose()
