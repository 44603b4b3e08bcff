"""An imzML image uploaded through tus as its two files (.imzML + .ibd), in
either order, becomes one image and one conversion; a lone half waits and
says for what."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from aiohttp.test_utils import TestClient

from microtome.catalog import jobs
from microtome.catalog.db import DB_POOL, connect
from microtome.catalog.worker import process_job
from microtome.core.settings import Settings
from microtome.pyramid.reader import open_pyramid
from tests.catalog.helpers import Actor, call
from tests.catalog.test_tus import _tus, _uploader_world

PAIR = ("Example_Continuous.imzML", "Example_Continuous.ibd")


async def _upload(client: TestClient, key: str, project_id: int, src: Path) -> str:
    up = _tus(client, key).uploader(
        str(src), chunk_size=1 << 20,
        metadata={"filename": src.name, "project_id": str(project_id)})
    await asyncio.to_thread(up.upload)
    return str(up.url).rsplit("/", 1)[1]


def _tic(imzml: Path) -> np.ndarray:
    from pyimzml.ImzMLParser import ImzMLParser

    p = ImzMLParser(str(imzml))
    w = max(x for x, _y, _z in p.coordinates)
    h = max(y for _x, y, _z in p.coordinates)
    out = np.zeros((h, w), np.float64)
    for i, (x, y, _z) in enumerate(p.coordinates):
        out[y - 1, x - 1] = np.asarray(p.getspectrum(i)[1], np.float64).sum()
    return out


@pytest.mark.parametrize("order", [PAIR, PAIR[::-1]], ids=["imzml-first", "ibd-first"])
async def test_pair_becomes_one_image_and_converts(
        client: TestClient, settings: Settings, database_url: str, testdata: Path,
        order: tuple[str, str]) -> None:
    _, key, project_id = await _uploader_world(client)
    me = Actor("k", api_key=key)
    first = await _upload(client, key, project_id, testdata / order[0])
    _, state = await call(client, me, "GET", f"/api/uploads/{first}", expect=200)
    # The first half has all its bytes and waits for the other, by name.
    assert state["offset"] == state["length"] and state["image_id"] is None
    assert state["job_id"] is None and state["waiting_for"] == order[1]
    pool = client.app[DB_POOL]
    assert await pool.fetchval("SELECT count(*) FROM images") == 0
    second = await _upload(client, key, project_id, testdata / order[1])
    for upload_id in (first, second):
        _, state = await call(client, me, "GET", f"/api/uploads/{upload_id}", expect=200)
        assert state["image_id"] is not None and state["job_id"] is not None
        assert "waiting_for" not in state
    assert await pool.fetchval("SELECT count(*) FROM images") == 1
    assert await pool.fetchval("SELECT count(*) FROM jobs") == 1
    image = await pool.fetchrow("SELECT id, name, source_filename FROM images")
    assert image["source_filename"] == "Example_Continuous.imzML"

    conn = await connect(database_url)
    try:
        job = await jobs.claim(conn, "test:1:0")
        assert job is not None and len(job["extra_paths"]) == 1
        sources = [Path(job["source_path"]), Path(job["extra_paths"][0])]
        status = await process_job(conn, job, "test:1:0", settings.images_dir)
        error = await conn.fetchval("SELECT error FROM jobs WHERE id = $1", job["id"])
        assert status == "done", error
        path = await conn.fetchval("SELECT storage_path FROM images WHERE id = $1",
                                   image["id"])
    finally:
        await conn.close()
    assert not any(p.exists() for p in sources)  # both halves removed once converted
    pyr = open_pyramid(settings.images_dir / path)
    tic = pyr.read_region(0, 0, 0, pyr.meta.width, pyr.meta.height)[..., 0]
    assert np.allclose(tic, _tic(testdata / PAIR[0]), rtol=1e-6)


async def test_halves_completing_together_make_one_image(
        client: TestClient, testdata: Path) -> None:
    _, key, project_id = await _uploader_world(client)
    ids = await asyncio.gather(*(_upload(client, key, project_id, testdata / n) for n in PAIR))
    pool = client.app[DB_POOL]
    assert await pool.fetchval("SELECT count(*) FROM images") == 1
    rows = await pool.fetch("SELECT image_id, completed_at FROM uploads WHERE id = ANY($1)",
                            list(ids))
    assert len({r["image_id"] for r in rows}) == 1
    assert all(r["completed_at"] is not None for r in rows)


async def test_lone_half_waits_and_expires(client: TestClient, settings: Settings,
                                           testdata: Path, tmp_path: Path) -> None:
    from microtome.catalog.tus import remove_expired

    _, key, project_id = await _uploader_world(client)
    me = Actor("k", api_key=key)
    lone = await _upload(client, key, project_id, testdata / PAIR[1])
    # Another stem's .imzML is not this .ibd's partner.
    other = tmp_path / "Other.imzML"
    other.write_bytes((testdata / PAIR[0]).read_bytes())
    other_id = await _upload(client, key, project_id, other)
    for upload_id, wanted in ((lone, "Example_Continuous.imzML"), (other_id, "Other.ibd")):
        _, state = await call(client, me, "GET", f"/api/uploads/{upload_id}", expect=200)
        assert state["waiting_for"] == wanted and state["image_id"] is None
    pool = client.app[DB_POOL]
    assert await pool.fetchval("SELECT count(*) FROM images") == 0
    await pool.execute("UPDATE uploads SET expires_at = now() - interval '1 second'")
    assert await remove_expired(pool, settings.uploads_dir) == 2
    assert not (settings.uploads_dir / lone).exists()
