"""The annotation API through the real application and a real PostgreSQL.

Responses are checked against /api/openapi.json by `call` (tests/catalog/helpers).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import orjson
import pytest
from aiohttp.test_utils import TestClient
from PIL import Image

from microtome.pyramid.reader import open_pyramid
from tests.catalog.helpers import Actor, call
from tests.catalog.world import World

SQUARE = {"type": "Polygon",
          "coordinates": [[[100, 100], [200, 100], [200, 150], [100, 150], [100, 100]]]}


def square(x: float, y: float, s: float = 4) -> dict[str, Any]:
    return {"type": "Polygon",
            "coordinates": [[[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]]}


async def geo(client: TestClient, actor: Actor, method: str, path: str, json: Any = None,
              data: bytes | None = None, expect: int = 200) -> Any:
    """Calls returning GeoJSON (application/geo+json) or a JSON error."""
    headers = actor.headers(method)
    if json is not None:
        data = orjson.dumps(json)
        headers["Content-Type"] = "application/json"
    resp = await client.request(method, path, data=data, headers=headers)
    raw = await resp.read()
    assert resp.status == expect, (resp.status, raw[:500])
    if resp.status < 300:
        assert resp.content_type == "application/geo+json"
    return orjson.loads(raw) if raw else None


async def test_crud_viewport_and_terms(api: TestClient, world: World) -> None:
    a = world.actors
    iid, pid = world.image_id, world.project_id
    _, term = await call(api, a["contributor"], "POST", f"/api/projects/{pid}/terms",
                         {"name": "Tumor", "color": [200, 0, 0]}, expect=201)
    assert term["color"] == "#c80000"
    _, ann = await call(api, a["contributor"], "POST", f"/api/images/{iid}/annotations",
                        {"geometry": SQUARE, "terms": [term["id"]], "data": {"note": "x"}},
                        expect=201)
    assert ann["properties"]["project_id"] == pid
    assert ann["properties"]["user_id"] == a["contributor"].user_id
    assert ann["bbox"] == [100, 100, 200, 150] and ann["geometry"] == SQUARE
    assert ann["properties"]["area_px"] == 5000
    aid = ann["id"]
    _, got = await call(api, a["viewer"], "GET", f"/api/annotations/{aid}", expect=200)
    assert got == ann
    fc = await geo(api, a["viewer"], "GET", f"/api/images/{iid}/annotations?bbox=150,140,160,145")
    assert fc["lod"] == "features" and [f["id"] for f in fc["features"]] == [aid]
    assert fc["features"][0]["properties"]["terms"] == [term["id"]]
    fc = await geo(api, a["viewer"], "GET", f"/api/images/{iid}/annotations?bbox=300,300,400,400")
    assert fc["features"] == []
    fc = await geo(api, a["viewer"], "GET",
                   f"/api/images/{iid}/annotations?term={term['id'] + 1}")
    assert fc["features"] == []
    _, upd = await call(api, a["contributor"], "PATCH", f"/api/annotations/{aid}",
                        {"shape": {"type": "ellipse", "cx": 300, "cy": 200, "rx": 40, "ry": 20},
                         "terms": []}, expect=200)
    assert upd["properties"]["kind"] == "ellipse" and upd["properties"]["terms"] == []
    assert upd["properties"]["shape"]["rx"] == 40
    _, c = await call(api, a["viewer"], "GET", f"/api/images/{iid}/annotations/counts",
                      expect=200)
    assert c == {"total": 1, "untermed": 1, "terms": {}}
    await call(api, a["contributor"], "DELETE", f"/api/annotations/{aid}", expect=204)
    await call(api, a["viewer"], "GET", f"/api/annotations/{aid}", expect=404)


# Who may do what: (actor, read, create, edit someone else's, create term, delete term)
MATRIX = [
    ("anonymous", 401, 401, 401, 401, 401),
    ("outsider", 404, 404, 404, 404, 404),
    ("share", 200, 403, 403, 404, 404),  # the project itself is not shared
    ("viewer", 200, 403, 403, 403, 403),
    ("contributor", 200, 201, 403, 201, 403),
    ("manager", 200, 201, 200, 201, 204),
    ("admin", 200, 201, 200, 201, 204),
]


async def test_access_matrix(api: TestClient, world: World) -> None:
    for row in MATRIX:
        await _check_actor(api, world, *row)


async def _check_actor(api: TestClient, world: World, who: str, read: int, create: int,
                       edit_other: int, term_create: int, term_delete: int) -> None:
    a = world.actors
    actor = a[who]
    iid, pid = world.image_id, world.project_id
    # Someone else's annotation (the manager's, or the contributor's when testing managers).
    owner = a["contributor"] if who in ("manager", "admin") else a["manager"]
    _, other = await call(api, owner, "POST", f"/api/images/{iid}/annotations",
                          {"geometry": SQUARE}, expect=201)
    _, term = await call(api, a["manager"], "POST", f"/api/projects/{pid}/terms",
                         {"name": f"T-{who}"}, expect=201)
    resp = await api.get(f"/api/images/{iid}/annotations", headers=actor.headers("GET"))
    assert resp.status == read, who
    await call(api, actor, "GET", f"/api/annotations/{other['id']}", expect=read)
    await call(api, actor, "GET", f"/api/images/{iid}/annotations/stats", expect=read)
    await call(api, actor, "GET", f"/api/projects/{pid}/terms", expect=read)
    await call(api, actor, "POST", f"/api/images/{iid}/annotations", {"geometry": SQUARE},
               expect=create)
    await call(api, actor, "PATCH", f"/api/annotations/{other['id']}", {"data": {"x": 1}},
               expect=edit_other)
    await call(api, actor, "POST", f"/api/projects/{pid}/terms", {"name": f"New-{who}"},
               expect=term_create)
    await call(api, actor, "DELETE", f"/api/projects/{pid}/terms/{term['id']}",
               expect=term_delete)
    # Import follows the create rule; nothing is stored when refused.
    body = orjson.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": square(10, 10), "properties": {}}]})
    resp = await api.post(f"/api/images/{iid}/annotations/import", data=body,
                          headers=actor.headers("POST"))
    assert resp.status == create, who
    await call(api, actor, "DELETE", f"/api/annotations/{other['id']}",
               expect=204 if edit_other == 200 else edit_other)


async def test_contributor_edits_own_but_not_others(api: TestClient, world: World) -> None:
    a = world.actors
    iid = world.image_id
    _, mine = await call(api, a["contributor"], "POST", f"/api/images/{iid}/annotations",
                         {"geometry": SQUARE}, expect=201)
    _, theirs = await call(api, a["manager"], "POST", f"/api/images/{iid}/annotations/batch",
                           {"annotations": [{"geometry": square(5, 5)}]}, expect=201)
    await call(api, a["contributor"], "PATCH", f"/api/annotations/{mine['id']}",
               {"data": {"ok": True}}, expect=200)
    await call(api, a["contributor"], "POST", f"/api/images/{iid}/annotations/delete",
               {"ids": [mine["id"], theirs["ids"][0]]}, expect=403)
    await call(api, a["viewer"], "GET", f"/api/annotations/{mine['id']}", expect=200)
    await call(api, a["manager"], "POST", f"/api/images/{iid}/annotations/delete",
               {"ids": [mine["id"], theirs["ids"][0]]}, expect=200)


@pytest.mark.parametrize("body, status, reason", [
    (b"{not json", 400, "malformed"),
    (b'{"geometry": {"type": "Point", "coordinates": [NaN, 1]}}', 400, "malformed"),
    (b'{"geometry": {"type": "Point", "coordinates": [1e400, 1]}}', 400, "malformed"),
    (orjson.dumps({"geometry": {"type": "Point", "coordinates": [None, 1]}}), 422, "finite"),
    (orjson.dumps({"geometry": {"type": "Point", "coordinates": [5000, 1]}}), 422, "outside"),
    (orjson.dumps({"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [9, 9], [9, 0],
                                                                  [0, 9], [0, 0]]]}}), 201, ""),
    (orjson.dumps({"geometry": SQUARE, "terms": [987654]}), 422, "unknown term"),
    (orjson.dumps({}), 422, "geometry"),
    (orjson.dumps([1, 2]), 400, "object"),
    (orjson.dumps({"shape": {"type": "hexagon"}}), 422, "shape.type"),
    (orjson.dumps({"geometry": {"type": "Polygon", "coordinates": [
        [[float(i % 600), float(i % 400)] for i in range(200_010)]]}}), 422, "too many"),
])
async def test_bad_single_input(api: TestClient, world: World, body: bytes, status: int,
                                reason: str) -> None:
    a = world.actors["contributor"]
    resp = await api.post(f"/api/images/{world.image_id}/annotations", data=body,
                          headers={**a.headers("POST"), "Content-Type": "application/json"})
    got = await resp.json()
    assert resp.status == status, got
    if status >= 400:
        assert reason in (got["error"] + str(got["detail"]))
        n = await api.get(f"/api/images/{world.image_id}/annotations/counts",
                          headers=a.headers("GET"))
        assert (await n.json())["total"] == 0


async def test_self_intersection_rejected_when_repair_off(api: TestClient, world: World) -> None:
    a = world.actors["contributor"]
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [9, 9], [9, 0], [0, 9], [0, 0]]]}
    _, err = await call(api, a, "POST", f"/api/images/{world.image_id}/annotations?repair=false",
                        {"geometry": bowtie}, expect=422)
    assert "Self-intersection" in err["error"]
    _, ok = await call(api, a, "POST", f"/api/images/{world.image_id}/annotations",
                       {"geometry": bowtie}, expect=201)
    assert ok["properties"]["kind"] == "multipolygon"


async def test_batch_is_all_or_nothing(api: TestClient, world: World) -> None:
    a = world.actors["contributor"]
    items = [{"geometry": square(i, i)} for i in range(50)]
    items[37] = {"geometry": {"type": "Point", "coordinates": [-5, 1]}}
    _, err = await call(api, a, "POST", f"/api/images/{world.image_id}/annotations/batch",
                        {"annotations": items}, expect=422)
    assert err["detail"]["index"] == 37
    _, c = await call(api, a, "GET", f"/api/images/{world.image_id}/annotations/counts")
    assert c["total"] == 0


async def test_import_export_round_trip_over_http(api: TestClient, world: World) -> None:
    a = world.actors["contributor"]
    iid = world.image_id
    feats = [{"type": "Feature", "geometry": square(10 + i * 6.5, 20 + (i % 7) * 9.25, 5.125),
              "properties": {"objectType": "detection" if i % 2 else "annotation",
                             "classification": {"name": "Tumor" if i % 3 else "Stroma",
                                                "color": [255, 0, 0] if i % 3 else [0, 255, 0]},
                             "measurements": {"i": i}}} for i in range(60)]
    body = orjson.dumps({"type": "FeatureCollection", "features": feats})
    _, res = await call(api, a, "POST", f"/api/images/{iid}/annotations/import", data=body,
                        expect=201)
    assert res["imported"] == 60 and sorted(res["terms_created"]) == ["Stroma", "Tumor"]
    out = await geo(api, a, "GET", f"/api/images/{iid}/annotations/export")
    assert [f["geometry"] for f in out["features"]] == [f["geometry"] for f in feats]
    for src, got in zip(feats, out["features"], strict=True):
        for key in ("objectType", "classification", "measurements"):
            assert got["properties"][key] == src["properties"][key]
    # Into a fresh import: identical again.
    _, res2 = await call(api, a, "POST", f"/api/images/{iid}/annotations/import",
                         data=orjson.dumps(out), expect=201)
    assert res2 == {"imported": 60, "terms_created": [], "project_id": world.project_id}
    out2 = await geo(api, a, "GET", f"/api/images/{iid}/annotations/export")
    assert [f["geometry"] for f in out2["features"][60:]] == [f["geometry"] for f in feats]
    assert ([f["properties"]["classification"] for f in out2["features"][60:]]
            == [f["properties"]["classification"] for f in feats])
    # Viewport shows them; term counts add up.
    _, c = await call(api, a, "GET", f"/api/images/{iid}/annotations/counts")
    assert c["total"] == 120 and sum(c["terms"].values()) == 120


async def test_import_bad_feature_named_and_nothing_stored(api: TestClient, world: World) -> None:
    a = world.actors["contributor"]
    feats: list[Any] = [{"type": "Feature", "geometry": square(i % 600, i % 400), "properties": {}}
                        for i in range(1000)]
    feats[777]["geometry"]["coordinates"][0][1] = [9000, 9000]
    _, err = await call(api, a, "POST", f"/api/images/{world.image_id}/annotations/import",
                        data=orjson.dumps({"type": "FeatureCollection", "features": feats}),
                        expect=422)
    assert err["detail"]["feature_index"] == 777 and "outside" in err["error"]
    _, err = await call(api, a, "POST", f"/api/images/{world.image_id}/annotations/import",
                        data=b'{"type":"FeatureCollection","features":[{"type":"Feat',
                        expect=422)
    _, c = await call(api, a, "GET", f"/api/images/{world.image_id}/annotations/counts")
    assert c["total"] == 0


async def test_lod_clusters_and_pagination(api: TestClient, world: World) -> None:
    a = world.actors["contributor"]
    iid = world.image_id
    items = [{"geometry": square(x * 10 + 1, y * 10 + 1, 3)} for x in range(60) for y in range(40)]
    await call(api, a, "POST", f"/api/images/{iid}/annotations/batch", {"annotations": items},
               expect=201)
    url = f"/api/images/{iid}/annotations"
    fc = await geo(api, a, "GET", url + "?max_features=1000&grid=8")
    assert fc["lod"] == "clusters" and sum(f["properties"]["count"] for f in fc["features"]) == 2400
    assert len(fc["features"]) <= 64
    fc = await geo(api, a, "GET", url + "?max_features=1000&bbox=0,0,100,100")
    assert fc["lod"] == "features" and len(fc["features"]) == 100
    ids: list[int] = []
    after = None
    while True:
        fc = await geo(api, a, "GET", url + "?lod=features&limit=1000"
                       + (f"&after={after}" if after else ""))
        ids += [f["id"] for f in fc["features"]]
        after = fc["next_after"]
        if after is None:
            break
    assert len(ids) == 2400 and ids == sorted(set(ids))
    # Simplification at low zoom keeps shapes but drops sub-pixel detail.
    fc = await geo(api, a, "GET", url + "?bbox=0,0,50,50&scale=100")
    assert all(f["geometry"]["type"] == "Polygon" for f in fc["features"])


async def test_search_with_exact_predicates(api: TestClient, world: World) -> None:
    a = world.actors["contributor"]
    iid = world.image_id
    _, r = await call(api, a, "POST", f"/api/images/{iid}/annotations/batch", {"annotations": [
        {"geometry": square(10, 10, 10)}, {"geometry": square(30, 30, 10)},
        {"geometry": {"type": "Point", "coordinates": [52, 12]}}]}, expect=201)
    tri = {"type": "Polygon", "coordinates": [[[0, 0], [60, 0], [0, 60], [0, 0]]]}
    fc = await geo(api, a, "POST", f"/api/images/{iid}/annotations/search",
                   {"geometry": tri, "predicate": "within"})
    assert [f["id"] for f in fc["features"]] == [r["ids"][0]]
    fc = await geo(api, a, "POST", f"/api/images/{iid}/annotations/search",
                   {"geometry": tri, "predicate": "intersects"})
    assert [f["id"] for f in fc["features"]] == r["ids"][:2]
    fc = await geo(api, a, "POST", f"/api/images/{iid}/annotations/search",
                   {"geometry": {"type": "Point", "coordinates": [15, 15]},
                    "predicate": "contains"})
    assert [f["id"] for f in fc["features"]] == [r["ids"][0]]


async def test_crop_and_mask_images(api: TestClient, world: World, small_pyramid: Any) -> None:
    a = world.actors["viewer"]
    _, ann = await call(api, world.actors["contributor"], "POST",
                        f"/api/images/{world.image_id}/annotations",
                        {"shape": {"type": "ellipse", "cx": 300, "cy": 200, "rx": 100,
                                   "ry": 50}}, expect=201)
    resp = await api.get(f"/api/annotations/{ann['id']}/crop.png?size=1000",
                         headers=a.headers("GET"))
    assert resp.status == 200 and resp.content_type == "image/png"
    crop = np.asarray(Image.open(io.BytesIO(await resp.read())))
    assert crop.shape == (100, 200, 3)
    expected = open_pyramid(small_pyramid).read_region(0, 200, 150, 200, 100)
    assert np.abs(crop.astype(int) - expected.astype(int)).max() <= 8  # lossy JPEG chunks
    resp = await api.get(f"/api/annotations/{ann['id']}/mask.png?size=100",
                         headers=a.headers("GET"))
    mask = np.asarray(Image.open(io.BytesIO(await resp.read())))
    assert mask.shape == (50, 100)
    assert mask[25, 50] == 255 and mask[1, 1] == 0
    assert abs((mask > 0).mean() - np.pi / 4) < 0.05
    resp = await api.get(f"/api/annotations/{ann['id']}/mask.png?alpha=true",
                         headers=a.headers("GET"))
    rgba = np.asarray(Image.open(io.BytesIO(await resp.read())))
    assert rgba.shape[2] == 4 and rgba[50, 100, 3] == 255 and rgba[0, 0, 3] == 0
    resp = await api.get(f"/api/annotations/{ann['id']}/crop.png?size=0",
                         headers=a.headers("GET"))
    assert resp.status == 400
    resp = await api.get(f"/api/annotations/{ann['id']}/crop.jpg",
                         headers=world.actors["outsider"].headers("GET"))
    assert resp.status == 404


async def test_every_annotation_route_is_documented(api: TestClient) -> None:
    from microtome.app import openapi_document

    SPEC = openapi_document()

    ours = [r.canonical for r in api.app.router.resources()
            if "annotations" in r.canonical or "/terms" in r.canonical]
    assert len(ours) >= 15
    missing = [p for p in ours if p not in SPEC["paths"]]
    assert not missing
    desc = SPEC["paths"]["/api/images/{image_id}/annotations"]["get"]["description"]
    assert "top-left" in desc and "y down" in desc
