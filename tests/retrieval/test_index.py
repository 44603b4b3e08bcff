"""The index layer on many rows: the HNSW index is really used, agrees with the exact
search, and access rules are applied inside the query (k readable results even when
the nearest rows are hidden)."""

from __future__ import annotations

import asyncpg
import numpy as np
import pytest

from microtome.catalog.access import Principal
from microtome.retrieval import index

N = 1500
FAMILY = "cstats-v2"


async def _world(pool: asyncpg.Pool, n: int = N, every: int = 2
                 ) -> tuple[Principal, Principal, int, int, list[int], list[int], np.ndarray]:
    """Two users, each with a project and an image; n annotations with random unit
    descriptors, one in `every` (the first, ...) on user 1's image, the others on
    user 2's."""
    users, images = [], []
    for name in ("one", "two"):
        uid = await pool.fetchval("INSERT INTO users (username) VALUES ($1) RETURNING id", name)
        pid = await pool.fetchval("INSERT INTO projects (name) VALUES ($1) RETURNING id", name)
        await pool.execute("INSERT INTO project_members VALUES ($1, $2, 'manager')", pid, uid)
        iid = await pool.fetchval("INSERT INTO images (name, width, height, status) "
                                  "VALUES ($1, 1000, 1000, 'ready') RETURNING id", name)
        await pool.execute("INSERT INTO project_images VALUES ($1, $2)", pid, iid)
        users.append(Principal(uid, name, False, "apikey"))
        images.append(iid)
    ids = [r["id"] for r in await pool.fetch(
        """INSERT INTO annotations (image_id, kind, geom, sbox, n_vertices, area_px,
                                    perimeter_px)
           SELECT CASE WHEN g % $4 = 0 THEN $1::bigint ELSE $2::bigint END, 'point',
                  '\\x00'::bytea, box(point(0, 0), point(1, 1)), 1, 0, 0
           FROM generate_series(0, $3 - 1) g ORDER BY g RETURNING id""",
        images[0], images[1], n, every)]
    ts = await pool.fetchval("SELECT updated_at FROM annotations LIMIT 1")
    vecs = np.random.default_rng(0).normal(size=(n, 100)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    await index.store(pool, FAMILY, [(i, v, ts) for i, v in zip(ids, vecs, strict=True)])
    await pool.execute("ANALYZE")
    mine = ids[0::every]
    return (users[0], users[1], images[0], images[1], mine,
            [i for i in ids if i not in set(mine)], vecs)


@pytest.fixture
async def pool(vector_database_url: str) -> asyncpg.Pool:
    p = await asyncpg.create_pool(vector_database_url, min_size=1, max_size=2)
    yield p
    await p.close()


async def test_hnsw_is_used_agrees_with_exact_and_respects_access(pool: asyncpg.Pool) -> None:
    assert await index.has_vector(pool)
    one, two, img1, _img2, mine, theirs, vecs = await _world(pool)
    f = index.Filter("all", img1, (), None)
    recalls = []
    for q in range(0, 40, 2):  # queries: user one's own descriptors (even rows)
        hnsw, method = await index.nearest(pool, one, f, FAMILY, vecs[q], 10, True)
        exact, m2 = await index.nearest(pool, one, f, FAMILY, vecs[q], 10, False)
        assert method == "hnsw" and m2 == "exact" and len(hnsw) == len(exact) == 10
        assert {r["id"] for r in hnsw} <= set(mine) and {r["id"] for r in exact} <= set(mine)
        assert exact[0]["id"] == mine[q // 2] and exact[0]["score"] == pytest.approx(1.0)
        recalls.append(len({r["id"] for r in hnsw} & {r["id"] for r in exact}) / 10)
    assert np.mean(recalls) >= 0.9
    # The nearest of all to user two's own row is that row; user one never sees it
    # and still gets 10 of his own.
    rows, _ = await index.nearest(pool, one, f, FAMILY, vecs[1], 10, True)
    assert len(rows) == 10 and theirs[0] not in {r["id"] for r in rows}
    rows, _ = await index.nearest(pool, two, f, FAMILY, vecs[1], 10, True)
    assert rows[0]["id"] == theirs[0]
    # "hnsw" is not a label only: the planner really orders by the index.
    args: list[object] = [FAMILY, vecs[0].tolist()]
    where = index._where(one, index.Filter("all", img1, (), None), args)
    plan = "\n".join(r[0] for r in await pool.fetch(
        f"""EXPLAIN SELECT a.id FROM annotation_descriptors d
            JOIN annotations a ON a.id = d.annotation_id
            WHERE d.family = $1 AND {where}
            ORDER BY d.embedding <=> $2::real[]::vector LIMIT 10""", *args))
    assert "annotation_descriptors_hnsw_idx" in plan, plan


async def test_k_readable_when_most_nearest_rows_are_hidden(
        pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    """User one may read 1 row in 10: the first HNSW pass (EF_SEARCH candidates) keeps
    too few of them; the second pass widens the candidate list to the measured share
    and still returns k readable rows from the index, close to the exact answer.
    With 1 row in 100 readable, the few readable rows are scanned exactly."""
    k = 20
    one, _two, img1, _img2, mine, _theirs, vecs = await _world(pool, 2000, 10)
    mine_set = set(mine)
    # These rows are too few for the index to be worth it by default: force it.
    monkeypatch.setattr(index, "EXACT_ROWS", 0)
    f = index.Filter("all", img1, (), None)
    recalls = []
    for q in range(1, 41, 4):  # user two's rows as queries: their neighbours are hidden
        index._SHARES.clear()
        hnsw, method = await index.nearest(pool, one, f, FAMILY, vecs[q], k, True)
        exact, _m = await index.nearest(pool, one, f, FAMILY, vecs[q], k, False)
        assert method == "hnsw" and len(hnsw) == k and {r["id"] for r in hnsw} <= mine_set
        recalls.append(len({r["id"] for r in hnsw} & {r["id"] for r in exact}) / k)
        # The share was measured (about 1 in 10) and sizes the next first pass.
        share = index._known_share(index._share_key(pool, one, f, FAMILY))
        assert share is not None and 0.05 < share < 0.2
    assert np.mean(recalls) >= 0.95, recalls
    # The next query of the same caller starts with the wider list: one pass.
    rows, method = await index.nearest(pool, one, f, FAMILY, vecs[7], k, True)
    assert method == "hnsw" and len(rows) == k
    # A fixed candidate list of EF_SEARCH (the former behaviour) would not have been
    # enough: fewer than k of its candidates are readable.
    args: list[object] = [FAMILY, vecs[1].tolist()]
    where = index._where(one, f, args)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL hnsw.ef_search = {index.EF_SEARCH}")
        few = await conn.fetch(
            f"""SELECT a.id FROM annotation_descriptors d JOIN annotations a
                  ON a.id = d.annotation_id WHERE d.family = $1 AND {where}
                ORDER BY d.embedding <=> $2::real[]::vector LIMIT 1000""", *args)
    assert len(few) < 2 * k


async def test_few_readable_rows_are_searched_exactly(pool: asyncpg.Pool) -> None:
    """1 row in 100 readable: the index's candidates hold almost none, so the readable
    rows are scanned exactly (from the readable image's annotations) - k rows, the
    exact answer, never a hidden one."""
    one, two, img1, _img2, mine, theirs, vecs = await _world(pool, 2000, 100)
    f = index.Filter("all", img1, (), None)
    for q in (1, 2, 3):
        rows, method = await index.nearest(pool, one, f, FAMILY, vecs[q], 10, True)
        exact, _m = await index.nearest(pool, one, f, FAMILY, vecs[q], 10, False)
        assert method == "exact" and len(rows) == 10 and {r["id"] for r in rows} <= set(mine)
        assert [r["id"] for r in rows] == [r["id"] for r in exact]
    # User two reads the other 99 %: the index answers, never with user one's rows.
    rows, method = await index.nearest(pool, two, index.Filter("all", _img2, (), None),
                                       FAMILY, vecs[0], 20, True)
    assert method == "hnsw" and len(rows) == 20 and {r["id"] for r in rows} <= set(theirs)


async def test_the_queue_follows_annotation_versions(pool: asyncpg.Pool) -> None:
    """Created and changed annotations are queued; storing a descriptor dequeues only
    the version it was computed for."""
    iid = await pool.fetchval("INSERT INTO images (name, width, height, status) "
                              "VALUES ('q', 100, 100, 'ready') RETURNING id")
    aid = await pool.fetchval(
        """INSERT INTO annotations (image_id, kind, geom, sbox, n_vertices, area_px,
                                    perimeter_px)
           VALUES ($1, 'point', '\\x00'::bytea, box(point(0, 0), point(1, 1)), 1, 0, 0)
           RETURNING id""", iid)

    async def queued() -> object:
        return await pool.fetchval(
            "SELECT updated_at FROM retrieval_queue WHERE annotation_id = $1", aid)

    v1 = await pool.fetchval("SELECT updated_at FROM annotations WHERE id = $1", aid)
    assert await queued() == v1
    v2 = await pool.fetchval("UPDATE annotations SET updated_at = now() + interval '1 s' "
                             "WHERE id = $1 RETURNING updated_at", aid)
    assert await queued() == v2
    vec = np.ones(100, np.float32) / 10
    await index.store(pool, FAMILY, [(aid, vec, v1)])  # an older version: still queued
    assert await queued() == v2
    await index.store(pool, FAMILY, [(aid, vec, v2)])
    assert await queued() is None
    await pool.execute("DELETE FROM annotations WHERE id = $1", aid)
    assert await pool.fetchval("SELECT count(*) FROM annotation_descriptors") == 0


async def test_the_v2_migration_drops_v1_vectors_and_queues_every_annotation(
        pool: asyncpg.Pool) -> None:
    """Migration 0170 (default family cstats-v1 -> cstats-v2): old vectors are never
    searched again, so they go, and every annotation waits to be described anew."""
    from pathlib import Path

    from microtome import retrieval

    iid = await pool.fetchval("INSERT INTO images (name, width, height, status) "
                              "VALUES ('m', 100, 100, 'ready') RETURNING id")
    ids = [r["id"] for r in await pool.fetch(
        """INSERT INTO annotations (image_id, kind, geom, sbox, n_vertices, area_px,
                                    perimeter_px)
           SELECT $1, 'point', '\\x00'::bytea, box(point(0, 0), point(1, 1)), 1, 0, 0
           FROM generate_series(1, 3) RETURNING id""", iid)]
    ts = await pool.fetchval("SELECT updated_at FROM annotations WHERE id = $1", ids[0])
    vec = np.ones(100, np.float32) / 10
    await index.store(pool, "cstats-v1", [(i, vec, ts) for i in ids])
    await index.store(pool, FAMILY, [(ids[0], vec, ts)])
    assert await pool.fetchval("SELECT count(*) FROM retrieval_queue") == 0
    sql = (Path(retrieval.__file__).parent / "migrations" / "0170_cstats_v2.sql").read_text()
    await pool.execute(sql)
    families = await pool.fetch("SELECT annotation_id, family FROM annotation_descriptors")
    assert [(r["annotation_id"], r["family"]) for r in families] == [(ids[0], FAMILY)]
    queued = await pool.fetch("SELECT annotation_id FROM retrieval_queue ORDER BY 1")
    assert [r["annotation_id"] for r in queued] == ids
