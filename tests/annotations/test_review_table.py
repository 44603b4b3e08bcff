"""Review workflow, the annotation table (keyset pages, filters), bulk actions, layers,
project statistics and exports, through the real application and PostgreSQL.

Responses are checked against /api/openapi.json by `call`.
"""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient

from microtome.catalog.security import digest, new_api_key
from tests.catalog.helpers import Actor, call
from tests.catalog.world import World


def square(x: float, y: float, s: float = 4) -> dict[str, Any]:
    return {"type": "Polygon",
            "coordinates": [[[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]]}


async def add_member(database_url: str, world: World, name: str, role: str) -> Actor:
    conn = await asyncpg.connect(database_url)
    try:
        uid = await conn.fetchval("INSERT INTO users (username) VALUES ($1) RETURNING id", name)
        key = new_api_key()
        await conn.execute("INSERT INTO api_keys (user_id, name, prefix, key_hash) "
                           "VALUES ($1, 'test', $2, $3)", uid, key[:8], digest(key))
        await conn.execute("INSERT INTO project_members VALUES ($1, $2, $3)",
                           world.project_id, uid, role)
    finally:
        await conn.close()
    return Actor(name, uid, api_key=key)


async def draw(api: TestClient, actor: Actor, world: World, geometry: dict[str, Any],
               **extra: Any) -> dict[str, Any]:
    _, body = await call(api, actor, "POST", f"/api/images/{world.image_id}/annotations",
                         {"geometry": geometry, "project_id": world.project_id, **extra},
                         expect=201)
    return body  # type: ignore[no-any-return]


async def raw_get(api: TestClient, actor: Actor, path: str, expect: int = 200) -> bytes:
    resp = await api.get(path, headers=actor.headers("GET"))
    data = await resp.read()
    assert resp.status == expect, (resp.status, data[:300])
    return data


@pytest.fixture
async def reviewer(world: World, database_url: str) -> Actor:
    return await add_member(database_url, world, "rita", "reviewer")


async def test_review_session(api: TestClient, world: World, reviewer: Actor,
                              database_url: str) -> None:
    a = world.actors
    second = await add_member(database_url, world, "cora", "contributor")
    pid, iid = world.project_id, world.image_id
    await call(api, a["contributor"], "PUT", f"/api/projects/{pid}/review",
               {"requires_review": True}, expect=403)
    _, summary = await call(api, a["manager"], "PUT", f"/api/projects/{pid}/review",
                            {"requires_review": True}, expect=200)
    assert summary["requires_review"] is True
    _, term = await call(api, a["manager"], "POST", f"/api/projects/{pid}/terms",
                         {"name": "Tumour"}, expect=201)
    one = await draw(api, a["contributor"], world, square(10, 10))
    two = await draw(api, second, world, square(50, 50))
    own = await draw(api, reviewer, world, square(90, 90))
    assert one["properties"]["review_status"] == "pending"
    assert own["properties"]["review_status"] == "accepted"  # a reviewer's own: accepted
    _, img = await call(api, a["manager"], "GET", f"/api/images/{iid}/review", expect=200)
    assert (img["pending"], img["accepted"], img["reviewed"]) == (2, 1, False)

    url = f"/api/annotations/{one['id']}/review"
    accept = {"action": "accept", "updated_at": one["properties"]["updated_at"]}
    for who in ("contributor", "viewer"):  # not reviewers
        await call(api, a[who], "POST", url, accept, expect=403)
    await call(api, a["outsider"], "POST", url, accept, expect=404)
    _, done = await call(api, reviewer, "POST", url, {**accept, "terms": [term["id"]]},
                         expect=200)
    assert done["properties"]["review_status"] == "accepted"
    assert done["properties"]["terms"] == [term["id"]]
    assert done["properties"]["reviewed_by"] == reviewer.user_id
    url2 = f"/api/annotations/{two['id']}/review"
    reject = {"action": "reject", "updated_at": two["properties"]["updated_at"]}
    _, err = await call(api, reviewer, "POST", url2, reject, expect=400)
    assert err["detail"]["field"] == "reason"
    await call(api, reviewer, "POST", url2, {**reject, "reason": "a\u0000b"}, expect=400)
    _, done2 = await call(api, reviewer, "POST", url2, {**reject, "reason": "not tumour"},
                          expect=200)
    assert done2["properties"]["review_reason"] == "not tumour"

    _, img = await call(api, a["viewer"], "GET", f"/api/images/{iid}/review", expect=200)
    assert (img["pending"], img["accepted"], img["rejected"], img["reviewed"]) == (0, 2, 1, True)
    _, proj = await call(api, a["viewer"], "GET", f"/api/projects/{pid}/review", expect=200)
    assert proj["images"] == [img]
    _, hist = await call(api, a["viewer"], "GET", f"/api/annotations/{one['id']}/reviews",
                         expect=200)
    [h] = hist["items"]
    assert (h["action"], h["reviewer"], h["terms_before"], h["terms_after"]) == (
        "accept", "rita", [], [term["id"]])

    # The export of the reviewed layer holds only the accepted annotations.
    data = await raw_get(api, a["viewer"],
                         f"/api/images/{iid}/annotations/table/export?reviewed=true")
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert sorted(int(r["id"]) for r in rows) == sorted([one["id"], own["id"]])
    by = {int(r["id"]): r for r in rows}
    assert by[one["id"]]["term"] == "Tumour" and by[one["id"]]["reviewed_by"] == "rita"
    assert by[one["id"]]["author"] == "contributor"
    assert float(by[one["id"]]["area_um2"]) == pytest.approx(16 * 0.25)
    everything = await raw_get(api, a["viewer"], f"/api/images/{iid}/annotations/table/export")
    assert len(list(csv.DictReader(io.StringIO(everything.decode())))) == 3


async def test_review_of_a_changed_annotation_is_409_with_the_current_version(
        api: TestClient, world: World, reviewer: Actor) -> None:
    a = world.actors
    seen = await draw(api, a["contributor"], world, square(10, 10))
    _, changed = await call(api, a["contributor"], "PATCH", f"/api/annotations/{seen['id']}",
                            {"geometry": square(20, 20, 8)}, expect=200)
    url = f"/api/annotations/{seen['id']}/review"
    _, err = await call(api, reviewer, "POST", url,
                        {"action": "accept", "updated_at": seen["properties"]["updated_at"]},
                        expect=409)
    current = err["detail"]["current"]
    assert current["properties"]["updated_at"] == changed["properties"]["updated_at"]
    assert current["geometry"] == changed["geometry"]
    _, ok = await call(api, reviewer, "POST", url,
                       {"action": "accept", "updated_at": current["properties"]["updated_at"]},
                       expect=200)
    assert ok["properties"]["review_status"] == "accepted"
    await call(api, reviewer, "POST", url, {"action": "accept"}, expect=400)
    await call(api, reviewer, "POST", url, {"action": "maybe", "updated_at": "x"}, expect=400)
    # The author changes it again: pending again; a reviewer's own change keeps the review.
    _, again = await call(api, a["contributor"], "PATCH", f"/api/annotations/{seen['id']}",
                          {"geometry": square(30, 30, 8)}, expect=200)
    assert again["properties"]["review_status"] == "pending"


async def test_bulk_actions(api: TestClient, world: World, reviewer: Actor) -> None:
    a = world.actors
    ids = [(await draw(api, a["contributor"], world, square(10 * i, 10)))["id"]
           for i in range(1, 5)]
    other = (await draw(api, a["manager"], world, square(10, 100)))["id"]
    _, term = await call(api, a["manager"], "POST", f"/api/projects/{world.project_id}/terms",
                         {"name": "Stroma"}, expect=201)
    bulk = "/api/annotations-bulk"
    await call(api, a["contributor"], "POST", bulk, {"action": "accept", "ids": ids},
               expect=403)
    # All or nothing: one annotation the contributor may not change refuses the lot.
    await call(api, a["contributor"], "POST", bulk,
               {"action": "set_terms", "ids": [*ids, other], "terms": [term["id"]]}, expect=403)
    _, r = await call(api, a["contributor"], "POST", bulk,
                      {"action": "set_terms", "ids": ids, "terms": [term["id"]]}, expect=200)
    assert r["done"] == 4
    _, r = await call(api, reviewer, "POST", bulk, {"action": "accept", "ids": ids[:2]},
                      expect=200)
    assert r["done"] == 2
    await call(api, reviewer, "POST", bulk, {"action": "reject", "ids": ids[2:]}, expect=400)
    await call(api, a["contributor"], "POST", bulk, {"action": "delete", "ids": [ids[3]]},
               expect=200)
    await call(api, a["contributor"], "POST", bulk, {"action": "delete", "ids": [ids[3]]},
               expect=404)
    await call(api, a["contributor"], "POST", bulk, {"action": "nuke", "ids": ids}, expect=400)
    _, page = await call(api, a["viewer"], "GET",
                         f"/api/images/{world.image_id}/annotations/table?status=accepted",
                         expect=200)
    # The manager's own annotation was accepted when made.
    assert [r["id"] for r in page["items"]] == [*ids[:2], other]
    assert all(r["terms"] == [term["id"]] for r in page["items"][:2])


def _cursor(value: Any) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _expected(rows: list[dict[str, Any]], sort: str, desc: bool) -> list[int]:
    key = {"id": lambda r: r["id"], "image": lambda r: r["image_id"],
           "kind": lambda r: r["kind"], "area": lambda r: r["area_px"],
           "perimeter": lambda r: r["perimeter_px"], "created": lambda r: r["created_at"],
           "author": lambda r: r["user_id"] or 0,
           "term": lambda r: r["terms"][0] if r["terms"] else 0,
           "status": lambda r: r["review_status"]}[sort]
    return [r["id"] for r in sorted(rows, key=lambda r: (key(r), r["id"]), reverse=desc)]


async def test_table_pages_every_sort_and_filter(api: TestClient, world: World,
                                                 reviewer: Actor) -> None:
    a = world.actors
    base = f"/api/images/{world.image_id}/annotations/table"
    _, term = await call(api, a["manager"], "POST", f"/api/projects/{world.project_id}/terms",
                         {"name": "T"}, expect=201)
    sizes = [7, 3, 9, 3, 5, 12, 1, 3, 8, 6, 2, 10, 4]
    for i, s in enumerate(sizes):
        who = a["contributor"] if i % 3 else a["manager"]
        # Every fourth a line: the kind sort has two kinds to order.
        geometry = (square(20 * i, 30, s) if i % 4 else
                    {"type": "LineString", "coordinates": [[20 * i, 30], [20 * i + s, 40]]})
        await draw(api, who, world, geometry, terms=[term["id"]] if i % 2 else [],
                   data={"measurements": {"score": i}, "label": "x" if i % 5 else "Tumour"})
    _, whole = await call(api, a["viewer"], "GET", base + "?limit=1000", expect=200)
    everything = whole["items"]
    assert whole["total"] == len(sizes) and whole["next"] is None
    await call(api, reviewer, "POST", "/api/annotations-bulk",
               {"action": "accept", "ids": [r["id"] for r in everything[:4]]}, expect=200)
    _, whole = await call(api, a["viewer"], "GET", base + "?limit=1000", expect=200)
    everything = whole["items"]
    for sort in ("id", "image", "kind", "area", "perimeter", "created", "author", "term",
                 "status"):
        for desc in (False, True):
            seen: list[int] = []
            after = None
            while True:
                q = f"?sort={sort}&order={'desc' if desc else 'asc'}&limit=4"
                _, page = await call(api, a["viewer"], "GET",
                                     base + q + (f"&after={after}" if after else ""), expect=200)
                seen += [r["id"] for r in page["items"]]
                after = page["next"]
                if after is None:
                    break
            assert seen == _expected(everything, sort, desc), (sort, desc)

    async def ids(q: str) -> list[int]:
        _, page = await call(api, a["viewer"], "GET", base + "?limit=1000&" + q, expect=200)
        return [r["id"] for r in page["items"]]

    assert len(await ids(f"term={term['id']}")) == 6
    assert len(await ids(f"user={a['manager'].user_id}")) == 5
    # 8 by the contributor, 2 of them accepted (the manager's are accepted when made).
    assert len(await ids("status=pending")) == 6
    assert len(await ids("prop=measurements.score&prop_min=3&prop_max=5")) == 3
    assert await ids("prop=label") == []  # a text property is never in a numeric range
    # Key/value: equal text, case-insensitive; numbers compare as their text.
    assert len(await ids("prop=label&prop_value=tumour")) == 3  # i = 0, 5, 10
    assert len(await ids("prop=label&prop_value=x")) == len(sizes) - 3
    assert len(await ids("prop=measurements.score&prop_value=7")) == 1
    assert await ids("prop=label&prop_value=nothing") == []
    assert len(await ids("from=2000-01-01&to=2999-01-01")) == len(sizes)
    assert await ids("from=2999-01-01") == []
    assert len(await ids(f"layers=user:{a['manager'].user_id}")) == 5

    for q, field in (("sort=bogus", "sort"), ("order=up", "order"), ("limit=0", "limit"),
                     ("status=maybe", "status"), ("from=yesterday", "from"),
                     ("after=garbage", "after"), ("prop_min=3", "prop"), ("prop_value=x", "prop"),
                     ("prop=label&prop_value=" + "x" * 2001, "prop_value"),
                     ("prop=label&prop_value=a%00b", "prop_value"),
                     ("sort=kind&after=" + _cursor(["kind", False, "blob", 1]), "after"),
                     ("prop=a&prop_max=x", "prop_max"), ("term=a", "term"),
                     ("layers=robot:1", "layers"), ("reviewed=perhaps", "reviewed"),
                     ("prop=a%00b", "prop"), ("from=2020-13-45", "from"),
                     ("sort=author&after=" + _cursor(["author", False, 2**70, 1]), "after"),
                     ("sort=status&after=" + _cursor(["status", False, "x\u0000", 1]), "after"),
                     ("term=99999999999999999999", "term")):
        _, err = await call(api, a["viewer"], "GET", base + "?" + q, expect=400)
        assert err["detail"]["field"] == field, q
    # A cursor of another sort is refused, not misread.
    _, first = await call(api, a["viewer"], "GET", base + "?sort=area&limit=2", expect=200)
    _, err = await call(api, a["viewer"], "GET", base + f"?sort=created&after={first['next']}",
                        expect=400)
    await call(api, a["outsider"], "GET", base, expect=404)


async def test_layers_stats_and_exports(api: TestClient, world: World, database_url: str
                                        ) -> None:
    a = world.actors
    pid, iid = world.project_id, world.image_id
    _, term = await call(api, a["manager"], "POST", f"/api/projects/{pid}/terms",
                         {"name": "Cell"}, expect=201)
    for i in range(3):
        await draw(api, a["contributor"], world, square(10 * i, 10, 4), terms=[term["id"]])
    await draw(api, a["manager"], world, square(100, 100, 10))
    _, layers = await call(api, a["viewer"], "GET", f"/api/images/{iid}/annotations/layers",
                           expect=200)
    counts = {x["name"]: x["count"] for x in layers["items"]}
    assert counts == {"contributor": 3, "manager": 1}
    # An analysis run's results are a layer of their own.
    conn = await asyncpg.connect(database_url)
    try:
        run = await conn.fetchval("INSERT INTO analyses (image_id, app, version, status)"
                                  " VALUES ($1, 'nuclei', '1', 'done') RETURNING id", iid)
        await conn.execute("UPDATE annotations SET analysis_id = $1 WHERE id = (SELECT max(id)"
                           " FROM annotations WHERE user_id = $2)", run,
                           a["contributor"].user_id)
    finally:
        await conn.close()
    _, layers = await call(api, a["viewer"], "GET", f"/api/images/{iid}/annotations/layers",
                           expect=200)
    by_key = {x["key"]: x for x in layers["items"]}
    assert by_key[f"analysis:{run}"]["count"] == 1
    assert by_key[f"analysis:{run}"]["name"] == f"nuclei #{run}"
    assert by_key[f"user:{a['contributor'].user_id}"]["count"] == 2
    for q, n in ((f"layers=analysis:{run}", 1), (f"analysis={run}", 1),
                 (f"layers=user:{a['contributor'].user_id},analysis:{run}", 3), ("layers=", 0)):
        _, c = await call(api, a["viewer"], "GET",
                          f"/api/images/{iid}/annotations/counts?{q}", expect=200)
        assert c["total"] == n, q
    # The viewport and counts take the same filters as the table (the layer panel).
    _, c = await call(api, a["viewer"], "GET", f"/api/images/{iid}/annotations/counts"
                      f"?layers=user:{a['manager'].user_id}", expect=200)
    assert c["total"] == 1
    _, stats = await call(api, a["viewer"], "GET", f"/api/projects/{pid}/annotations/stats",
                          expect=200)
    by = {x["term_name"]: x for x in stats["items"]}
    assert by["Cell"]["count"] == 3 and by["Cell"]["area_um2_sum"] == pytest.approx(3 * 4)
    assert by[None]["count"] == 1
    _, pt = await call(api, a["viewer"], "GET", f"/api/projects/{pid}/annotations/table"
                       "?sort=area&order=desc&limit=2", expect=200)
    assert pt["total"] == 4 and pt["items"][0]["area_px"] == 100
    await call(api, a["outsider"], "GET", f"/api/projects/{pid}/annotations/table", expect=404)

    fc = orjson.loads(await raw_get(
        api, a["viewer"], f"/api/images/{iid}/annotations/table/export?format=geojson"
        f"&term={term['id']}"))
    assert len(fc["features"]) == 3
    assert fc["features"][0]["properties"]["classification"]["name"] == "Cell"
    data = await raw_get(api, a["viewer"],
                         f"/api/projects/{pid}/annotations/table/export?format=xlsx")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
        assert "[Content_Types].xml" in z.namelist()
    assert sheet.count("<row>") == 5 and "Cell" in sheet and "contributor" in sheet
    _, err = await call(api, a["viewer"], "GET",
                        f"/api/images/{iid}/annotations/table/export?format=pdf", expect=400)
    assert err["detail"]["field"] == "format"
