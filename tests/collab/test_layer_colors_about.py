"""Saved layer colours (per user per project) and the project's Markdown description."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from tests.catalog.helpers import call
from tests.catalog.world import World

HOSTILE = "# Study\n<script>alert(1)</script>\n[x](javascript:alert(2))\n*fine*"


async def test_layer_colors_are_personal_and_persist(client: TestClient, world: World) -> None:
    a, pid = world.actors, world.project_id
    url = f"/api/projects/{pid}/layer-colors"
    _, got = await call(client, a["viewer"], "GET", url, expect=200)
    assert got == {"project_id": pid, "colors": {}}
    _, got = await call(client, a["viewer"], "PATCH", url,
                        {"user:3": "#AABBCC", "analysis:7": "#010203"}, expect=200)
    assert got["colors"] == {"analysis:7": "#010203", "user:3": "#aabbcc"}
    _, got = await call(client, a["viewer"], "PATCH", url,
                        {"user:3": "#112233", "analysis:7": None}, expect=200)
    assert got["colors"] == {"user:3": "#112233"}
    # Read back in a later request; nobody else sees or shares them.
    _, got = await call(client, a["viewer"], "GET", url, expect=200)
    assert got["colors"] == {"user:3": "#112233"}
    _, other = await call(client, a["manager"], "GET", url, expect=200)
    assert other["colors"] == {}
    # The share link is for the image only: the project is not visible through it.
    for who, status in (("outsider", 404), ("anonymous", 401), ("share", 404)):
        await call(client, a[who], "GET", url, expect=status)
        await call(client, a[who], "PATCH", url, {"user:1": "#000000"}, expect=status)


@pytest.mark.parametrize("body", [
    {"user:x": "#000000"}, {"robot:1": "#000000"}, {"user:1": "red"},
    {"user:1": "#00000"}, {"user:1": 7}, {}, [], {"user:1": "#0000000"},
    {f"user:{i}": "#000000" for i in range(201)},
])
async def test_bad_layer_colors_are_400(client: TestClient, world: World, body: object) -> None:
    url = f"/api/projects/{world.project_id}/layer-colors"
    _, err = await call(client, world.actors["viewer"], "PATCH", url, body, expect=400,
                        validate=False)
    assert err["error"]
    _, got = await call(client, world.actors["viewer"], "GET", url, expect=200)
    assert got["colors"] == {}  # nothing half-applied


async def test_project_description_renders_sanitised(client: TestClient, world: World) -> None:
    a, pid = world.actors, world.project_id
    url = f"/api/projects/{pid}/about"
    await call(client, a["contributor"], "PATCH", url, {"description": "x"}, expect=403)
    _, about = await call(client, a["manager"], "PATCH", url, {"description": HOSTILE},
                          expect=200)
    assert about["description"] == HOSTILE
    html = about["description_html"]
    assert "<h1>Study</h1>" in html and "<em>fine</em>" in html
    # The tags and the link come out as text: no element, no href.
    assert "<script" not in html and "&lt;script&gt;" in html and "href" not in html
    _, got = await call(client, a["viewer"], "GET", url, expect=200)
    assert got == about
    _, project = await call(client, a["viewer"], "GET", f"/api/projects/{pid}", expect=200)
    assert project["description"] == HOSTILE  # the same column the project record shows
    for body in ({"description": 5}, {"description": "x" * 20001}, {"tags": []}, {}):
        _, err = await call(client, a["manager"], "PATCH", url, body, expect=400,
                            validate=False)
        assert err["detail"]["field"] == "description"
    await call(client, a["outsider"], "GET", url, expect=404)
