"""Storage and viewport queries against a real PostgreSQL."""

from __future__ import annotations

import asyncpg
import pytest
import shapely

from microtome.annotations import query, store, terms
from microtome.annotations.geometry import prepare
from microtome.annotations.query import Filters
from microtome.pyramid.errors import Conflict, Unprocessable

from .conftest import Seed


def square(x: float, y: float, s: float = 10) -> dict:
    return {"type": "Polygon",
            "coordinates": [[[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]]}


async def _insert(conn: asyncpg.Connection, seed: Seed, geoms: list[dict],
                  term_ids: list[int] | None = None, user_id: int | None = None) -> list[int]:
    frame = await store.image_frame(conn, seed.image_id)
    recs = [store.record(frame, prepare(g, frame), project_id=seed.project_id,
                         user_id=user_id or seed.contributor, producer=None,
                         term_ids=term_ids or [], properties={"i": i})
            for i, g in enumerate(geoms)]
    return await store.insert_many(conn, recs)


async def test_insert_get_round_trip(conn: asyncpg.Connection, seed: Seed) -> None:
    [aid] = await _insert(conn, seed, [square(100, 200, 50)])
    row = await store.get(conn, aid)
    assert store.bbox_of(row) == [100, 200, 150, 250]
    assert row["area_px"] == 2500 and row["area_um2"] == pytest.approx(2500 * 0.0625)
    assert row["properties"] == {"i": 0}
    assert shapely.from_wkb(row["geom"]).equals(shapely.box(100, 200, 150, 250))
    f = store.feature(row)
    assert f["bbox"] == [100, 200, 150, 250] and f["properties"]["kind"] == "polygon"


async def test_viewport_finds_only_intersecting_boxes_of_this_image(
        conn: asyncpg.Connection, seed: Seed) -> None:
    ids = await _insert(conn, seed, [square(x * 100, y * 100) for x in range(10)
                                     for y in range(10)])
    # Another image with annotations at the same place must not leak in.
    other = await seed_other_image(conn)
    frame2 = await store.image_frame(conn, other)
    await store.insert_many(conn, [store.record(frame2, prepare(square(0, 0), frame2),
                                                project_id=None, user_id=None, producer=None,
                                                term_ids=[], properties={})])
    frame = await store.image_frame(conn, seed.image_id)
    rows = await query.fetch_page(conn, frame, (0, 0, 205, 105), Filters(), limit=100)
    got = {(shapely.from_wkb(r["geom"]).bounds[:2]) for r in rows}
    assert got == {(x * 100.0, y * 100.0) for x in range(3) for y in range(2)}
    assert await query.count_upto(conn, frame, (0, 0, 1000, 1000), Filters(), 1000) == 100
    assert await query.count_upto(conn, frame, (0, 0, 1000, 1000), Filters(), 7) == 7
    # Keyset pagination walks every match exactly once.
    seen: list[int] = []
    after = None
    while True:
        page = await query.fetch_page(conn, frame, (0, 0, 1000, 1000), Filters(), limit=30,
                                      after=after)
        if not page:
            break
        seen += [r["id"] for r in page]
        after = page[-1]["id"]
    assert seen == sorted(ids)


async def seed_other_image(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(
        "INSERT INTO images (name, width, height, status) VALUES ('o', 5000, 5000, 'ready') "
        "RETURNING id")


async def test_filters_clusters_counts_and_stats(conn: asyncpg.Connection, seed: Seed) -> None:
    t1 = (await terms.create_term(conn, seed.project_id, "Tumor", [255, 0, 0]))["id"]
    t2 = (await terms.create_term(conn, seed.project_id, "Stroma", "#00FF00"))["id"]
    await _insert(conn, seed, [square(i * 20, 0) for i in range(10)], [t1])
    await _insert(conn, seed, [square(i * 20, 500) for i in range(5)], [t1, t2],
                  user_id=seed.manager)
    await _insert(conn, seed, [square(i * 20, 900) for i in range(3)])
    frame = await store.image_frame(conn, seed.image_id)
    box = query.clamp_box(frame, None)
    assert box is not None
    f = Filters(term_ids=(t2,))
    assert len(await query.fetch_page(conn, frame, box, f, limit=100)) == 5
    assert len(await query.fetch_page(conn, frame, box, Filters(untermed=True), limit=100)) == 3
    assert len(await query.fetch_page(conn, frame, box, Filters(user_ids=(seed.manager,)),
                                      limit=100)) == 5
    counts = await query.term_counts(conn, frame, box, Filters())
    assert counts == {"total": 18, "untermed": 3, "terms": {str(t1): 15, str(t2): 5}}
    stats = {s["term_id"]: s for s in await query.term_stats(conn, frame, box, Filters())}
    assert stats[None]["count"] == 3 and stats[t1]["count"] == 15
    assert stats[t2]["area_px_sum"] == 500
    cells = await query.clusters(conn, frame, (0, 0, 1000, 1000), Filters(), grid=2)
    assert sum(c["n"] for c in cells) == 18
    assert {(c["gx"], c["gy"]) for c in cells} == {(0, 0), (0, 1)}


async def test_term_rules(conn: asyncpg.Connection, seed: Seed) -> None:
    t1 = (await terms.create_term(conn, seed.project_id, "Tumor"))["id"]
    with pytest.raises(Conflict):
        await terms.create_term(conn, seed.project_id, "tumor")
    child = (await terms.create_term(conn, seed.project_id, "Grade 1", parent_id=t1))["id"]
    with pytest.raises(Unprocessable, match="cycle"):
        await terms.update_term(conn, seed.project_id, t1, {"parent_id": child})
    with pytest.raises(Unprocessable, match="unknown term"):
        await terms.check_term_ids(conn, seed.project_id, [t1, 999999])
    [aid] = await _insert(conn, seed, [square(0, 0)], [t1])
    with pytest.raises(Conflict) as e:
        await terms.delete_term(conn, seed.project_id, t1)
    assert e.value.detail == {"annotations": 1}
    assert await terms.delete_term(conn, seed.project_id, t1, force=True) == 1
    assert list((await store.get(conn, aid))["term_ids"]) == []
    assert terms.normalize_color(-3670016) == "#c80000"


async def test_density_follows_inserts_updates_deletes(conn: asyncpg.Connection,
                                                       seed: Seed) -> None:
    ids = await _insert(conn, seed, [square(100 + i * 300, 100) for i in range(10)]
                        + [square(5000, 5000)])
    frame = await store.image_frame(conn, seed.image_id)

    async def density() -> dict[tuple[int, int], int]:
        rows = await conn.fetch("SELECT gx, gy, n FROM annotation_density WHERE cell = 1024 "
                                "AND n > 0 AND image_id = $1", seed.image_id)
        return {(r["gx"], r["gy"]): r["n"] for r in rows}

    assert await density() == {(0, 0): 4, (1, 0): 3, (2, 0): 3, (4, 4): 1}
    # Moving one, deleting one, changing only terms of another.
    p = prepare(square(9000, 9000), frame)
    await store.update(conn, ids[0], frame=frame, prepared=p, term_ids=None, properties=None)
    await store.delete_many(conn, [ids[9]])
    await conn.execute("UPDATE annotations SET properties = '{\"a\": 1}' WHERE id = $1", ids[1])
    assert await density() == {(0, 0): 3, (1, 0): 3, (2, 0): 2, (4, 4): 1, (8, 8): 1}
    box = (0.0, 0.0, 100_000.0, 80_000.0)
    cells = await query.density_clusters(conn, frame, box, 8, query.density_level(box, 8) or 0)
    assert sum(c["n"] for c in cells) == 10
    live = await query.clusters(conn, frame, box, Filters(), 8)
    assert sorted((c["gx"], c["gy"], c["n"]) for c in cells) == sorted(
        (c["gx"], c["gy"], c["n"]) for c in live)
    # Deleting the image removes its counts too (cascade, no FK trouble).
    await conn.execute("DELETE FROM images WHERE id = $1", seed.image_id)
    assert await conn.fetchval("SELECT count(*) FROM annotation_density") == 0
