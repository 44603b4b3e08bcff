"""Properties, descriptions, tags, attachments, activity and follow mode.

Mixed into `Image`, `Project`, `Annotation` and `AsyncClient`.  The two live
WebSockets (`Image.live`, `AsyncClient.follow`) need ``aiohttp``
(``pip install aiohttp``); everything else uses the client's own transport.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp

    from .core import AsyncClient


def _c(record: Any) -> AsyncClient:
    return record.client  # type: ignore[no-any-return]


def _props(body: dict[str, Any]) -> dict[str, str]:
    return dict(body.get("properties") or {})


class ImageCollab:
    """Properties, description, tags, attachments and activity of an image."""

    async def get_properties(self) -> dict[str, str]:
        return _props(await _c(self).t.json("GET", f"/api/images/{_id(self)}/properties"))

    async def set_properties(self, changes: Mapping[str, Any] | None = None,
                             **kw: Any) -> dict[str, str]:
        """Set properties (managers); a value of None removes the key."""
        body = {**(changes or {}), **kw}
        return _props(await _c(self).t.json("PATCH", f"/api/images/{_id(self)}/properties",
                                            json=body))

    async def about(self) -> dict[str, Any]:
        """``{"description", "description_html", "tags"}``."""
        return await _c(self).t.json("GET", f"/api/images/{_id(self)}/about")  # type: ignore[no-any-return]

    async def update_about(self, *, description: str | None = None,
                           tags: list[str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if description is not None:
            body["description"] = description
        if tags is not None:
            body["tags"] = tags
        return await _c(self).t.json("PATCH", f"/api/images/{_id(self)}/about", json=body)  # type: ignore[no-any-return]

    async def attachments(self) -> list[dict[str, Any]]:
        body = await _c(self).t.json("GET", f"/api/images/{_id(self)}/attachments")
        return list(body["items"])

    async def attach(self, path: str | Path, filename: str | None = None) -> dict[str, Any]:
        """Attach a file (contributors); the server decides its type from the bytes."""
        p = Path(path)
        data = await asyncio.to_thread(p.read_bytes)
        return await _c(self).t.json(  # type: ignore[no-any-return]
            "POST", f"/api/images/{_id(self)}/attachments",
            params={"filename": filename or p.name}, content=data,
            headers={"Content-Type": "application/octet-stream"})

    async def activity(self, *, session_id: int | None = None, user_id: int | None = None,
                       after: str | None = None, limit: int = 1000) -> dict[str, Any]:
        """Events in time order (managers): ``{"items", "next"}``; replay with ``after``."""
        params = {k: v for k, v in (("session_id", session_id), ("user_id", user_id),
                                    ("after", after), ("limit", limit)) if v is not None}
        return await _c(self).t.json("GET", f"/api/images/{_id(self)}/activity",  # type: ignore[no-any-return]
                                     params=params)

    async def activity_sessions(self, days: int = 30) -> list[dict[str, Any]]:
        body = await _c(self).t.json("GET", f"/api/images/{_id(self)}/activity/sessions",
                                     params={"days": days})
        return list(body["items"])

    @contextlib.asynccontextmanager
    async def live(self) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
        """A live viewer on this image: ``await ws.send_json({"x", "y", "w", "h"})``."""
        async with _ws(_c(self), f"/api/live?image_id={_id(self)}") as ws:
            yield ws


class ProjectCollab:
    async def get_properties(self) -> dict[str, str]:
        return _props(await _c(self).t.json("GET", f"/api/projects/{_id(self)}/properties"))

    async def set_properties(self, changes: Mapping[str, Any] | None = None,
                             **kw: Any) -> dict[str, str]:
        body = {**(changes or {}), **kw}
        return _props(await _c(self).t.json("PATCH", f"/api/projects/{_id(self)}/properties",
                                            json=body))

    async def about(self) -> dict[str, Any]:
        """``{"description", "description_html"}``: the Markdown and its sanitised HTML."""
        return await _c(self).t.json("GET", f"/api/projects/{_id(self)}/about")  # type: ignore[no-any-return]

    async def update_about(self, *, description: str) -> dict[str, Any]:
        """Change the project's Markdown description (managers)."""
        return await _c(self).t.json(  # type: ignore[no-any-return]
            "PATCH", f"/api/projects/{_id(self)}/about", json={"description": description})

    async def layer_colors(self) -> dict[str, str]:
        """My saved viewer layer colours in this project: ``{"user:3": "#aabbcc"}``."""
        body = await _c(self).t.json("GET", f"/api/projects/{_id(self)}/layer-colors")
        return dict(body["colors"])

    async def set_layer_colors(self, changes: Mapping[str, str | None]) -> dict[str, str]:
        """Save (``"#rrggbb"``) or forget (None) layer colours; answers the whole set."""
        body = await _c(self).t.json("PATCH", f"/api/projects/{_id(self)}/layer-colors",
                                     json=dict(changes))
        return dict(body["colors"])

    async def property_keys(self) -> dict[str, int]:
        """Keys used by the project's images, with how many images carry each."""
        body = await _c(self).t.json("GET", f"/api/projects/{_id(self)}/property-keys")
        return {k["key"]: k["images"] for k in body["items"]}

    async def import_properties(self, csv: str | Path | bytes, *,
                                dry_run: bool = False) -> dict[str, Any]:
        """Image properties from a CSV keyed by file name, all rows or none.  A wrong row
        raises `Unprocessable` whose ``detail["rows"]`` is the per-row report."""
        data = csv if isinstance(csv, bytes) else await asyncio.to_thread(Path(csv).read_bytes)
        return await _c(self).t.json(  # type: ignore[no-any-return]
            "POST", f"/api/projects/{_id(self)}/properties/import",
            params={"dry_run": "true"} if dry_run else None, content=data,
            headers={"Content-Type": "text/csv"})

    async def dashboard(self, days: int = 30) -> dict[str, Any]:
        return await _c(self).t.json("GET", f"/api/projects/{_id(self)}/dashboard",  # type: ignore[no-any-return]
                                     params={"days": days})


class AnnotationCollab:
    async def get_properties(self) -> dict[str, Any]:
        return _props(await _c(self).t.json("GET",
                                            f"/api/annotations/{_id(self)}/properties"))

    async def set_properties(self, changes: Mapping[str, Any] | None = None,
                             **kw: Any) -> dict[str, Any]:
        body = {**(changes or {}), **kw}
        return _props(await _c(self).t.json(
            "PATCH", f"/api/annotations/{_id(self)}/properties", json=body))


class ClientCollab:
    async def download_attachment(self, attachment_id: int, dest: str | Path) -> Path:
        out = Path(dest)
        async with _c_client(self).t.stream("GET", f"/api/attachments/{int(attachment_id)}") \
                as resp:
            fh = await asyncio.to_thread(open, out, "wb")
            with fh:
                async for chunk in resp.aiter_bytes(1 << 20):
                    await asyncio.to_thread(fh.write, chunk)
        return out

    async def delete_attachment(self, attachment_id: int) -> None:
        await _c_client(self).t.request("DELETE", f"/api/attachments/{int(attachment_id)}")

    async def live_users(self) -> list[dict[str, Any]]:
        """Users viewing images I can read: whom I may follow."""
        return list((await _c_client(self).t.json("GET", "/api/live/users"))["items"])

    async def follow(self, user_id: int) -> AsyncIterator[dict[str, Any]]:
        """Messages of a user's live viewer: ``{"type": "view", "image_id", "x", ...}``,
        ``{"type": "hidden"}`` or ``{"type": "offline"}``; stops when the socket closes."""
        import aiohttp

        async with _ws(_c_client(self), f"/api/users/{int(user_id)}/follow") as ws:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    yield msg.json()


def _id(record: Any) -> int:
    return int(record.id)


def _c_client(client: Any) -> AsyncClient:
    return client  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def _ws(client: AsyncClient, path: str) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    import aiohttp

    await client._ensure_login()
    t = client.t
    headers = t.headers("GET")
    cookies = {c.name: c.value for c in t.http.cookies.jar if c.value is not None}
    url = t.url.replace("http", "ws", 1) + path
    async with aiohttp.ClientSession(cookies=cookies) as session, \
            session.ws_connect(url, headers=headers, heartbeat=30) as ws:
        yield ws
