"""``python -m bench.retrieval``: descriptor families compared on the evaluation set,
and the index's latency and recall on many vectors.

Quality (bench/retrieval_set.py, 396 regions of hand-labelled tissue under
simulated scanners and stains): precision@5/@10 and term-suggestion accuracy per
family, in the "any" (other tiles) and "cross" (other tiles, other stain batch)
protocols; describing time per region (one thread) gives the indexing throughput.
Index (``--vectors N``, default 100k): N unit vectors with random access split
over two users, on the embedded PostgreSQL with pgvector: insert throughput,
HNSW build time, p50/p95 latency of k=20 searches with the access filter, HNSW vs
exact, and the recall of HNSW.  Saves bench/records/retrieval.json and regenerates
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import records
from bench.retrieval_set import Region, build, evaluate
from microtome.retrieval import bovw
from microtome.retrieval.descriptors import describe, rgb_histogram

REPO = Path(__file__).resolve().parent.parent
SLIDE = REPO.parent / "shared" / "testdata" / "CMU-1-Small-Region.svs"


def families(regions: list[Region]) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Each family as a function of a crop; BoVW's codebook is fitted (unsupervised) on
    the as-stained regions, as a project's would be on its own tissue."""
    codebook = bovw.fit_codebook([r.rgb for r in regions if r.stain == 0 and r.size == 0])

    def combo(rgb: np.ndarray) -> np.ndarray:
        v = np.concatenate([describe(rgb), bovw.describe(rgb, codebook)]) / np.sqrt(2)
        return v.astype(np.float32)

    return {"rgb-histogram (baseline)": rgb_histogram, "cstats-v1": describe,
            "bovw-ert-v1": lambda rgb: bovw.describe(rgb, codebook), "cstats+bovw": combo}


def quality(regions: list[Region]) -> list[dict[str, object]]:
    rows = []
    for name, fn in families(regions).items():
        t0 = time.perf_counter()
        vecs = np.stack([fn(r.rgb) for r in regions])
        ms = (time.perf_counter() - t0) * 1000 / len(regions)
        row: dict[str, object] = {"family": name, "ms_per_region": ms}
        for protocol in ("any", "cross"):
            cross = protocol == "cross"
            row[f"p5_{protocol}"], _ = evaluate(vecs, regions, 5, cross)
            row[f"p10_{protocol}"], row[f"vote_{protocol}"] = evaluate(vecs, regions, 10, cross)
        rows.append(row)
        print(f"{name:26} " + " ".join(f"{k}={v:.3f}" for k, v in row.items()
                                        if isinstance(v, float)), flush=True)
    return rows


async def index_bench(n: int, queries: int = 200) -> dict[str, float]:
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
        ts = await pool.fetchval("SELECT updated_at FROM annotations LIMIT 1")
        rng = np.random.default_rng(0)
        # Clustered vectors (like descriptors of a few tissue classes), not uniform noise.
        centres = rng.normal(size=(50, 100))
        t0 = time.perf_counter()
        for start in range(0, n, 5000):
            chunk = ids[start:start + 5000]
            v = centres[rng.integers(0, 50, len(chunk))]
            v = v + 0.6 * rng.normal(size=v.shape)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            await index.store(pool, "cstats-v1", [(i, x, ts) for i, x in zip(chunk, v,
                                                                           strict=True)])
        store_s = time.perf_counter() - t0
        await pool.execute("ANALYZE")
        lat: dict[str, list[float]] = {"hnsw": [], "exact": []}
        recall = []
        for q in range(queries):
            vec = centres[q % 50] + 0.6 * rng.normal(size=100)
            vec /= np.linalg.norm(vec)
            who = users[q % 2]
            f = index.Filter("all", images[q % 2], ())
            got = {}
            for method, use in (("hnsw", True), ("exact", False)):
                t0 = time.perf_counter()
                rows, _m = await index.nearest(pool, who, f, "cstats-v1", vec, 20, use)
                lat[method].append((time.perf_counter() - t0) * 1000)
                got[method] = {r["id"] for r in rows}
            recall.append(len(got["hnsw"] & got["exact"]) / 20)
        await pool.close()
        return {"n": n, "queries": queries, "import_per_s": n / import_s,
                "store_per_s": n / store_s,
                "hnsw_p50_ms": float(np.percentile(lat["hnsw"], 50)),
                "hnsw_p95_ms": float(np.percentile(lat["hnsw"], 95)),
                "exact_p50_ms": float(np.percentile(lat["exact"], 50)),
                "recall": float(np.mean(recall))}
    finally:
        server.cleanup()


def render(figures: list[dict[str, Any]]) -> str:
    """The RESULTS.md section from the record's figures (quality rows, index figures)."""
    rows = [f for f in figures if f.get("kind", "quality") == "quality"]
    idx = next((f for f in figures if f.get("kind") == "index"), None)
    text = render_quality(rows) if rows else "## Retrieval\n"
    return text + ("\n" + render_index(idx) if idx else "")


def render_quality(rows: list[dict[str, Any]]) -> str:
    """The quality table (Markdown)."""
    lines = ["## Retrieval (`python -m bench.retrieval`)", "",
             "Evaluation set: bench/retrieval_set.py (396 regions: 33 hand-labelled tiles of "
             "CMU-1-Small-Region x 2 sizes x 2 simulated scanners x 3 stain batches). "
             "*any*: neighbours from other tiles; *cross*: from other tiles of another stain "
             "batch. Vote: the similarity-weighted vote of the 10 nearest picks the right "
             "term. Random ranking: ~0.31.", "",
             "| family | P@5 any | P@10 any | vote any | P@5 cross | P@10 cross | vote cross "
             "| ms/region | regions/s (1 thread) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ms = float(r["ms_per_region"])  # type: ignore[arg-type]
        keys = ("p5_any", "p10_any", "vote_any", "p5_cross", "p10_cross", "vote_cross")
        cells = " | ".join(f"{float(r[k]):.3f}" for k in keys)  # type: ignore[arg-type]
        lines.append(f"| {r['family']} | {cells} | {ms:.1f} | {1000 / ms:.0f} |")
    return "\n".join(lines) + "\n"


def render_index(idx: dict[str, Any]) -> str:
    """The index table (Markdown), starting with the line "Index: ..."."""
    lines = [f"Index: {int(idx['n']):,} descriptors (pgvector HNSW, embedded "
             f"PostgreSQL), k = 20 with the access filter, {int(idx['queries'])} queries per "
             "method (exact: the dot product in SQL, as without pgvector):", "",
             "| bulk annotation insert /s | descriptor store /s | HNSW p50 ms | HNSW p95 ms "
             "| exact p50 ms | recall@20 HNSW vs exact |", "|---|---|---|---|---|---|",
             f"| {idx['import_per_s']:,.0f} | {idx['store_per_s']:,.0f} | "
             f"{idx['hnsw_p50_ms']:.1f} | {idx['hnsw_p95_ms']:.1f} | "
             f"{idx['exact_p50_ms']:.1f} | {idx['recall']:.3f} |"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.retrieval",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, default=100_000, help="index size (0: skip)")
    ap.add_argument("--queries", type=int, default=200, help="searches timed per method")
    ap.add_argument("--no-quality", action="store_true",
                    help="only the index part (the quality figures of the last record stay)")
    ap.add_argument("--slide", type=Path, default=SLIDE)
    args = ap.parse_args(argv)
    rec = records.Recording("retrieval", "python -m bench.retrieval "
                            f"--vectors {args.vectors} --queries {args.queries}"
                            f"{' --no-quality' if args.no_quality else ''}")
    if not args.no_quality:
        regions = build(args.slide)
        print(f"{len(regions)} regions", flush=True)
        for row in quality(regions):
            rec.add({"kind": "quality", **row})
        rec.save()  # kept even if the index part is interrupted
    else:
        last = records.load("retrieval") or {}
        rec.figures = [f for f in last.get("figures", []) if f.get("kind") == "quality"]
    if args.vectors:
        rec.add({"kind": "index", **asyncio.run(index_bench(args.vectors, args.queries))})
    print(render(rec.figures))
    print(f"wrote {records.save_and_report(rec)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
