"""The descriptor family is a setting (MICROTOME_RETRIEVAL_DESCRIPTOR), its default
cstats-v1 (picked on held-out tissue, bench/retrieval_eval.py), and migration 0190
re-describes every annotation after the change of default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import numpy as np
import pytest

from microtome.core.settings import (
    KNOWN,
    RETRIEVAL_DESCRIPTORS,
    SettingsError,
    retrieval_descriptor_settings_from_env,
)
from microtome.retrieval import descriptors, index

REPO = Path(__file__).resolve().parents[2]


def test_the_setting_defaults_to_cstats_v1_and_refuses_unknown_families() -> None:
    assert "MICROTOME_RETRIEVAL_DESCRIPTOR" in KNOWN
    assert retrieval_descriptor_settings_from_env({}).family == "cstats-v1"
    assert retrieval_descriptor_settings_from_env(
        {"MICROTOME_RETRIEVAL_DESCRIPTOR": " cstats-v2 "}).family == "cstats-v2"
    for bad in ("bovw-ert-v1", "rgb", "CSTATS-V1"):
        with pytest.raises(SettingsError) as err:
            retrieval_descriptor_settings_from_env({"MICROTOME_RETRIEVAL_DESCRIPTOR": bad})
        assert "MICROTOME_RETRIEVAL_DESCRIPTOR" in str(err.value) and "cstats-v1" in str(err.value)
    # Every servable family has weights, and its vectors fit the index column (100).
    assert set(RETRIEVAL_DESCRIPTORS) == set(descriptors.FAMILIES) and descriptors.DIM == 100


def test_describe_uses_the_configured_family() -> None:
    rgb = np.random.default_rng(1).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    assert descriptors.FAMILY == "cstats-v1"  # the test environment leaves the default
    assert np.array_equal(descriptors.describe(rgb),
                          descriptors.describe(rgb, weights=descriptors.WEIGHTS_V1))
    assert not np.allclose(descriptors.describe(rgb),
                           descriptors.describe(rgb, weights=descriptors.WEIGHTS))
    # Another process configured for cstats-v2 describes (and stores, searches) with v2.
    env = {**os.environ, "MICROTOME_RETRIEVAL_DESCRIPTOR": "cstats-v2"}
    out = subprocess.run(
        [sys.executable, "-c", "from microtome.retrieval import descriptors as d;"
         "print(d.FAMILY, d.FAMILIES[d.FAMILY] is d.WEIGHTS)"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["cstats-v2", "True"]


@pytest.fixture
async def pool(vector_database_url: str) -> asyncpg.Pool:
    p = await asyncpg.create_pool(vector_database_url, min_size=1, max_size=2)
    yield p
    await p.close()


async def test_migration_0190_drops_v2_vectors_and_queues_every_annotation(
        pool: asyncpg.Pool) -> None:
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
    await index.store(pool, "cstats-v2", [(i, vec, ts) for i in ids])
    await index.store(pool, "cstats-v1", [(ids[0], vec, ts)])
    assert await pool.fetchval("SELECT count(*) FROM retrieval_queue") == 0
    sql = (Path(retrieval.__file__).parent / "migrations"
           / "0190_cstats_v1_default.sql").read_text()
    await pool.execute(sql)
    families = await pool.fetch("SELECT annotation_id, family FROM annotation_descriptors")
    assert [(r["annotation_id"], r["family"]) for r in families] == [(ids[0], "cstats-v1")]
    queued = await pool.fetch("SELECT annotation_id FROM retrieval_queue ORDER BY 1")
    assert [r["annotation_id"] for r in queued] == ids
