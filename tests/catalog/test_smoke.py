from __future__ import annotations

from aiohttp.test_utils import TestClient


async def test_openapi_and_empty_image_list(client: TestClient) -> None:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    spec = await resp.json()
    assert spec["openapi"].startswith("3.1")
    resp = await client.get("/api/images")
    assert resp.status == 200
    assert await resp.json() == {"items": [], "total": 0, "limit": 50, "offset": 0}
    resp = await client.get("/api/setup")
    assert (await resp.json()) == {"needs_setup": True}
