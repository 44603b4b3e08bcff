"""The viewport text stored at import (`lod2`, migration 0130) is exactly what the
viewport computes for the working zoom, is used only in its band, and goes stale
never: a new geometry drops it."""

from __future__ import annotations

import io

import asyncpg
import orjson
import shapely

from microtome.annotations import geojson_io, query, render, store
from microtome.annotations.geojson_io import ImportOptions
from microtome.annotations.geometry import prepare
from microtome.annotations.query import Filters

from .conftest import Seed
from .test_bulk import _features


async def test_stored_text_equals_computed_answer(conn: asyncpg.Connection,
                                                  seed: Seed) -> None:
    frame = await store.image_frame(conn, seed.image_id)
    await geojson_io.import_file(conn, io.BytesIO(_features(300)), frame,
                                 project_id=seed.project_id, user_id=seed.contributor,
                                 opts=ImportOptions())
    box = (0.0, 0.0, 10_000.0, 10_000.0)
    lod_rows = await query.fetch_page(conn, frame, box, Filters(), limit=1000,
                                      cols=query.LOD_COLS)
    plain = await query.fetch_page(conn, frame, box, Filters(), limit=1000)
    assert len(lod_rows) == 300
    assert all(r["lod2"] is not None and r["geom"] is None for r in lod_rows)  # no WKB sent
    for scale in (2.0, 3.5):  # inside the band: the stored text, the band's simplification
        got = render.light_collection(lod_rows, scale=scale, precision=2, next_after=None,
                                      extra={})
        want = render.light_collection(plain, scale=render.LOD_SCALE, precision=2,
                                       next_after=None, extra={})
        assert got == want
    # Outside the band (or another precision) the rows without text are computed.
    assert not render.lod_band(4.0, 2) and not render.lod_band(1.5, 2)
    assert not render.lod_band(2.0, 3)
    # Ellipses (their own kind) and plain polygons both carry a text.
    kinds = {r["kind"] for r in lod_rows}
    assert {"ellipse", "polygon"} <= kinds


async def test_new_geometry_drops_the_text(conn: asyncpg.Connection, seed: Seed) -> None:
    frame = await store.image_frame(conn, seed.image_id)
    await geojson_io.import_file(conn, io.BytesIO(_features(5)), frame,
                                 project_id=seed.project_id, user_id=seed.contributor,
                                 opts=ImportOptions())
    ids = [r["id"] for r in await conn.fetch("SELECT id FROM annotations ORDER BY id")]
    square = shapely.box(10, 10, 60, 60)
    await store.update(conn, ids[0], frame=frame, term_ids=None, properties=None,
                       prepared=prepare(orjson.loads(shapely.to_geojson(square)), frame))
    await conn.execute("UPDATE annotations SET properties = '{\"x\": 1}' WHERE id = $1", ids[1])
    texts = dict(await conn.fetch("SELECT id, lod2 FROM annotations"))
    assert texts[ids[0]] is None and texts[ids[1]] is not None
    # The viewport then computes the answer from the new geometry.
    rows = await query.fetch_page(conn, frame, (0, 0, 100, 100), Filters(), limit=10,
                                  cols=query.LOD_COLS)
    doc = orjson.loads(render.light_collection(rows, scale=2.0, precision=2, next_after=None,
                                               extra={}))
    got = [f for f in doc["features"] if f["id"] == ids[0]]
    assert got and shapely.equals(shapely.geometry.shape(got[0]["geometry"]), square)
