"""Image and project properties, description and tags, CSV import, grid filter and sort."""

from __future__ import annotations

from html.parser import HTMLParser

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from microtome.catalog import describe
from microtome.catalog.images import register_image
from tests.catalog.helpers import call
from tests.catalog.world import World


async def test_roles_and_round_trip(client: TestClient, world: World) -> None:
    a, iid, pid = world.actors, world.image_id, world.project_id
    url = f"/api/images/{iid}/properties"
    _, body = await call(client, a["manager"], "PATCH", url,
                         {"stain": "H&E", "block": "A1", "thickness um": 4.5, "fresh": True},
                         expect=200)
    assert body["properties"] == {"stain": "H&E", "block": "A1", "thickness um": "4.5",
                                  "fresh": "true"}
    assert {p["updated_by"] for p in body["items"]} == {"manager"}
    for who in ("viewer", "share"):
        _, got = await call(client, a[who], "GET", url, expect=200)
        assert got["properties"]["stain"] == "H&E"
    for who, status in (("viewer", 403), ("contributor", 403), ("outsider", 404),
                        ("anonymous", 401), ("share", 403)):
        await call(client, a[who], "PATCH", url, {"stain": "x"}, expect=status)
    _, body = await call(client, a["manager"], "PATCH", url, {"fresh": None}, expect=200)
    assert "fresh" not in body["properties"]
    # Project properties: managers write, viewers read.
    purl = f"/api/projects/{pid}/properties"
    await call(client, a["contributor"], "PATCH", purl, {"study": "S1"}, expect=403)
    await call(client, a["manager"], "PATCH", purl, {"study": "S1"}, expect=200)
    _, got = await call(client, a["viewer"], "GET", purl, expect=200)
    assert got["properties"] == {"study": "S1"}
    # The image record carries them (the grid shows them).
    _, img = await call(client, a["viewer"], "GET", f"/api/images/{iid}", expect=200)
    assert img["properties"]["block"] == "A1"


@pytest.mark.parametrize("key", ["<script>", "a" * 65, "", "x\"y", "stain'", "k&v", "   "])
async def test_bad_keys_are_refused(client: TestClient, world: World, key: str) -> None:
    status, body = await call(client, world.actors["manager"], "PATCH",
                              f"/api/images/{world.image_id}/properties", {key: "v"})
    assert status == 400, body
    assert "property key" in body["error"]


async def test_bad_values_are_refused(client: TestClient, world: World) -> None:
    url, m = f"/api/images/{world.image_id}/properties", world.actors["manager"]
    for value in ("x" * 2001, {"nested": 1}, [1], "bell\x07"):
        status, body = await call(client, m, "PATCH", url, {"k": value})
        assert status == 400, (value, body)
    status, _ = await call(client, m, "PATCH", url, {})
    assert status == 400


HOSTILE = """# Report
<script>alert(1)</script>
<img src=x onerror=alert(2)>
[click](javascript:alert(3)) [ok](https://example.org/a)
<a href="javascript:alert(4)">x</a>
<iframe src="https://evil.example"></iframe>
[data](data:text/html;base64,PHNjcmlwdD5hbGVydCg1KTwvc2NyaXB0Pg==)
**bold** <svg onload=alert(6)>
"""


class _Elements(HTMLParser):
    """Every element and attribute a browser would build from the HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs += [(k, v or "") for k, v in attrs]


def assert_inert(html: str) -> None:
    """No element that runs script, no event handler, no script or data URL."""
    p = _Elements()
    p.feed(html)
    assert not p.tags & {"script", "img", "iframe", "svg", "object", "embed", "style"}, p.tags
    for k, v in p.attrs:
        assert not k.startswith("on") and k not in ("style", "src"), (k, v)
        assert not v.strip().lower().startswith(("javascript:", "data:", "vbscript:")), v


def test_description_is_sanitised() -> None:
    html = describe.render(HOSTILE)
    assert_inert(html)
    assert "<strong>bold</strong>" in html and "<h1>Report</h1>" in html
    assert 'href="https://example.org/a"' in html and "noopener" in html
    # The source's markup is shown as text, not dropped silently.
    assert "&lt;script&gt;" in html


async def test_description_and_tags(client: TestClient, world: World) -> None:
    a, url = world.actors, f"/api/images/{world.image_id}/about"
    _, body = await call(client, a["manager"], "PATCH", url,
                         {"description": HOSTILE, "tags": ["HE", "he", "tumour"]}, expect=200)
    assert body["tags"] == ["HE", "tumour"]
    assert_inert(body["description_html"])
    _, seen = await call(client, a["viewer"], "GET", url, expect=200)
    assert seen["description"] == HOSTILE
    assert_inert(seen["description_html"])
    await call(client, a["contributor"], "PATCH", url, {"tags": []}, expect=403)
    status, _ = await call(client, a["manager"], "PATCH", url, {"tags": ["<b>"]})
    assert status == 400
    status, _ = await call(client, a["manager"], "PATCH", url, {"description": "x" * 20001})
    assert status == 400
    status, _ = await call(client, a["manager"], "PATCH", url, {"colour": "red"})
    assert status == 400
    # Tag filter in the grid.
    _, page = await call(client, a["viewer"], "GET",
                         f"/api/projects/{world.project_id}/images?tag=tumour", expect=200)
    assert [i["id"] for i in page["items"]] == [world.image_id]
    _, page = await call(client, a["viewer"], "GET",
                         f"/api/projects/{world.project_id}/images?tag=none", expect=200)
    assert page["items"] == []


async def _more_images(database_url: str, pid: int, names: list[str]) -> list[int]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        return [await register_image(pool, name=n, relpath=f"x/{n}", width=10, height=10,
                                     levels=1, project_id=pid, source_filename=f"{n}.svs")
                for n in names]
    finally:
        await pool.close()


def _csv(client_body: str) -> bytes:
    return client_body.encode()


async def test_csv_import_all_or_nothing(client: TestClient, world: World,
                                         database_url: str) -> None:
    a, pid = world.actors, world.project_id
    ids = await _more_images(database_url, pid, ["s2", "s3"])
    url = f"/api/projects/{pid}/properties/import"
    bad = "file,stain,block\ns2.svs,HE,B1\nunknown.svs,IHC,B2\ns3.svs,,B3\ns2.svs,PAS,\n"
    status, body = await call(client, a["manager"], "POST", url, data=bad.encode(),
                              content_type="text/csv")
    assert status == 422, body
    rows = body["detail"]["rows"]
    assert [r["status"] for r in rows] == ["ok", "error", "ok", "error"]
    assert "no image" in rows[1]["error"] and "row 2" in rows[3]["error"]
    assert body["detail"]["applied"] is False
    _, props = await call(client, a["viewer"], "GET", f"/api/images/{ids[0]}/properties")
    assert props["properties"] == {}  # nothing half-applied
    good = "file;stain;block\ns2.svs;HE;B1\nS3.SVS;;B3\n"  # semicolons, any case
    _, body = await call(client, a["manager"], "POST", url + "?dry_run=1", data=good.encode(),
                         content_type="text/csv", expect=200)
    assert body["applied"] is False
    _, body = await call(client, a["manager"], "POST", url, data=good.encode(),
                         content_type="text/csv", expect=200)
    assert body["applied"] is True and body["properties"] == 3
    _, props = await call(client, a["viewer"], "GET", f"/api/images/{ids[1]}/properties")
    assert props["properties"] == {"block": "B3"}
    assert props["items"][0]["source"] == "csv"
    await call(client, a["contributor"], "POST", url, data=good.encode(),
               content_type="text/csv", expect=403)


async def test_csv_bad_input(client: TestClient, world: World) -> None:
    m, url = world.actors["manager"], f"/api/projects/{world.project_id}/properties/import"
    latin1 = "file,stain\nslide-1,Hämatoxylin\n".encode("latin-1")
    status, body = await call(client, m, "POST", url, data=latin1, content_type="text/csv")
    assert status == 422 and "UTF-8" in body["error"]
    assert body["detail"]["rows"][0]["row"] == 2
    for text in ("", "name_of_file,stain\n", "file,<b>\nslide-1,x\n", "file,a,a\nslide-1,1,2\n"):
        status, body = await call(client, m, "POST", url, data=text.encode(),
                                  content_type="text/csv")
        assert status in (400, 422), (text, body)
    status, _ = await call(client, m, "POST", url, data=b"{}", content_type="application/json")
    assert status == 415


async def test_grid_filter_and_sort_by_property(client: TestClient, world: World,
                                                database_url: str) -> None:
    a, pid = world.actors, world.project_id
    ids = await _more_images(database_url, pid, ["b", "c", "d"])
    for iid, (stain, size) in zip([world.image_id, *ids],
                                  [("HE", "10"), ("IHC", "9"), ("he", "100"), ("PAS", None)],
                                  strict=True):
        changes = {"stain": stain} | ({"size": size} if size else {})
        await call(client, a["manager"], "PATCH", f"/api/images/{iid}/properties", changes,
                   expect=200)
    base = f"/api/projects/{pid}/images"
    _, page = await call(client, a["viewer"], "GET", base + "?prop=stain=HE", expect=200)
    assert sorted(i["id"] for i in page["items"]) == sorted([world.image_id, ids[1]])
    assert page["total"] == 2
    # Numbers sort as numbers (9 < 10 < 100); images without the property come last.
    _, page = await call(client, a["viewer"], "GET", base + "?sort=prop:size", expect=200)
    assert [i["id"] for i in page["items"]] == [ids[0], world.image_id, ids[1], ids[2]]
    _, page = await call(client, a["viewer"], "GET", base + "?sort=-prop:size", expect=200)
    assert [i["id"] for i in page["items"]] == [ids[1], world.image_id, ids[0], ids[2]]
    _, keys = await call(client, a["viewer"], "GET", f"/api/projects/{pid}/property-keys",
                         expect=200)
    assert {k["key"]: k["images"] for k in keys["items"]} == {"size": 3, "stain": 4}
    for bad in ("?prop=stain", "?prop=%3Cb%3E=1", "?sort=prop:%3Cx%3E",
                "?" + "&".join(["prop=a=1"] * 6)):
        status, body = await call(client, a["viewer"], "GET", base + bad, validate=False)
        assert status == 400, (bad, body)
