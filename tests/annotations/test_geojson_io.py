"""GeoJSON import/export against a real PostgreSQL: round trip and bad input."""

from __future__ import annotations

import io
from typing import Any

import asyncpg
import orjson
import pytest
import shapely

from microtome.annotations import geojson_io, store, terms
from microtome.annotations.geojson_io import ImportOptions
from microtome.pyramid.errors import MicrotomeError, TooLarge, Unprocessable

from .conftest import Seed


def cell(i: int, x: float, y: float, cls: str | None = "Tumor", **props: Any) -> dict[str, Any]:
    ring = [[x, y], [x + 10.25, y], [x + 12.5, y + 7.125], [x + 3, y + 11.0625], [x, y]]
    p: dict[str, Any] = {"objectType": "annotation", **props}
    if cls:
        p["classification"] = {"name": cls, "color": [200, 0, 0] if cls == "Tumor" else [0, 0, 255]}
    return {"type": "Feature", "id": f"uuid-{i}", "geometry": {"type": "Polygon",
                                                                 "coordinates": [ring]},
            "properties": p}


def collection(features: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"type": "FeatureCollection", "features": features})


async def _import(conn: asyncpg.Connection, seed: Seed, body: bytes,
                  opts: ImportOptions | None = None) -> dict[str, Any]:
    frame = await store.image_frame(conn, seed.image_id)
    return await geojson_io.import_file(conn, io.BytesIO(body), frame,
                                        project_id=seed.project_id, user_id=seed.contributor,
                                        opts=opts or ImportOptions())


async def _export(conn: asyncpg.Connection, seed: Seed) -> dict[str, Any]:
    info = {r["id"]: (r["name"], r["color"]) for r in await terms.list_terms(conn, seed.project_id)}
    chunks = [c async for c in geojson_io.export_chunks(conn, seed.image_id, None, info,
                                                        batch=7)]
    return orjson.loads(b"".join(chunks))


async def _count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM annotations"))


async def test_qupath_round_trip_is_exact(conn: asyncpg.Connection, seed: Seed) -> None:
    feats = [cell(i, 100 + (i % 10) * 40.1, 200 + (i // 10) * 40.3,
                  "Tumor" if i % 3 else "Stroma") for i in range(25)]
    feats.append(cell(25, 5000, 5000, None, objectType="detection", measurements={"a": 1}))
    result = await _import(conn, seed, collection(feats))
    assert result == {"imported": 26, "terms_created": ["Stroma", "Tumor"]}
    out = await _export(conn, seed)
    assert len(out["features"]) == 26
    for src, got in zip(feats, out["features"], strict=True):
        assert got["geometry"] == src["geometry"]  # exact coordinates, same ring order
        p = got["properties"]
        assert p["objectType"] == src["properties"]["objectType"]
        assert p.get("classification") == src["properties"].get("classification")
    assert out["features"][-1]["properties"]["measurements"] == {"a": 1}
    # Re-import the export: same geometries and terms again, no new terms.
    again = await _import(conn, seed, orjson.dumps(out))
    assert again == {"imported": 26, "terms_created": []}
    rows = await conn.fetch("SELECT geom, term_ids FROM annotations ORDER BY id")
    first, second = rows[:26], rows[26:]
    for a, b in zip(first, second, strict=True):
        assert a["geom"] == b["geom"] and list(a["term_ids"]) == list(b["term_ids"])


async def test_bare_array_and_multiple_terms(conn: asyncpg.Connection, seed: Seed) -> None:
    f = cell(0, 10, 10, "A")
    f["properties"]["microtome"] = {"terms": ["A", "B"], "kind": "rectangle",
                                    "shape": {"type": "rectangle"}}
    await _import(conn, seed, orjson.dumps([f]))
    row = await conn.fetchrow("SELECT term_ids, kind FROM annotations")
    assert len(row["term_ids"]) == 2 and row["kind"] == "rectangle"


def _bad_one_among(n: int, bad_index: int, bad: Any) -> bytes:
    feats: list[Any] = [cell(i, (i % 300) * 30.0, (i // 300) * 30.0) for i in range(n)]
    feats[bad_index] = bad
    return collection(feats)


@pytest.mark.parametrize("bad, reason", [
    ({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1e9, 0],
                                                                         [0, 5], [0, 0]]]},
      "properties": {}}, "outside the image"),
    ({"type": "Feature", "geometry": None, "properties": {}}, "no geometry"),
    ({"type": "Feature", "geometry": {"type": "Point", "coordinates": [1e400, 1]},
      "properties": {}}, "finite"),
    ({"type": "Feature", "geometry": {"type": "Circle", "coordinates": [1, 1]}}, "unsupported"),
    ({"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 1]},
      "properties": {"classification": 5}}, "classification"),
    ({"type": "Point", "coordinates": [1, 1]}, "not a GeoJSON Feature"),
])
async def test_one_bad_feature_rejects_everything(conn: asyncpg.Connection, seed: Seed,
                                                  bad: Any, reason: str) -> None:
    body = _bad_one_among(3000, 2345, bad)
    with pytest.raises(Unprocessable, match=reason) as e:
        await _import(conn, seed, body)
    assert e.value.detail["feature_index"] == 2345
    assert e.value.message.startswith("feature 2345")
    assert await _count(conn) == 0
    assert await conn.fetchval("SELECT count(*) FROM terms") == 0  # created terms rolled back


async def test_one_bad_feature_among_100k(conn: asyncpg.Connection, seed: Seed) -> None:
    body = _bad_one_among(100_000, 99_998, {"type": "Feature", "geometry": {
        "type": "Polygon", "coordinates": [[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]]},
        "properties": {}})
    with pytest.raises(Unprocessable, match="Self-intersection") as e:
        await _import(conn, seed, body, ImportOptions(repair=False))
    assert e.value.detail["feature_index"] == 99_998
    assert await _count(conn) == 0


@pytest.mark.parametrize("body, reason", [
    (b'{"type": "FeatureCollection", "features": [', "end of input"),
    (b'{"type": "Feature", "geometry": null}', "FeatureCollection"),
    (b'{"type": "FeatureCollection"}', "no 'features'"),
    (b'"hello"', "FeatureCollection"),
    (b'{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": '
     b'{"type": "Point", "coordinates": [NaN, 1]}}]}', "invalid JSON"),
    (b'\xff\xfe garbage', "invalid JSON|FeatureCollection"),
])
async def test_invalid_documents(conn: asyncpg.Connection, seed: Seed, body: bytes,
                                 reason: str) -> None:
    with pytest.raises(Unprocessable, match=reason):
        await _import(conn, seed, body)
    assert await _count(conn) == 0


async def test_huge_feature_refused_by_size(conn: asyncpg.Connection, seed: Seed) -> None:
    ring = ",".join(f"[{i % 1000}.5,{i % 777}.25]" for i in range(300_000))
    body = (b'{"type":"FeatureCollection","features":[' + orjson.dumps(cell(0, 1, 1))
            + b',{"type":"Feature","properties":{},"geometry":{"type":"Polygon",'
            b'"coordinates":[[' + ring.encode() + b"]]}}]}")
    with pytest.raises(TooLarge) as e:
        await _import(conn, seed, body, ImportOptions(max_feature_bytes=1 << 20))
    assert e.value.detail["feature_index"] == 1
    # Under the byte limit the vertex limit applies.
    with pytest.raises(MicrotomeError, match="too many vertices"):
        await _import(conn, seed, body)
    assert await _count(conn) == 0


async def test_unknown_terms_without_creation(conn: asyncpg.Connection, seed: Seed) -> None:
    await terms.create_term(conn, seed.project_id, "Tumor")
    body = collection([cell(0, 1, 1, "Tumor"), cell(1, 50, 50, "Necrosis")])
    with pytest.raises(Unprocessable, match="unknown term") as e:
        await _import(conn, seed, body, ImportOptions(create_terms=False))
    assert e.value.detail["feature_index"] == 1
    assert await _count(conn) == 0


async def test_clip_option(conn: asyncpg.Connection, seed: Seed) -> None:
    f = cell(0, 99_995, 10)
    await _import(conn, seed, collection([f]), ImportOptions(clip=True))
    row = await conn.fetchrow("SELECT geom FROM annotations")
    assert shapely.from_wkb(row["geom"]).bounds[2] == 100_000
