"""``python -m bench.retrieval``: descriptor families compared on the evaluation set,
and the index's latency and recall on many vectors.

Quality (bench/retrieval_set.py, 396 regions of hand-labelled tissue under
simulated scanners and stains): precision@5/@10 and term-suggestion accuracy per
family, in the "any" (other tiles) and "cross" (other tiles, other stain batch)
protocols; describing time per region (one thread) gives the indexing throughput.
Index (``--vectors N``, default 100k): N unit vectors with random access split
over two users, on the embedded PostgreSQL with pgvector: insert throughput,
HNSW build time, p50/p95 latency of k=20 searches with the access filter, HNSW vs
exact, and the recall of HNSW.  Saves the ``retrieval`` record (bench/records/).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import records as bench_records
from bench.retrieval_set import Region, build, build_colourblind, evaluate
from microtome.retrieval import bovw
from microtome.retrieval.descriptors import WEIGHTS, WEIGHTS_V1, describe, rgb_histogram

REPO = Path(__file__).resolve().parent.parent
SLIDE = REPO.parent / "shared" / "testdata" / "CMU-1-Small-Region.svs"


def families(regions: list[Region]) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Each family as a function of a crop; BoVW's codebook is fitted (unsupervised) on
    the set's first variant of each region, as a project's would be on its own tissue."""
    codebook = bovw.fit_codebook([r.rgb for r in regions if r.stain == 0 and r.size == 0])

    def combo(rgb: np.ndarray) -> np.ndarray:
        v = np.concatenate([describe(rgb, weights=WEIGHTS),
                            bovw.describe(rgb, codebook)]) / np.sqrt(2)
        return v.astype(np.float32)

    return {"rgb-histogram (baseline)": rgb_histogram,
            "cstats-v1 (default)": functools.partial(describe, weights=WEIGHTS_V1),
            "cstats-v2": functools.partial(describe, weights=WEIGHTS),
            "bovw-ert-v1": lambda rgb: bovw.describe(rgb, codebook), "cstats-v2+bovw": combo}


def quality(regions: list[Region], dataset: str, log: Callable[[str], None] = print
            ) -> list[dict[str, Any]]:
    """One record per family on one evaluation set (raw figures)."""
    rows = []
    for name, fn in families(regions).items():
        t0 = time.perf_counter()
        vecs = np.stack([fn(r.rgb) for r in regions])
        ms = (time.perf_counter() - t0) * 1000 / len(regions)
        row: dict[str, Any] = {"suite": "retrieval-quality", "dataset": dataset,
                               "family": name, "regions": len(regions),
                               "ms_per_region": ms, "load_average": os.getloadavg()[0]}
        for protocol in ("any", "cross"):
            cross = protocol == "cross"
            row[f"p5_{protocol}"], _ = evaluate(vecs, regions, 5, cross)
            row[f"p10_{protocol}"], row[f"vote_{protocol}"] = evaluate(vecs, regions, 10, cross)
        rows.append(row)
        log(f"{dataset:12} {name:26} " + " ".join(
            f"{k}={v:.3f}" for k, v in row.items() if k[:2] in ("p5", "p1", "vo")))
    return rows


async def _bulk_descriptors(pool: Any, ids: list[int], centres: np.ndarray,
                            rng: np.random.Generator, ts: Any) -> None:
    """Clustered unit vectors for `ids`, COPYed straight into the table (no indexer,
    no per-row HNSW insert: the index is built afterwards, as a reindex of a big
    import would want)."""
    for start in range(0, len(ids), 50_000):
        chunk = ids[start:start + 50_000]
        v = centres[rng.integers(0, len(centres), len(chunk))]
        v = v + 0.6 * rng.normal(size=v.shape)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        await pool.copy_records_to_table(
            "annotation_descriptors", columns=["annotation_id", "family", "vec",
                                               "source_updated_at"],
            records=[(i, "cstats-v1", x.astype(np.float32).tolist(), ts)
                     for i, x in zip(chunk, v, strict=True)])


async def index_bench(n: int, queries: int = 200, exact_queries: int = 50,
                      log: Callable[[str], None] = print) -> dict[str, Any]:
    """N descriptors on a fresh embedded PostgreSQL with pgvector: HNSW vs exact."""
    import asyncpg
    import pgserver

    from microtome.app import MIGRATION_DIRS
    from microtome.catalog.access import Principal
    from microtome.catalog.migrate import migrate
    from microtome.retrieval import index

    pgdata = Path("/tmp") / f"microtome-bench-retrieval-{time.time_ns()}"
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    try:
        pool = await asyncpg.create_pool(server.get_uri("postgres"), min_size=1, max_size=2)
        await migrate(pool, MIGRATION_DIRS)
        users, images = [], []
        for name in ("one", "two"):
            uid = await pool.fetchval("INSERT INTO users (username) VALUES ($1) RETURNING id",
                                      name)
            pid = await pool.fetchval("INSERT INTO projects (name) VALUES ($1) RETURNING id",
                                      name)
            await pool.execute("INSERT INTO project_members VALUES ($1, $2, 'manager')",
                               pid, uid)
            iid = await pool.fetchval("INSERT INTO images (name, width, height, status) "
                                      "VALUES ($1, 1000, 1000, 'ready') RETURNING id", name)
            await pool.execute("INSERT INTO project_images VALUES ($1, $2)", pid, iid)
            users.append(Principal(uid, name, False, "apikey"))
            images.append(iid)
        t0 = time.perf_counter()
        ids = [r["id"] for r in await pool.fetch(
            """INSERT INTO annotations (image_id, kind, geom, sbox, n_vertices, area_px,
                                        perimeter_px)
               SELECT CASE WHEN g % 2 = 0 THEN $1::bigint ELSE $2::bigint END, 'point',
                      '\\x00'::bytea, box(point(0, 0), point(1, 1)), 1, 0, 0
               FROM generate_series(0, $3 - 1) g ORDER BY g RETURNING id""",
            images[0], images[1], n)]
        import_s = time.perf_counter() - t0
        log(f"{n:,} annotations inserted in {import_s:.0f} s")
        ts = await pool.fetchval("SELECT updated_at FROM annotations LIMIT 1")
        rng = np.random.default_rng(0)
        # Clustered vectors (like descriptors of a few tissue classes), not uniform noise.
        centres = rng.normal(size=(50, 100))
        await pool.execute("DROP INDEX annotation_descriptors_hnsw_idx")
        t0 = time.perf_counter()
        await _bulk_descriptors(pool, ids, centres, rng, ts)
        copy_s = time.perf_counter() - t0
        log(f"{n:,} descriptors copied in {copy_s:.0f} s")
        t0 = time.perf_counter()
        async with pool.acquire() as conn:
            await conn.execute("SET maintenance_work_mem = '6GB'")
            await conn.execute("SET max_parallel_maintenance_workers = 1")
            await conn.execute("CREATE INDEX annotation_descriptors_hnsw_idx ON "
                               "annotation_descriptors USING hnsw "
                               "(embedding vector_cosine_ops)")
        build_s = time.perf_counter() - t0
        log(f"HNSW built in {build_s:.0f} s")
        await pool.execute("ANALYZE")
        # The write side with the index in place: descriptors stored as the indexer does.
        extra = [r["id"] for r in await pool.fetch(
            """INSERT INTO annotations (image_id, kind, geom, sbox, n_vertices, area_px,
                                        perimeter_px)
               SELECT $1::bigint, 'point', '\\x00'::bytea, box(point(0, 0), point(1, 1)),
                      1, 0, 0 FROM generate_series(1, 1000) RETURNING id""", images[0])]
        ts2 = await pool.fetchval("SELECT updated_at FROM annotations WHERE id = $1", extra[0])
        v = centres[rng.integers(0, 50, len(extra))] + 0.6 * rng.normal(size=(len(extra), 100))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        t0 = time.perf_counter()
        for start in range(0, len(extra), 64):  # the indexer's batches
            await index.store(pool, "cstats-v1", [(i, x, ts2) for i, x in zip(
                extra[start:start + 64], v[start:start + 64], strict=True)])
        store_s = time.perf_counter() - t0
        lat: dict[str, list[float]] = {"hnsw": [], "exact": []}
        recall = []
        for q in range(queries):
            vec = centres[q % 50] + 0.6 * rng.normal(size=100)
            vec /= np.linalg.norm(vec)
            who = users[q % 2]
            f = index.Filter("all", images[q % 2], ())
            t0 = time.perf_counter()
            rows, _m = await index.nearest(pool, who, f, "cstats-v1", vec, 20, True)
            lat["hnsw"].append((time.perf_counter() - t0) * 1000)
            if q < exact_queries:
                t0 = time.perf_counter()
                exact = await _exact(pool, who, f, vec, 20)
                lat["exact"].append((time.perf_counter() - t0) * 1000)
                recall.append(len({r["id"] for r in rows} & exact) / 20)
        await pool.close()
        return {"suite": "retrieval-index", "n": n, "k": 20, "queries": queries,
                "exact_queries": exact_queries, "import_per_s": n / import_s,
                "copy_per_s": n / copy_s, "hnsw_build_s": build_s,
                "store_per_s": len(extra) / store_s,
                "hnsw_p50_ms": float(np.percentile(lat["hnsw"], 50)),
                "hnsw_p95_ms": float(np.percentile(lat["hnsw"], 95)),
                "hnsw_p99_ms": float(np.percentile(lat["hnsw"], 99)),
                "exact_p50_ms": float(np.percentile(lat["exact"], 50)),
                "recall": float(np.mean(recall)), "load_average": os.getloadavg()[0]}
    finally:
        server.cleanup()


async def _exact(pool: Any, who: Any, f: Any, vec: np.ndarray, k: int) -> set[int]:
    """The true k nearest readable (pgvector's distance over every row: `+ 0` keeps
    the planner off the index), the reference of the recall."""
    from microtome.retrieval import index

    args: list[Any] = ["cstats-v1", np.asarray(vec, dtype=np.float32).tolist()]
    where = index._where(who, f, args)
    args.append(k)
    rows = await pool.fetch(
        f"""SELECT a.id FROM annotation_descriptors d JOIN annotations a
              ON a.id = d.annotation_id
            WHERE d.family = $1 AND d.source_updated_at = a.updated_at AND {where}
            ORDER BY (d.embedding <=> $2::real[]::vector) + 0, a.id LIMIT ${len(args)}""",
        *args)
    return {r["id"] for r in rows}


#: The evaluation sets: name -> (builder, what it is, the protocol that ranks families).
SETS: dict[str, tuple[Callable[[Path], list[Region]], str, str]] = {
    "stains": (build, "396 regions: 33 hand-labelled tiles of CMU-1-Small-Region x 2 sizes "
               "x 2 simulated scanners x 3 stain batches; *cross*: neighbours from other "
               "tiles of another stain batch", "cross"),
    "colourblind": (build_colourblind, "396 regions: the same 33 tiles x 6 variants "
                    "(random stain jitter, blur, per-channel histogram matched to a random "
                    "tissue tile, JPEG) x 2 sizes: colour marginals carry no class; *any*: "
                    "neighbours from other tiles", "any"),
}


def render(records: list[dict[str, Any]]) -> str:
    """Markdown of the raw records (quality per set, then the index sizes)."""
    lines = ["## Retrieval (`python -m bench.retrieval`)", ""]
    quality_rows = [r for r in records if r.get("suite") == "retrieval-quality"]
    for name, (_b, what, ranking) in SETS.items():
        rows = [r for r in quality_rows if r["dataset"] == name]
        if not rows:
            continue
        base = next((float(r[f"p10_{ranking}"]) for r in rows
                     if str(r["family"]).startswith("rgb-histogram")), None)
        lines += [f"Set **{name}** ({what}). Ranked by P@10 {ranking}; vote: the "
                  "similarity-weighted vote of the 10 nearest picks the right term.", "",
                  "| family | P@10 any | vote any | P@10 cross | vote cross "
                  "| vs baseline (P@10, points) | ms/region | load |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            delta = "" if base is None else f"{100 * (float(r[f'p10_{ranking}']) - base):+.1f}"
            lines.append(
                f"| {r['family']} | {float(r['p10_any']):.3f} | {float(r['vote_any']):.3f} | "
                f"{float(r['p10_cross']):.3f} | {float(r['vote_cross']):.3f} | {delta} | "
                f"{float(r['ms_per_region']):.1f} | {float(r['load_average']):.1f} |")
        lines.append("")
    idx = [r for r in records if r.get("suite") == "retrieval-index"]
    if idx:
        lines += ["Index (pgvector HNSW on the embedded PostgreSQL; descriptors COPYed in, "
                  "index built after; k = 20 with the access filter, timed through "
                  "`retrieval.index.nearest`; exact = pgvector distance over every "
                  "readable row, the reference of the recall):", "",
                  "| descriptors | HNSW build s | store /s (indexed) | HNSW p50 ms "
                  "| HNSW p95 ms | HNSW p99 ms | exact p50 ms | recall@20 | load |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(idx, key=lambda r: int(r["n"])):
            lines.append(
                f"| {int(r['n']):,} | {float(r['hnsw_build_s']):.0f} | "
                f"{float(r['store_per_s']):.0f} | {float(r['hnsw_p50_ms']):.1f} | "
                f"{float(r['hnsw_p95_ms']):.1f} | {float(r['hnsw_p99_ms']):.1f} | "
                f"{float(r['exact_p50_ms']):.0f} | {float(r['recall']):.3f} | "
                f"{float(r['load_average']):.1f} |")
    from bench.retrieval_http import render as render_http
    http = render_http(records)
    if http:
        lines += ["", http]
    return "\n".join(lines) + "\n"


def _write(figures: list[dict[str, Any]], command: str) -> None:
    """Save the ``retrieval`` record (bench/records/) and regenerate RESULTS.md."""
    rec = bench_records.Recording("retrieval", command)
    for f in figures:
        rec.add(f)
    bench_records.save_and_report(rec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.retrieval",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, nargs="*", default=[100_000, 1_000_000],
                    help="index sizes (none: skip the index part)")
    ap.add_argument("--queries", type=int, default=200, help="HNSW searches timed per size")
    ap.add_argument("--exact-queries", type=int, default=50,
                    help="of which also run exactly (recall)")
    ap.add_argument("--no-quality", action="store_true",
                    help="only the index part (keeps the quality records of the last run)")
    ap.add_argument("--no-index", action="store_true",
                    help="only the quality part (keeps the index records of the last run)")
    ap.add_argument("--slide", type=Path, default=SLIDE)
    args = ap.parse_args(argv)
    last = bench_records.load("retrieval")
    old = list(last["figures"]) if last else []
    command = "python -m bench.retrieval " + " ".join(argv if argv is not None else sys.argv[1:])
    records = [r for r in old if (args.no_quality and r.get("suite") == "retrieval-quality")
               or (args.no_index and r.get("suite") == "retrieval-index")
               or r.get("suite") == "retrieval-http"]  # bench/retrieval_http.py's
    if not args.no_quality:
        for name, (builder, _what, _rank) in SETS.items():
            regions = builder(args.slide)
            print(f"{name}: {len(regions)} regions", flush=True)
            records += quality(regions, name)
            _write(records, command)  # kept even if a later part is interrupted
    if not args.no_index:
        for n in args.vectors:
            records.append(asyncio.run(index_bench(n, args.queries, args.exact_queries)))
            _write(records, command)
    print(render(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
