"""Large imports parsed by worker processes store exactly what the sequential parser
stores, cut the file only at real feature boundaries, and report bad input the same way."""

from __future__ import annotations

import io
from typing import Any

import asyncpg
import orjson
import pytest

from microtome.annotations import geojson_io, store
from microtome.annotations.geojson_io import ImportOptions
from microtome.pyramid.errors import TooLarge, Unprocessable

from .conftest import Seed
from .test_bulk import _features

COLS = ("kind, shape, geom, sbox, n_vertices, area_px, perimeter_px, area_um2, perimeter_um, "
        "producer, properties, project_id, user_id, term_ids")


async def _run(conn: asyncpg.Connection, seed: Seed, body: bytes, parallel: bool,
               opts: ImportOptions | None = None) -> tuple[dict[str, Any], list[Any]]:
    frame = await store.image_frame(conn, seed.image_id)
    res = await geojson_io.import_file(conn, io.BytesIO(body), frame,
                                       project_id=seed.project_id, user_id=seed.contributor,
                                       opts=opts or ImportOptions(), parallel=parallel)
    rows = [dict(r) for r in await conn.fetch(f"SELECT {COLS} FROM annotations ORDER BY id")]
    await conn.execute("DELETE FROM annotations")
    return res, rows


@pytest.fixture
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    # Runs of ~20 features: many cuts, several tasks per worker.
    monkeypatch.setattr(geojson_io, "SEGMENT_BYTES", 8 << 10)


async def test_parallel_rows_equal_sequential(conn: asyncpg.Connection, seed: Seed,
                                              small_segments: None) -> None:
    body = _features(800)
    frame = await store.image_frame(conn, seed.image_id)
    # The workers parse this file (no fallback) ...
    batches = list(geojson_io.parallel_batches(body, frame, ImportOptions(),
                                               geojson_io.parse_pool(), 3))
    assert len(batches) > 5 and sum(map(len, batches)) == 800
    # ... and what they parse is stored as the sequential parse is.
    seq, want = await _run(conn, seed, body, parallel=False)
    par, got = await _run(conn, seed, body, parallel=True)
    assert par["imported"] == seq["imported"] == 800
    assert got == want
    # A bare array of features too.
    feats = orjson.loads(body)["features"]
    _, got = await _run(conn, seed, orjson.dumps(feats), parallel=True)
    assert got == want


async def test_boundary_lookalikes_inside_features(conn: asyncpg.Connection, seed: Seed,
                                                   small_segments: None) -> None:
    """'},{' inside a feature (a list of objects, a string) is a candidate cut; a run cut
    there does not decode, so the import still stores every feature whole."""
    feats = orjson.loads(_features(600))["features"]
    for i, f in enumerate(feats):
        f["properties"]["cells"] = [{"k": j} for j in range(60)]  # '},{' x 59
        f["properties"]["note"] = "a},{b" * 40
        f["properties"]["i"] = i
    body = orjson.dumps({"type": "FeatureCollection", "features": feats})
    frame = await store.image_frame(conn, seed.image_id)
    with pytest.raises(geojson_io.Fallback):  # a cut inside a feature is noticed
        list(geojson_io.parallel_batches(body, frame, ImportOptions(),
                                         geojson_io.parse_pool(), 3))
    _, want = await _run(conn, seed, body, parallel=False)
    _, got = await _run(conn, seed, body, parallel=True)
    assert len(got) == 600 and got == want
    assert [r["properties"]["i"] for r in got] == list(range(600))


def test_segments_follow_real_boundaries(small_segments: None) -> None:
    """Where no lookalike exists every candidate is real: the runs together are the
    feature list, each decodes on its own."""
    body = _features(1_000)
    segs = list(geojson_io._segments(body))
    assert len(segs) > 10
    got = [f for a, b in segs for f in orjson.loads(b"[" + body[a:b] + b"]")]
    assert got == orjson.loads(body)["features"]
    with pytest.raises(geojson_io.Fallback):
        list(geojson_io._segments(b'{"features": [], "type": "FeatureCollection"}'))


async def test_bad_feature_reported_as_sequentially(conn: asyncpg.Connection, seed: Seed,
                                                    small_segments: None) -> None:
    feats = orjson.loads(_features(1_000))["features"]
    feats.append(feats[0])
    feats[734]["geometry"] = {"type": "Polygon",
                                "coordinates": [[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]]}
    body = orjson.dumps({"type": "FeatureCollection", "features": feats})
    with pytest.raises(Unprocessable, match="Self-intersection") as e:
        await _run(conn, seed, body, parallel=True, opts=ImportOptions(repair=False))
    assert e.value.detail["feature_index"] == 734
    assert await conn.fetchval("SELECT count(*) FROM annotations") == 0
    assert await conn.fetchval("SELECT count(*) FROM terms") == 0  # rolled back
    # Invalid JSON in the middle: the same message as the sequential parser gives.
    broken = body.replace(b'"i":700,', b'"i":700,,', 1)
    with pytest.raises(Unprocessable, match="feature 700: invalid JSON"):
        await _run(conn, seed, broken, parallel=True)
    with pytest.raises(TooLarge, match="more than 1000 features"):
        await _run(conn, seed, body, parallel=True, opts=ImportOptions(max_features=1_000))


def test_warm_pool_starts_working_processes() -> None:
    geojson_io.warm_pool()  # what the import handler calls while the body arrives
    assert geojson_io.parse_pool().submit(int, "7").result(timeout=120) == 7
