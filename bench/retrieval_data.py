"""A large descriptor database for the retrieval index benchmark, built once and reused.

``python -m bench.retrieval_data N`` (or `dataset(N)` from the bench) builds, on the
embedded PostgreSQL with pgvector, N annotations spread over IMAGES images in
PROJECTS projects (round robin: every image and project holds the same share), one
descriptor each (clustered unit vectors, COPYed in; the HNSW index of the
migration is built afterwards, as a reindex of a big import would), and keeps the
data directory under CACHE.  Who may read what (users, memberships, public
projects) is not part of the cache: the benchmark sets it on the small tables.

Building 1,000,000 takes about an hour on a loaded 2-core machine (most of it the
HNSW build), so a finished build is reused while its key (size, layout, vector
generator, descriptor family) matches; an interrupted one resumes at its last stage.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

IMAGES = 100
PROJECTS = 20
DIM = 100          # annotation_descriptors.embedding is vector(100)
CENTRES = 50       # clusters of the synthetic descriptors (tissue classes)
NOISE = 0.6        # spread around a centre (per dimension, before normalising)
CACHE = Path(os.environ.get("MICROTOME_BENCH_CACHE", "/tmp/microtome-bench-cache"))
#: Bump when the generator or layout changes (invalidates cached builds).
VERSION = 1


def centres() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(CENTRES, DIM))


def vectors(rng: np.random.Generator, c: np.ndarray, n: int) -> np.ndarray:
    """n unit vectors around random centres of `c` (float32)."""
    v = c[rng.integers(0, len(c), n)] + NOISE * rng.normal(size=(n, DIM))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype(np.float32)


def _key(n: int, family: str) -> str:
    # Migrations are not part of the key: new ones are applied to a reused build.
    h = hashlib.sha256(repr((n, family, IMAGES, PROJECTS, DIM, CENTRES, NOISE, VERSION)
                            ).encode()).hexdigest()[:10]
    return f"retrieval-{n}-{h}"


def pgdata(n: int, family: str) -> Path:
    return CACHE / _key(n, family)


async def _stages(pool: Any) -> set[str]:
    await pool.execute("CREATE TABLE IF NOT EXISTS bench_cache_stage "
                       "(stage text PRIMARY KEY, seconds float8, at timestamptz DEFAULT now())")
    return {r["stage"] for r in await pool.fetch("SELECT stage FROM bench_cache_stage")}


async def _done(pool: Any, stage: str, seconds: float) -> None:
    await pool.execute("INSERT INTO bench_cache_stage (stage, seconds) VALUES ($1, $2)",
                        stage, seconds)


async def build(uri: str, n: int, family: str, log: Callable[[str], None] = print
                ) -> dict[str, float]:
    """Fill the database at `uri` (resuming); returns the seconds of each stage."""
    import asyncpg
    import shapely

    from microtome.app import MIGRATION_DIRS
    from microtome.catalog.migrate import migrate

    pool = await asyncpg.create_pool(uri, min_size=1, max_size=2, command_timeout=None)
    try:
        await migrate(pool, MIGRATION_DIRS)
        stages = await _stages(pool)
        if "rows" not in stages:
            # A half-written stage is started again from empty tables.
            await pool.execute("TRUNCATE annotation_descriptors, retrieval_queue, annotations, "
                               "project_images, images, projects CASCADE")
            t0 = time.perf_counter()
            pids = [await pool.fetchval("INSERT INTO projects (name) VALUES ($1) RETURNING id",
                                        f"project-{j:02d}") for j in range(PROJECTS)]
            iids, owners = [], []
            for i in range(IMAGES):
                iid = await pool.fetchval(
                    "INSERT INTO images (name, width, height, status) "
                    "VALUES ($1, 100000, 100000, 'ready') RETURNING id", f"image-{i:03d}")
                await pool.execute("INSERT INTO project_images VALUES ($1, $2)",
                                   pids[i % PROJECTS], iid)
                iids.append(iid)
                owners.append(pids[i % PROJECTS])
            point = shapely.Point(500, 500).wkb
            for start in range(0, n, 100_000):
                await pool.execute(
                    """INSERT INTO annotations (image_id, project_id, kind, geom, sbox,
                                                n_vertices, area_px, perimeter_px)
                       SELECT ($1::bigint[])[1 + g % $5], ($2::bigint[])[1 + g % $5], 'point',
                              $3::bytea, box(point(500, 500), point(500, 500)), 1, 0, 0
                       FROM generate_series($4::bigint, $6::bigint) g ORDER BY g""",
                    iids, owners, point, start, IMAGES, min(n, start + 100_000) - 1)
                log(f"  annotations {min(n, start + 100_000):,}/{n:,}")
            # Every descriptor below is stored fresh: nothing left to describe.
            await pool.execute("TRUNCATE retrieval_queue")
            await pool.execute("DROP INDEX IF EXISTS annotation_descriptors_hnsw_idx")
            rng = np.random.default_rng(1)
            c = centres()
            last = 0
            while True:
                rows = await pool.fetch(
                    "SELECT id, updated_at FROM annotations WHERE id > $1 ORDER BY id "
                    "LIMIT 50000", last)
                if not rows:
                    break
                last = rows[-1]["id"]
                v = vectors(rng, c, len(rows))
                await pool.copy_records_to_table(
                    "annotation_descriptors",
                    columns=["annotation_id", "family", "vec", "source_updated_at"],
                    records=[(r["id"], family, x.tolist(), r["updated_at"])
                             for r, x in zip(rows, v, strict=True)])
                log(f"  descriptors up to id {last:,}")
            await _done(pool, "rows", time.perf_counter() - t0)
            log(f"rows in {time.perf_counter() - t0:.0f} s")
        if "index" not in stages:
            t0 = time.perf_counter()
            async with pool.acquire() as conn:
                await conn.execute("DROP INDEX IF EXISTS annotation_descriptors_hnsw_idx")
                await conn.execute("SET maintenance_work_mem = '4GB'")
                await conn.execute("SET max_parallel_maintenance_workers = 1")
                # The migration's index (same operator class, default m / ef_construction).
                await conn.execute("CREATE INDEX annotation_descriptors_hnsw_idx ON "
                                   "annotation_descriptors USING hnsw "
                                   "(embedding vector_cosine_ops)")
            await pool.execute("VACUUM ANALYZE")
            await _done(pool, "index", time.perf_counter() - t0)
            log(f"HNSW built in {time.perf_counter() - t0:.0f} s")
        return {r["stage"]: float(r["seconds"]) for r in
                await pool.fetch("SELECT stage, seconds FROM bench_cache_stage")}
    finally:
        await pool.close()


def dataset(n: int, family: str, log: Callable[[str], None] = print) -> tuple[Any, dict]:
    """The running embedded server holding the N-annotation dataset (built or reused)
    and the build seconds per stage.  The server is left running (stop it with
    `pg_ctl stop -D <pgdata>`), so the next run reuses it at once."""
    import pgserver

    path = pgdata(n, family)
    path.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(path, cleanup_mode=None)
    log(f"dataset {path}")
    stages = asyncio.run(build(server.get_uri("postgres"), n, family, log))
    return server, stages


def main(argv: list[str] | None = None) -> int:
    from microtome.retrieval.descriptors import FAMILY

    ap = argparse.ArgumentParser(prog="python -m bench.retrieval_data",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int)
    args = ap.parse_args(argv)
    _server, stages = dataset(args.n, FAMILY, lambda s: print(s, flush=True))
    print(stages)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
