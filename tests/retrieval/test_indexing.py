"""Background indexing, `microtome reindex`, and retrieval switched off without pgvector:
real app, real pixels, real PostgreSQL (with pgvector, and one database without it)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from rich.console import Console

from microtome.reindex import reindex
from microtome.retrieval import indexer
from microtome.retrieval.web import STATE
from tests.retrieval.conftest import RWorld, annotate, make_world, tile_polygon
from tests.retrieval.labelled_tiles import LABELS


async def _wait(cond: Any) -> None:
    """Poll the database until `cond()` holds (another task writes it: no event to wait on)."""
    async with asyncio.timeout(90):
        for _ in range(10**6):
            if await cond():
                return
            await asyncio.sleep(0.2)


async def _described(url: str) -> dict[int, Any]:
    conn = await asyncpg.connect(url)
    try:
        return {r["annotation_id"]: r["source_updated_at"] for r in await conn.fetch(
            "SELECT annotation_id, source_updated_at FROM annotation_descriptors")}
    finally:
        await conn.close()


async def _count(url: str, sql: str, *args: Any) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


async def test_annotations_are_described_in_the_background_and_follow_changes(
        aiohttp_client: Any, tmp_path: Path, vector_database_url: str,
        slide_pyramid: Path) -> None:
    w = await make_world(aiohttp_client, tmp_path, vector_database_url, slide_pyramid,
                         retrieval_index_threads=1)
    assert w.client.app is not None and w.client.app[STATE].indexer is not None
    labels = await annotate(w, w.alice, LABELS)

    async def all_described() -> bool:
        return set(await _described(w.database_url)) == set(labels)

    # No retrieval request is made: only the background indexer describes them.
    await _wait(all_described)
    assert await _count(w.database_url, "SELECT count(*) FROM retrieval_queue") == 0

    # A changed geometry is described again (new version), a deleted one disappears.
    first, second = list(labels)[:2]
    before = (await _described(w.database_url))[first]
    resp = await w.client.patch(f"/api/annotations/{first}",
                                json={"geometry": tile_polygon(0, 0)},
                                headers=w.alice.actor.headers("PATCH"))
    assert resp.status == 200, await resp.text()

    async def redescribed() -> bool:
        return (await _described(w.database_url)).get(first) not in (None, before)

    await _wait(redescribed)
    resp = await w.client.delete(f"/api/annotations/{second}",
                                 headers=w.alice.actor.headers("DELETE"))
    assert resp.status == 204
    assert second not in await _described(w.database_url)
    status = await (await w.client.get("/api/retrieval/status")).json()
    assert {k: status[k] for k in ("enabled", "message", "background_indexing")} == {
        "enabled": True, "message": None, "background_indexing": True}
    assert status["limits"] == {"um_per_px": 1.0, "min_side": 16, "max_side": 2048}


async def test_a_bulk_import_only_queues_and_batches_are_leased_once(
        vector_database_url: str) -> None:
    """100k annotations inserted in one statement: the import computes no descriptor
    (one queue insert per statement); indexers lease disjoint batches, a lease that
    expires is taken again, and a change during a lease releases the row."""
    pool = await asyncpg.create_pool(vector_database_url, min_size=1, max_size=4)
    try:
        iid = await pool.fetchval("INSERT INTO images (name, width, height, status) "
                                  "VALUES ('bulk', 100000, 100000, 'ready') RETURNING id")
        await pool.execute(
            """INSERT INTO annotations (image_id, kind, geom, sbox, n_vertices, area_px,
                                        perimeter_px)
               SELECT $1, 'point', '\\x00'::bytea, box(point(g, 0), point(g, 0)), 1, 0, 0
               FROM generate_series(1, 100000) g""", iid)
        assert await indexer.queued(pool) == 100_000
        assert await pool.fetchval("SELECT count(*) FROM annotation_descriptors") == 0
        a, b = await asyncio.gather(indexer.claim(pool, 64), indexer.claim(pool, 64))
        ids_a, ids_b = {r["id"] for r in a}, {r["id"] for r in b}
        assert len(ids_a) == len(ids_b) == 64 and not ids_a & ids_b
        # Leased rows are not claimed again until their lease runs out...
        c = await indexer.claim(pool, 100_000, lease_s=0.0)
        assert len(c) == 100_000 - 128 and not {r["id"] for r in c} & (ids_a | ids_b)
        # ...and `c`'s zero-second lease has run out: its rows are claimable again.
        again = await indexer.claim(pool, 10)
        assert {r["id"] for r in again} <= {r["id"] for r in c} and len(again) == 10
        # A row changed while leased is released for its new version.
        changed = next(iter(ids_a))
        await pool.execute("UPDATE annotations SET updated_at = now() + interval '1 s' "
                           "WHERE id = $1", changed)
        assert changed in {r["id"] for r in await indexer.claim(pool, 100_000)}
    finally:
        await pool.close()


async def test_reindex_rebuilds_all_or_one_project(rworld: RWorld) -> None:
    w = rworld
    alice = await annotate(w, w.alice, LABELS)
    bob = await annotate(w, w.bob, {k: v[:2] for k, v in LABELS.items()})
    out = io.StringIO()
    console = Console(file=out, width=120)
    assert await reindex(w.settings, str(w.bob.project_id), 2, console) == 0
    assert set(await _described(w.database_url)) == set(bob)
    assert f"reindexed {len(bob)} of {len(bob)} annotations of project" in out.getvalue()
    before = await _described(w.database_url)
    assert await reindex(w.settings, None, 2, console) == 0
    after = await _described(w.database_url)
    assert set(after) == set(alice) | set(bob)
    assert await _count(w.database_url, "SELECT count(*) FROM retrieval_queue") == 0
    assert await reindex(w.settings, "no such project", 1, console) == 2
    assert "no project 'no such project'" in out.getvalue()
    assert before.keys() <= after.keys()


async def test_without_pgvector_retrieval_is_off_and_the_rest_works(
        aiohttp_client: Any, tmp_path: Path, vector_database_url: str, slide_pyramid: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """An external server without the extension (simulated by dropping it): one clear
    start-up message, retrieval routes 503 naming pgvector, status says so, annotations
    and tiles still work, and `microtome reindex` refuses with the same message."""
    conn = await asyncpg.connect(vector_database_url)
    try:
        await conn.execute("DROP EXTENSION vector CASCADE")
    finally:
        await conn.close()
    with caplog.at_level("WARNING", logger="retrieval"):
        w = await make_world(aiohttp_client, tmp_path, vector_database_url, slide_pyramid,
                             retrieval_index_threads=1)
    warned = [r.getMessage() for r in caplog.records if "pgvector" in r.getMessage()]
    assert len(warned) == 1 and "retrieval is disabled" in warned[0]
    assert w.client.app is not None and w.client.app[STATE].indexer is None
    labels = await annotate(w, w.alice, LABELS)  # annotations work
    for path in ("/api/retrieval/similar", "/api/retrieval/suggest-term"):
        resp = await w.client.post(path, json={"annotation_id": next(iter(labels))},
                                   headers=w.alice.actor.headers("POST"))
        body = await resp.json()
        assert resp.status == 503 and "pgvector" in body["error"], body
    status = await (await w.client.get("/api/retrieval/status")).json()
    assert status["enabled"] is False and "pgvector" in status["message"]
    resp = await w.client.get(f"/iiif/3/{w.alice.image_id}/info.json",
                              headers=w.alice.actor.headers("GET"))
    assert resp.status == 200
    out = io.StringIO()
    assert await reindex(w.settings, None, 1, Console(file=out, width=200)) == 1
    assert "pgvector" in out.getvalue()
