"""Annotation table benchmark: 1,000,000 annotations on one image, through the API.

Measures, against `microtome serve` in its own process (HTTP over loopback,
API-key auth):
- the first page (50 rows) of ``GET /api/images/{id}/annotations/table`` for
  every sort column, ascending and descending (p50/p99), with and without
  the capped total count; a deep page through the keyset cursor; a filtered
  sort (one term, by area);
- the CSV export of all rows (``…/annotations/table/export``), rows/s.

Rows are written straight with SQL (generate_series): the table does not
read geometries, so every row carries the same small square; areas, authors,
terms, dates, review states and a numeric property vary.

Standalone:  python -m bench.annotation_table [--n 1000000] [--dsn URL] [--out FILE]
From the suite runner (`python -m bench`):  run(ctx) -> list[dict], render(records) -> str.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench import records
from bench.annotations import _pct
from bench.dbsetup import default_dsn, scratch_database, start_serve

BENCH = Path(__file__).resolve().parent
SORTS = ("id", "created", "area", "perimeter", "author", "term", "status")
AUTHORS = 5
TERMS = 4


async def _seed(dsn: str, n: int, log: Callable[[str], None]) -> tuple[int, str, int]:
    """Migrate; a user with an API key, authors, terms, the image and n annotations."""
    import shapely

    from microtome.annotations.geometry import SHIFT
    from microtome.app import MIGRATION_DIRS
    from microtome.catalog.db import connect
    from microtome.catalog.migrate import migrate
    from microtome.catalog.security import digest, new_api_key

    conn = await connect(dsn)
    try:
        await migrate(conn, MIGRATION_DIRS)
        uids = [await conn.fetchval("INSERT INTO users (username) VALUES ($1) RETURNING id",
                                    f"user{i}") for i in range(AUTHORS)]
        key = new_api_key()
        await conn.execute("INSERT INTO api_keys (user_id, name, prefix, key_hash) "
                           "VALUES ($1, 'bench', $2, $3)", uids[0], key[:8], digest(key))
        pid = await conn.fetchval("INSERT INTO projects (name) VALUES ('bench') RETURNING id")
        for u in uids:
            await conn.execute("INSERT INTO project_members VALUES ($1, $2, 'contributor')",
                               pid, u)
        iid = await conn.fetchval(
            """INSERT INTO images (name, width, height, levels, status, pixel_size_um)
               VALUES ('cells', 100000, 100000, 9, 'ready', 0.25) RETURNING id""")
        await conn.execute("INSERT INTO project_images VALUES ($1, $2)", pid, iid)
        tids = [await conn.fetchval("INSERT INTO terms (project_id, name) VALUES ($1, $2)"
                                    " RETURNING id", pid, f"class {i}") for i in range(TERMS)]
        wkb = shapely.to_wkb(shapely.box(0, 0, 10, 10))
        t0 = time.perf_counter()
        step = 200_000
        for start in range(0, n, step):
            await conn.execute(
                f"""INSERT INTO annotations (image_id, project_id, user_id, kind, geom, sbox,
                        n_vertices, area_px, perimeter_px, area_um2, perimeter_um, term_ids,
                        properties, created_at, review_status, reviewed_by, reviewed_at)
                    SELECT $1::bigint, $2::bigint, ($3::bigint[])[1 + (g % {AUTHORS})], 'polygon',
                           $4,
                           box(point($1::bigint * {SHIFT}::float8 + x + 12, y + 12),
                               point($1::bigint * {SHIFT}::float8 + x, y)),
                           5, a, 4 * sqrt(a), a * 0.0625, 4 * sqrt(a) * 0.25,
                           CASE WHEN g % 10 = 0 THEN '{{}}'::bigint[]
                                ELSE ARRAY[($5::bigint[])[1 + (g % {TERMS})]] END,
                           jsonb_build_object('measurements', jsonb_build_object('score', s)),
                           now() - make_interval(secs => (g * 2.6)::int),
                           CASE g % 3 WHEN 0 THEN NULL WHEN 1 THEN 'accepted'
                                ELSE 'rejected' END,
                           CASE WHEN g % 3 = 0 THEN NULL ELSE ($3::bigint[])[1] END,
                           CASE WHEN g % 3 = 0 THEN NULL ELSE now() END
                    FROM (SELECT g, random() * 99000 AS x, random() * 99000 AS y,
                                 20 + random() * 400 AS a, random() AS s
                          FROM generate_series($6::int, $7::int) g) r""",
                iid, pid, uids, wkb, tids, start, min(n, start + step) - 1)
            log(f"  {min(n, start + step):,} rows ({time.perf_counter() - t0:.0f} s)")
        await conn.execute("VACUUM (ANALYZE) annotations")
        return iid, key, tids[0]
    finally:
        await conn.close()


async def _http(base: str, key: str, iid: int, term: int, n: int, requests: int,
                record: Callable[[dict], None]) -> None:
    import aiohttp

    url = f"{base}/api/images/{iid}/annotations/table"
    timeout = aiohttp.ClientTimeout(total=3600)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"},
                                     timeout=timeout) as http:

        async def timed(q: str) -> tuple[float, Any]:
            t0 = time.perf_counter()
            async with http.get(f"{url}?{q}") as r:
                raw = await r.read()
            ms = (time.perf_counter() - t0) * 1000
            if r.status != 200:
                raise RuntimeError(f"table failed: {r.status} {raw[:200]!r}")
            return ms, orjson.loads(raw)

        await timed("limit=50")  # warm the connection pool and the planner's caches
        for count in ("false", "true"):
            for sort in SORTS:
                for order in ("asc", "desc"):
                    lat = [(await timed(f"sort={sort}&order={order}&limit=50&count={count}"))[0]
                           for _ in range(requests)]
                    record({"suite": "annotation-table-page", "sort": sort, "order": order,
                            "count": count == "true", "rows": n, "requests": len(lat),
                            "p50_ms": _pct(lat, 0.5), "p99_ms": _pct(lat, 0.99)})
        # Deep in the list: page 200 of the area sort, reached by cursors.
        q = "sort=area&order=desc&limit=50&count=false"
        after = None
        for _ in range(200):
            _, page = await timed(q + (f"&after={after}" if after else ""))
            after = page["next"]
        lat = [(await timed(f"{q}&after={after}"))[0] for _ in range(requests)]
        record({"suite": "annotation-table-deep", "sort": "area", "page": 201, "rows": n,
                "p50_ms": _pct(lat, 0.5), "p99_ms": _pct(lat, 0.99)})
        lat = [(await timed(f"sort=area&order=desc&limit=50&count=false&term={term}"))[0]
               for _ in range(requests)]
        record({"suite": "annotation-table-filtered", "sort": "area", "filter": "one term",
                "rows": n, "p50_ms": _pct(lat, 0.5), "p99_ms": _pct(lat, 0.99)})

        t0 = time.perf_counter()
        size = lines = 0
        async with http.get(f"{url}/export?format=csv") as r:
            async for chunk in r.content.iter_chunked(1 << 20):
                size += len(chunk)
                lines += chunk.count(b"\n")
        dt = time.perf_counter() - t0
        record({"suite": "annotation-table-csv", "rows": lines - 1, "seconds": dt,
                "bytes": size, "rows_per_s": (lines - 1) / dt})


def bench(n: int, dsn: str, workdir: Path, log: Callable[[str], None],
          record: Callable[[dict], None], requests: int = 30) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    with scratch_database(dsn, "microtome_bench_table") as db:
        log(f"writing {n:,} annotations")
        t0 = time.perf_counter()
        iid, key, term = asyncio.run(_seed(db, n, log))
        record({"suite": "annotation-table-load", "rows": n,
                "seconds": time.perf_counter() - t0})
        proc, base = start_serve(db, workdir)
        try:
            asyncio.run(_http(base, key, iid, term, n, requests, record))
        finally:
            proc.stop()


def run(ctx: Any) -> None:
    """Entry point for `python -m bench` (bench.run.SuiteContext)."""
    bench(100_000 if ctx.quick else 1_000_000, default_dsn(),
          ctx.workdir / "annotation-table", ctx.log, ctx.record,
          requests=10 if ctx.quick else 30)


def render(records: list[dict]) -> str:
    """Markdown section for RESULTS.md."""
    lines = ["## Annotation table", ""]
    pages = [r for r in records if r.get("suite") == "annotation-table-page"]
    if pages:
        n = pages[0]["rows"]
        lines += [f"First page (50 rows) of `GET /api/images/{{id}}/annotations/table` on one "
                  f"image holding {n:,} annotations, through HTTP (keyset pagination, one "
                  f"btree per sort key); {pages[0]['requests']} requests each. Target: p50 "
                  "<= 100 ms.", "",
                  "| sort | order | p50 ms | p99 ms | p50 ms with total | p99 ms with total |",
                  "|---|---|---:|---:|---:|---:|"]
        by = {(r["sort"], r["order"], r["count"]): r for r in pages}
        for (sort, order, count), r in by.items():
            if count:
                continue
            c = by.get((sort, order, True))
            lines.append(f"| {sort} | {order} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                         f"{c['p50_ms']:.1f} | {c['p99_ms']:.1f} |" if c else
                         f"| {sort} | {order} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | – | – |")
        lines.append("")
    for r in records:
        if r.get("suite") == "annotation-table-deep":
            lines.append(f"- Page {r['page']} of the area sort (by cursor): p50 "
                         f"{r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms.")
        if r.get("suite") == "annotation-table-filtered":
            lines.append(f"- One term, by area (desc): p50 {r['p50_ms']:.1f} ms, p99 "
                         f"{r['p99_ms']:.1f} ms.")
        if r.get("suite") == "annotation-table-csv":
            lines.append(f"- CSV export of all {r['rows']:,} rows (streamed, COPY in the "
                         f"server): {r['seconds']:.1f} s, {r['bytes'] / 1e6:.0f} MB = "
                         f"**{r['rows_per_s']:,.0f} rows/s** (target >= 50,000).")
        if r.get("suite") == "annotation-table-load":
            lines.append(f"- Loading {r['rows']:,} rows with SQL (all indexes in place) and "
                         f"VACUUM ANALYZE: {r['seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="number of annotations")
    ap.add_argument("--dsn", default=default_dsn(),
                    help="a PostgreSQL server where a scratch database may be created")
    ap.add_argument("--workdir", type=Path, default=BENCH / "work" / "annotation-table")
    ap.add_argument("--requests", type=int, default=30)
    args = ap.parse_args(argv)
    rec = records.Recording("annotation_table", "python -m bench.annotation_table "
                            f"--n {args.n} --requests {args.requests}")

    def record(fig: dict) -> None:
        rec.add(fig)
        print(orjson.dumps(fig).decode(), flush=True)

    bench(args.n, args.dsn, args.workdir, lambda m: print(m, file=sys.stderr, flush=True),
          record, args.requests)
    print(render(rec.figures))
    print(f"wrote {records.save_and_report(rec)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
