"""The bulk import path (binary COPY built in numpy, density cells added by the
importer) stores exactly what the one-by-one path stores."""

from __future__ import annotations

import io

import asyncpg
import numpy as np
import orjson

from microtome.annotations import bulk, geojson_io, store
from microtome.annotations.geojson_io import ImportOptions
from microtome.annotations.geometry import ImageFrame, prepare
from microtome.pyramid.errors import Unprocessable

from .conftest import Seed

# The density cells recomputed from the stored rows, as the trigger of 0101 does.
RECOMPUTE = """
SELECT c.cell, floor(annotation_center_x(a.image_id, a.sbox) / c.cell)::int AS gx,
       floor(annotation_center_y(a.sbox) / c.cell)::int AS gy, count(*) AS n,
       sum(annotation_center_x(a.image_id, a.sbox)) AS sx, sum(annotation_center_y(a.sbox)) AS sy
  FROM annotations a CROSS JOIN (VALUES (256), (1024), (4096)) AS c(cell)
 WHERE a.image_id = $1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""


def _features(n: int, seed: int = 3) -> bytes:
    rng = np.random.default_rng(seed)
    feats = []
    for i in range(n):
        cx, cy = (float(v) for v in rng.uniform(20, 9_980, 2))
        k = int(rng.integers(5, 30))
        t = np.sort(rng.uniform(0, 2 * np.pi, k))
        xy = np.round(np.c_[cx + 8 * np.cos(t), cy + 8 * np.sin(t)], 3)
        ring: list[list[float]] = xy.tolist()  # type: ignore[assignment]
        ring.append(ring[0])
        props: dict[str, object] = {"objectType": "detection", "i": i}
        if i % 3:
            props["classification"] = {"name": ["A", "B"][i % 2], "color": [i % 256, 0, 0]}
        if i % 7 == 0:
            props["microtome"] = {"kind": "ellipse", "producer": f"run-{i % 2}",
                                  "shape": {"type": "ellipse", "cx": cx, "cy": cy, "rx": 8,
                                            "ry": 8, "angle": 0}}
        feats.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                      "properties": props})
    return orjson.dumps({"type": "FeatureCollection", "features": feats})


async def test_density_of_an_import_matches_the_rows(conn: asyncpg.Connection,
                                                     seed: Seed) -> None:
    frame = await store.image_frame(conn, seed.image_id)
    for part in range(2):  # the second import adds to cells the first one created
        await geojson_io.import_file(conn, io.BytesIO(_features(3_000, seed=part)), frame,
                                     project_id=seed.project_id, user_id=seed.contributor,
                                     opts=ImportOptions())
    want = await conn.fetch(RECOMPUTE, seed.image_id)
    got = await conn.fetch("SELECT cell, gx, gy, n, sx, sy FROM annotation_density "
                           "WHERE image_id = $1 AND n > 0 ORDER BY 1, 2, 3", seed.image_id)
    assert [tuple(r)[:4] for r in got] == [tuple(r)[:4] for r in want]
    assert len(got) > 100
    for g, w in zip(got, want, strict=True):
        assert abs(g["sx"] - w["sx"]) < 1e-6 * abs(w["sx"]) + 1e-9
        assert abs(g["sy"] - w["sy"]) < 1e-6 * abs(w["sy"]) + 1e-9
    # The trigger is back in charge after the import's transaction.
    assert await conn.fetchval("SELECT current_setting('microtome.density_by_caller', true)") \
        in (None, "")
    await store.insert_many(conn, [store.record(
        frame, prepare({"type": "Point", "coordinates": [5000.5, 5000.5]}, frame),
        project_id=seed.project_id, user_id=None, producer=None, term_ids=[],
        properties={})])
    assert await conn.fetchval(
        "SELECT n FROM annotation_density WHERE image_id = $1 AND cell = 4096 AND gx = 1 "
        "AND gy = 1", seed.image_id) == (await conn.fetchval(
            "SELECT count(*) FROM annotations WHERE image_id = $1 "
            "AND annotation_center_x(image_id, sbox) >= 4096 "
            "AND annotation_center_x(image_id, sbox) < 8192 "
            "AND annotation_center_y(sbox) >= 4096 AND annotation_center_y(sbox) < 8192",
            seed.image_id))


async def test_bulk_rows_equal_single_inserts(conn: asyncpg.Connection, seed: Seed) -> None:
    """Every column written by the binary COPY equals the asyncpg-encoded insert of the
    same geometry (pixel size known, terms, shapes, producers, properties)."""
    frame = await store.image_frame(conn, seed.image_id)
    body = _features(200)
    await geojson_io.import_file(conn, io.BytesIO(body), frame, project_id=seed.project_id,
                                 user_id=seed.contributor, opts=ImportOptions())
    cols = ("kind, shape, geom, sbox, n_vertices, area_px, perimeter_px, area_um2, "
            "perimeter_um, producer, properties, project_id, user_id, cardinality(term_ids) "
            "AS nterms")
    bulk_rows = await conn.fetch(f"SELECT {cols} FROM annotations ORDER BY id")
    assert len(bulk_rows) == 200
    await conn.execute("DELETE FROM annotations")
    batch = geojson_io.prepare_batch(orjson.loads(body)["features"], frame, ImportOptions(), 0)
    recs = []
    for i in range(len(batch)):
        p = prepare({"type": "Polygon", "coordinates": [orjson.loads(body)["features"][i][
            "geometry"]["coordinates"][0]]}, frame)
        recs.append(store.record(
            frame, p, project_id=seed.project_id, user_id=seed.contributor,
            producer=batch.producers[i], term_ids=[1] * bool(batch.term_names[i]),
            properties=batch.data[i]))
        kind, shape = batch.kinds[i], batch.shapes[i]
        recs[-1] = (*recs[-1][:4], kind, shape, *recs[-1][6:])
    await store.insert_many(conn, recs)
    single_rows = await conn.fetch(f"SELECT {cols} FROM annotations ORDER BY id")
    assert [dict(r) for r in bulk_rows] == [dict(r) for r in single_rows]


def test_encode_null_columns_and_empty_terms() -> None:
    """Unknown pixel size, no project or user: NULLs; an empty term list encodes."""
    frame = ImageFrame(3, 10_000, 10_000, None)
    batch = geojson_io.prepare_batch(orjson.loads(_features(5))["features"], frame,
                                     ImportOptions(), 0)
    payload = bulk.encode(frame, batch, [1, 2, 3, 4, 5], [bulk.term_array((), {})] * 5,
                          project_id=None, user_id=None)
    assert payload.startswith(bulk.HEADER) and payload.endswith(bulk.TRAILER)
    assert payload.count(b"\xff\xff\xff\xff") >= 5 * 4  # 4 NULL columns per row


def test_memoised_classification_still_checks_each_feature() -> None:
    frame = ImageFrame(3, 10_000, 10_000, None)
    feats = orjson.loads(_features(6))["features"]
    for f in feats:
        f["properties"].pop("microtome", None)
        f["properties"]["classification"] = {"name": "A", "color": [1, 0, 0]}
    batch = geojson_io.prepare_batch(feats, frame, ImportOptions(), 0)
    assert batch.term_names == [(("A", "#010000"),)] * 6
    for bad in ([True, 0, 0], [1, 0, 256], [1, 0]):
        feats[4]["properties"]["classification"] = {"name": "A", "color": bad}
        try:
            geojson_io.prepare_batch(feats, frame, ImportOptions(), 10)
        except Unprocessable as e:
            assert e.detail["feature_index"] == 14
        else:
            raise AssertionError(f"colour {bad} accepted")
