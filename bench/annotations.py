"""Annotation benchmark: a million cell-like polygons on one 100k x 100k image.

Measures, through the real application (`microtome serve` in its own process,
HTTP over loopback, API-key auth):
- bulk import rate of a QuPath-style GeoJSON FeatureCollection (streamed POST);
- viewport queries at three zooms (p50/p99 latency, bytes, features/clusters);
- export time and size;
- storage bytes (table + indexes);
and, when the PostgreSQL server has PostGIS, the same viewport queries at SQL
level against a PostGIS copy of the data beside ours (both with GeoJSON
rendering included: ST_AsGeoJSON in the server vs shapely in our process; both
simplifying with plain Douglas-Peucker at the same tolerance, ST_Simplify vs
shapely.simplify).

Standalone:  python -m bench.annotations [--n 1000000] [--dsn URL] [--out FILE]
From the suite runner:  run(ctx) -> list[dict], render(records) -> str.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench import records
from bench.dbsetup import admin, default_dsn, scratch_database, seed_member, start_serve

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WIDTH = HEIGHT = 100_000
PIXEL_UM = 0.25
CLASSES = [("Tumor", [200, 0, 0]), ("Stroma", [150, 200, 150]),
           ("Immune cells", [160, 90, 160]), ("Necrosis", [50, 50, 50])]
#: Screen of the viewer: 1920x1080 CSS px.
SCREEN = (1920, 1080)
#: (name, image px per screen px): cell level, overview of a region, whole slide.
ZOOMS = [("working (2x)", 2.0), ("region (8x)", 8.0), ("whole slide", None)]


# -- data ------------------------------------------------------------------------------

def _tissue(rng: np.random.Generator) -> np.ndarray:
    """A few large ellipses (cx, cy, rx, ry) where the cells are: ~45% of the slide."""
    return np.array([[30_000, 35_000, 24_000, 28_000], [70_000, 40_000, 22_000, 26_000],
                     [50_000, 78_000, 30_000, 16_000]], dtype=np.float64)


def cell_batches(n: int, seed: int = 7, batch: int = 20_000) -> Iterator[list[bytes]]:
    """QuPath-style detection features (12-40 vertices, 5-15 px radius), as JSON bytes."""
    rng = np.random.default_rng(seed)
    tissue = _tissue(rng)
    done = 0
    while done < n:
        m = min(batch, n - done)
        which = rng.integers(0, len(tissue), m)
        t = tissue[which]
        ang = rng.uniform(0, 2 * np.pi, m)
        rad = np.sqrt(rng.uniform(0, 1, m))
        cx = t[:, 0] + t[:, 2] * rad * np.cos(ang)
        cy = t[:, 1] + t[:, 3] * rad * np.sin(ang)
        out = []
        for i in range(m):
            k = int(rng.integers(12, 41))
            theta = np.sort(rng.uniform(0, 2 * np.pi, k))
            r = rng.uniform(5, 15) * np.clip(1 + 0.12 * rng.standard_normal(k), 0.75, 1.25)
            xy = np.round(np.c_[cx[i] + r * np.cos(theta), cy[i] + r * np.sin(theta)], 2)
            ring: list[Any] = np.clip(xy, 0, WIDTH).tolist()  # type: ignore[assignment]
            ring.append(ring[0])
            name, color = CLASSES[int(rng.integers(0, len(CLASSES)))]
            out.append(orjson.dumps({
                "type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"objectType": "detection",
                               "classification": {"name": name, "color": color}}}))
        done += m
        yield out


def write_geojson(path: Path, n: int) -> int:
    """The FeatureCollection file; returns its size in bytes."""
    with open(path, "wb") as fh:
        fh.write(b'{"type": "FeatureCollection", "features": [\n')
        first = True
        for feats in cell_batches(n):
            fh.write((b"" if first else b",\n") + b",\n".join(feats))
            first = False
        fh.write(b"\n]}\n")
    return path.stat().st_size


# -- database --------------------------------------------------------------------------

async def _seed(dsn: str, images: int = 1) -> tuple[list[int], int, str]:
    """Migrate, then a user with an API key, a project and `images` 100k x 100k images."""
    from microtome.catalog.db import connect

    conn = await connect(dsn)
    try:
        _uid, pid, key = await seed_member(conn)
        iids = []
        for k in range(images):
            iid = await conn.fetchval(
                """INSERT INTO images (name, width, height, levels, status, pixel_size_um)
                   VALUES ($1, $2, $3, 9, 'ready', $4) RETURNING id""", f"cells-{k}", WIDTH,
                HEIGHT, PIXEL_UM)
            await conn.execute("INSERT INTO project_images VALUES ($1, $2)", pid, iid)
            iids.append(iid)
        return iids, pid, key
    finally:
        await conn.close()


# -- HTTP measurements --------------------------------------------------------------------

def _viewports(rng: np.random.Generator, scale: float | None, count: int
               ) -> list[tuple[float, float, float, float]]:
    if scale is None:
        return [(0.0, 0.0, float(WIDTH), float(HEIGHT))] * count
    w, h = SCREEN[0] * scale, SCREEN[1] * scale
    tissue = _tissue(rng)
    out = []
    for _ in range(count):
        cx, cy, rx, ry = tissue[int(rng.integers(0, len(tissue)))]
        a, r = rng.uniform(0, 2 * np.pi), math.sqrt(rng.uniform(0, 0.8))
        x, y = cx + rx * r * math.cos(a) - w / 2, cy + ry * r * math.sin(a) - h / 2
        x, y = min(max(x, 0), WIDTH - w), min(max(y, 0), HEIGHT - h)
        out.append((x, y, x + w, y + h))
    return out


def _pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


async def _import(http: Any, base: str, iid: int, geojson: Path) -> tuple[int, float]:
    """Streamed POST of the file to image `iid`; (features imported, seconds)."""

    async def body() -> Any:
        fh = await asyncio.to_thread(geojson.open, "rb")
        try:
            while chunk := await asyncio.to_thread(fh.read, 1 << 20):
                yield chunk
        finally:
            fh.close()

    t0 = time.perf_counter()
    async with http.post(f"{base}/api/images/{iid}/annotations/import", data=body(),
                         headers={"Content-Type": "application/geo+json"}) as r:
        res = await r.json()
        if r.status != 201:
            raise RuntimeError(f"import failed: {r.status} {res}")
    return res["imported"], time.perf_counter() - t0


async def _probe(http: Any, base: str, iid: int, requests: int, budget_s: float
                 ) -> dict[str, float]:
    """p50 ms of the working-zoom viewport, the region viewport and the region's term
    counts (`/counts`) on image `iid` (same viewports every time: seed 23)."""
    out: dict[str, float] = {}
    for what, scale, path in (("viewport_working", 2.0, ""), ("viewport_region", 8.0, ""),
                              ("counts_region", 8.0, "/counts")):
        views = _viewports(np.random.default_rng(23), scale, requests)
        lat: list[float] = []
        deadline = time.perf_counter() + budget_s
        for x0, y0, x1, y1 in views:
            url = (f"{base}/api/images/{iid}/annotations{path}?bbox={x0:.0f},{y0:.0f},"
                   f"{x1:.0f},{y1:.0f}&scale={scale}")
            t0 = time.perf_counter()
            async with http.get(url) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"{what} failed: {r.status}")
            lat.append((time.perf_counter() - t0) * 1000)
            if time.perf_counter() > deadline:
                break
        out[f"{what}_p50_ms"] = _pct(lat, 0.5)
        out[f"{what}_requests"] = len(lat)
    return out


async def _storage(db: str) -> dict[str, float]:
    import asyncpg

    conn = await asyncpg.connect(db)
    try:
        row = await conn.fetchrow(
            """SELECT pg_total_relation_size('annotations') AS total,
                      pg_relation_size('annotations') AS heap,
                      pg_indexes_size('annotations') AS indexes,
                      pg_total_relation_size('annotation_density') AS density,
                      (SELECT count(*) FROM annotations) AS n""")
        assert row is not None
        return {"rows": row["n"], "total_bytes": row["total"],
                "bytes_per_annotation": row["total"] / max(1, row["n"]),
                "heap_bytes_per_annotation": row["heap"] / max(1, row["n"]),
                "index_bytes_per_annotation": row["indexes"] / max(1, row["n"]),
                "density_bytes": row["density"]}
    finally:
        await conn.close()


async def _http_suite(base: str, key: str, iids: list[int], geojson: Path, n: int,
                      requests: int, budget_s: float, record: Callable[[dict], None], db: str,
                      server_pid: int) -> None:
    import aiohttp

    from bench.procs import tree_cpu_seconds

    iid = iids[0]
    headers = {"Authorization": f"Bearer {key}"}
    timeout = aiohttp.ClientTimeout(total=3600)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
        size = await asyncio.to_thread(lambda: geojson.stat().st_size)
        cpu0 = tree_cpu_seconds(server_pid)
        imported, dt = await _import(http, base, iid, geojson)
        record({"suite": "annotations-import", "features": imported, "seconds": dt,
                "rate_per_s": imported / dt, "file_bytes": size,
                "server_cpu_us_per_row": (tree_cpu_seconds(server_pid) - cpu0) * 1e6 / imported})
        # What autovacuum does shortly after a bulk load (visibility map for
        # index-only scans, hint bits); timed and reported, not hidden.
        t0 = time.perf_counter()
        await admin(db, "VACUUM (ANALYZE) annotations")
        record({"suite": "annotations-vacuum", "seconds": time.perf_counter() - t0})
        probe_requests, probe_budget = min(requests, 60), min(budget_s, 15.0)
        if len(iids) > 1:
            base_probe = await _probe(http, base, iid, probe_requests, probe_budget)
            record({"suite": "annotations-scale", "images": 1, **base_probe,
                    **await _storage(db)})

        rng = np.random.default_rng(11)
        for name, scale in ZOOMS:
            views = _viewports(rng, scale, requests)
            lat, sizes, counts, modes = [], [], [], set()
            deadline = time.perf_counter() + budget_s
            cpu0 = tree_cpu_seconds(server_pid)
            for i, (x0, y0, x1, y1) in enumerate(views):
                url = (f"{base}/api/images/{iid}/annotations?bbox={x0:.0f},{y0:.0f},{x1:.0f},"
                       f"{y1:.0f}&scale={scale or WIDTH / SCREEN[0]}")
                t0 = time.perf_counter()
                async with http.get(url) as r:
                    raw = await r.read()
                lat.append((time.perf_counter() - t0) * 1000)
                if r.status != 200:
                    raise RuntimeError(f"viewport failed: {r.status} {raw[:200]!r}")
                if i < 3 or i % 10 == 0:
                    doc = orjson.loads(raw)
                    modes.add(doc["lod"])
                    counts.append(doc["count"])
                sizes.append(len(raw))
                if time.perf_counter() > deadline:
                    break
            cpu_ms = (tree_cpu_seconds(server_pid) - cpu0) * 1000 / max(1, len(lat))
            record({"suite": "annotations-viewport", "zoom": name, "scale": scale,
                    "server_cpu_ms": cpu_ms,
                    "requests": len(lat), "p50_ms": _pct(lat, 0.5), "p99_ms": _pct(lat, 0.99),
                    "mean_ms": statistics.fmean(lat), "bytes_p50": _pct(sizes, 0.5),
                    "bytes_max": max(sizes), "annotations_p50": _pct(counts, 0.5),
                    "lod": sorted(modes)})

        t0 = time.perf_counter()
        total = 0
        async with http.get(f"{base}/api/images/{iid}/annotations/export",
                            headers={"Accept-Encoding": "identity"}) as r:
            async for chunk in r.content.iter_chunked(1 << 20):
                total += len(chunk)
        dt = time.perf_counter() - t0
        record({"suite": "annotations-export", "features": n, "seconds": dt, "bytes": total,
                "rate_per_s": n / dt})

        if len(iids) > 1:
            # The same file into every other image of the project: the table grows to
            # len(iids) x n rows; then the same probes on the first image again.
            for k, other in enumerate(iids[1:], start=2):
                imported, dt = await _import(http, base, other, geojson)
                record({"suite": "annotations-scale-import", "image": k,
                        "rows_before": (k - 1) * n, "features": imported, "seconds": dt,
                        "rate_per_s": imported / dt})
            t0 = time.perf_counter()
            await admin(db, "VACUUM (ANALYZE) annotations")
            vac = time.perf_counter() - t0
            probe = await _probe(http, base, iid, probe_requests, probe_budget)
            last = await _probe(http, base, iids[-1], probe_requests, probe_budget)
            record({"suite": "annotations-scale", "images": len(iids), "vacuum_seconds": vac,
                    **probe, **{f"last_image_{k}": v for k, v in last.items()},
                    **await _storage(db)})


# -- SQL level: ours vs PostGIS ------------------------------------------------------------

async def _copy_floor(db: str, workdir: Path, record: Callable[[dict], None],
                      image_id: int) -> None:
    """The database's own limit for the same rows: the imported rows, prepared beforehand
    in a binary COPY file, loaded with COPY into an empty table with the same columns,
    defaults, constraints and indexes (``LIKE annotations INCLUDING ALL``)."""
    import asyncpg

    path = workdir / "microtome.annotations.copy"
    conn = await asyncpg.connect(db)
    try:
        with path.open("wb") as fh:
            await conn.copy_from_query("SELECT * FROM annotations WHERE image_id = $1",
                                       image_id, output=fh, format="binary")
        await conn.execute("CREATE TABLE annotations_floor (LIKE annotations INCLUDING ALL)")
        n = await conn.fetchval("SELECT count(*) FROM annotations WHERE image_id = $1",
                                image_id)
        t0 = time.perf_counter()
        await conn.copy_to_table("annotations_floor", source=path, format="binary")
        dt = time.perf_counter() - t0
        indexes = await conn.fetchval(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'annotations_floor'")
        record({"suite": "annotations-copy-floor", "rows": n, "seconds": dt,
                "rate_per_s": n / dt, "indexes": indexes, "file_bytes": path.stat().st_size})
        await conn.execute("DROP TABLE annotations_floor")
    finally:
        await conn.close()
        path.unlink(missing_ok=True)


async def _sql_suite(dsn: str, iid: int, requests: int, record: Callable[[dict], None]) -> None:
    from microtome.annotations import query, render, store
    from microtome.catalog.db import connect

    conn = await connect(dsn)
    try:
        sizes = await conn.fetchrow(
            """SELECT pg_relation_size('annotations') AS heap,
                      pg_indexes_size('annotations') AS indexes,
                      pg_total_relation_size('annotations') AS total,
                      (SELECT count(*) FROM annotations) AS n""")
        record({"suite": "annotations-storage", **dict(sizes)})
        has_postgis = await conn.fetchval(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'")
        if not has_postgis:
            from bench.deps import ensure_postgis

            why = await asyncio.to_thread(
                ensure_postgis, int(await conn.fetchval("SHOW server_version_num")))
            has_postgis = await conn.fetchval(
                "SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'")
            if not has_postgis:
                print(f"annotations: no PostGIS comparison ({why or 'still not available'})")
        frame = await store.image_frame(conn, iid)
        rng = np.random.default_rng(5)
        views = _viewports(rng, 2.0, requests)
        f = query.Filters()
        # Like for like: both engines simplify with plain Douglas-Peucker (no topology
        # repair) at the tolerance our renderer uses at this zoom (half a screen pixel).
        scale = 2.0
        tolerance = scale * 0.5
        simplify = f"Douglas-Peucker {tolerance:g} px"
        cols = query.LOD_COLS if render.lod_band(scale, 2) else query.LIGHT_COLS

        async def ours(box: tuple[float, float, float, float]) -> None:
            rows = await query.fetch_page(conn, frame, box, f, limit=2001, cols=cols)
            render.light_collection(rows, scale=scale, precision=2, next_after=None, extra={})

        async def computed(box: tuple[float, float, float, float]) -> None:
            rows = await query.fetch_page(conn, frame, box, f, limit=2001)
            render.light_collection(rows, scale=scale, precision=2, next_after=None, extra={})

        engines: list[tuple[str, str, Any]] = [
            ("microtome (box GiST + stored working-zoom GeoJSON)", simplify, ours),
            ("microtome without the stored text (box GiST + shapely)", simplify, computed)]
        psize = build = None
        if has_postgis:
            t0 = time.perf_counter()
            await conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            await conn.execute(
                """CREATE TABLE pg_cells AS SELECT id, image_id, ST_GeomFromWKB(geom) AS geom,
                       kind, term_ids, user_id FROM annotations""")
            await conn.execute("CREATE INDEX ON pg_cells USING gist (geom)")
            await conn.execute("VACUUM ANALYZE pg_cells")
            build = time.perf_counter() - t0
            psize = await conn.fetchval("SELECT pg_total_relation_size('pg_cells')")

            async def postgis(box: tuple[float, float, float, float]) -> None:
                x0, y0, x1, y1 = box
                rows = await conn.fetch(
                    # preserveCollapsed: a shape smaller than the tolerance is drawn as
                    # it is, as ours does.
                    """SELECT id, ST_AsGeoJSON(ST_Simplify(geom, $6::float8, true), 2) AS g,
                              kind, term_ids, user_id
                       FROM pg_cells WHERE geom && ST_MakeEnvelope($1, $2, $3, $4)
                         AND image_id = $5 ORDER BY id LIMIT 2001""",
                    x0, y0, x1, y1, iid, tolerance)
                feats = [orjson.dumps({"type": "Feature", "id": r["id"],
                                       "geometry": orjson.Fragment(r["g"]),
                                       "properties": {"kind": r["kind"],
                                                      "terms": list(r["term_ids"]),
                                                      "user_id": r["user_id"]}})
                         for r in rows]
                b"[" + b",".join(feats) + b"]"

            engines.append(("postgis (geometry GiST + ST_AsGeoJSON)",
                            f"ST_Simplify: {simplify}", postgis))
        # Like for like: both warmed on the same viewports first, then measured
        # alternately (which one goes first swaps every viewport), so machine load
        # and cache state fall on both alike.
        for box in views[:10]:
            for _name, _how, fn in engines:
                await fn(box)
        lat: dict[str, list[float]] = {name: [] for name, _how, _fn in engines}
        for i, box in enumerate(views):
            for name, _how, fn in (engines if i % 2 == 0 else engines[::-1]):
                t0 = time.perf_counter()
                await fn(box)
                lat[name].append((time.perf_counter() - t0) * 1000)
        for name, how, _fn in engines:
            fig: dict[str, Any] = {
                "suite": "annotations-sql", "engine": name, "zoom": "working (2x)",
                "simplify": how, "p50_ms": _pct(lat[name], 0.5),
                "p99_ms": _pct(lat[name], 0.99), "requests": len(lat[name]),
                "interleaved": len(engines) > 1}
            if name.startswith("postgis"):
                fig.update(table_bytes=psize, build_seconds=build)
            record(fig)
        if not has_postgis:
            record({"suite": "annotations-sql", "engine": "postgis", "skipped":
                    "PostGIS is not installed on this PostgreSQL server"})
    finally:
        await conn.close()


# -- orchestration ----------------------------------------------------------------------------

def bench(n: int, dsn: str, workdir: Path, log: Callable[[str], None],
          record: Callable[[dict], None], requests: int = 200, budget_s: float = 30.0,
          images: int = 1) -> None:
    """`images` > 1: the scale case (the same n cells imported into each image of one
    project; p50s on the first image at 1 and at `images` images, storage per row)."""
    workdir.mkdir(parents=True, exist_ok=True)
    geojson = workdir / f"cells-{n}.geojson"
    if not geojson.exists():
        t0 = time.perf_counter()
        size = write_geojson(geojson, n)
        log(f"generated {n} cells, {size / 1e6:.0f} MB in {time.perf_counter() - t0:.0f} s")
    with scratch_database(dsn, "microtome_bench_ann", workdir, log) as db:
        iids, _pid, key = asyncio.run(_seed(db, images))
        proc, base = start_serve(db, workdir)
        try:
            log(f"server up on {base}; importing {n} cells into {images} image(s)")
            asyncio.run(_http_suite(base, key, iids, geojson, n, requests, budget_s, record,
                                    db, proc.pid))
        finally:
            proc.stop()
        asyncio.run(_copy_floor(db, workdir, record, iids[0]))
        asyncio.run(_sql_suite(db, iids[0], min(requests, 100), record))


def run(ctx: Any) -> None:
    """Entry point for `python -m bench` (bench.run.SuiteContext)."""
    n = 50_000 if ctx.quick else 1_000_000
    bench(n, default_dsn(), ctx.workdir / "annotations", ctx.log, ctx.record,
          requests=50 if ctx.quick else 200, budget_s=min(30.0, ctx.pass_seconds * 4))


def render(records: list[dict]) -> str:
    """Markdown section for RESULTS.md."""
    by = {r["suite"]: r for r in records if "suite" in r}
    lines = ["## Annotations", ""]
    imp = by.get("annotations-import")
    if imp:
        lines += [f"- Import (streamed HTTP POST of a QuPath-style FeatureCollection, COPY, one "
                  f"transaction): **{imp['features']:,} polygons in {imp['seconds']:.1f} s = "
                  f"{imp['rate_per_s']:,.0f} polygons/s** ({imp['file_bytes'] / 1e6:.0f} MB)"
                  + (f"; server CPU {imp['server_cpu_us_per_row']:.0f} µs per polygon "
                     "(all its processes)" if "server_cpu_us_per_row" in imp else "") + ".",
                  ""]
    floor = by.get("annotations-copy-floor")
    if imp and floor:
        lines += [f"- Import floor: binary `COPY` of the same {floor['rows']:,} rows, prepared "
                  f"in a file, into an empty table with the same columns and "
                  f"{floor['indexes']} indexes: {floor['seconds']:.1f} s = "
                  f"{floor['rate_per_s']:,.0f} rows/s; the HTTP import runs at "
                  f"**{imp['rate_per_s'] / floor['rate_per_s']:.2f} of the floor** "
                  "(goal >= 0.5).", ""]
    st = by.get("annotations-storage")
    if st:
        lines += [f"- Storage: {st['total'] / 1e6:.0f} MB for {st['n']:,} rows "
                  f"(heap {st['heap'] / 1e6:.0f} MB, indexes {st['indexes'] / 1e6:.0f} MB).", ""]
    vac = by.get("annotations-vacuum")
    if vac:
        lines += [f"- `VACUUM (ANALYZE)` after the load (autovacuum would do it): "
                  f"{vac['seconds']:.1f} s.", ""]
    lines += ["| viewport (1920x1080 screen) | requests | p50 ms | p99 ms | server CPU ms/req "
              "| answer | annotations (p50) | bytes p50 | bytes max |",
              "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in records:
        if r.get("suite") == "annotations-viewport":
            lines.append(f"| {r['zoom']} | {r['requests']} | {r['p50_ms']:.1f} | "
                         f"{r['p99_ms']:.1f} | {r.get('server_cpu_ms', 0):.1f} | "
                         f"{'/'.join(r['lod'])} | {r['annotations_p50']:,} "
                         f"| {r['bytes_p50']:,} | {r['bytes_max']:,} |")
    ex = by.get("annotations-export")
    if ex:
        lines += ["", f"- Export (streamed GeoJSON): {ex['features']:,} features, "
                      f"{ex['bytes'] / 1e6:.0f} MB in {ex['seconds']:.1f} s "
                      f"({ex['rate_per_s']:,.0f} features/s)."]
    scale = [r for r in records if r.get("suite") == "annotations-scale"]
    if len(scale) >= 2:
        one, many = scale[0], scale[-1]
        imps = [r for r in records if r.get("suite") == "annotations-scale-import"]
        lines += ["", f"Scale: the same {one['rows']:,} cells imported into each of "
                      f"{many['images']} images of one project ({many['rows']:,} rows); "
                      "p50 on the first image (same viewports) with 1 image vs all of them "
                      "(goal: within 20%):", "",
                  "| p50 ms | 1 image | " + f"{many['images']} images | ratio |",
                  "|---|---:|---:|---:|"]
        for key, label in (("viewport_working", "viewport, working zoom (2x)"),
                           ("viewport_region", "viewport, region (8x)"),
                           ("counts_region", "term counts, region (8x)")):
            a, b = one[f"{key}_p50_ms"], many[f"{key}_p50_ms"]
            lines.append(f"| {label} | {a:.1f} | {b:.1f} | {b / a:.2f} |")
        if imps:
            rates = [r["rate_per_s"] for r in imps]
            lines += ["", f"- Imports into images 2-{many['images']}: "
                          f"{min(rates):,.0f}-{max(rates):,.0f} polygons/s (first image "
                          f"{imp['rate_per_s'] if imp else 0:,.0f}/s; last into a table of "
                          f"{imps[-1]['rows_before']:,} rows: {rates[-1]:,.0f}/s)."]
        lines += [f"- Storage per annotation (pg_total_relation_size / rows): "
                  f"{one['bytes_per_annotation']:,.0f} B at {one['rows']:,} rows, "
                  f"{many['bytes_per_annotation']:,.0f} B at {many['rows']:,} rows "
                  f"(heap {many['heap_bytes_per_annotation']:,.0f} B, indexes "
                  f"{many['index_bytes_per_annotation']:,.0f} B)."]
    sql = [r for r in records if r.get("suite") == "annotations-sql"]
    if sql:
        inter = any(r.get("interleaved") for r in sql)
        lines += ["", "SQL level, working-zoom viewport incl. simplification and GeoJSON "
                      "rendering" + (" (engines warmed, then measured alternately on the "
                                     "same viewports)" if inter else "") + ":", "",
                  "| engine | simplification | p50 ms | p99 ms | note |",
                  "|---|---|---:|---:|---|"]
        for r in sql:
            how = r.get("simplify", "–")
            if "skipped" in r:
                lines.append(f"| {r['engine']} | {how} | – | – | {r['skipped']} |")
            else:
                note = (f"table {r['table_bytes'] / 1e6:.0f} MB, built in "
                        f"{r['build_seconds']:.0f} s" if "table_bytes" in r else "")
                lines.append(f"| {r['engine']} | {how} | {r['p50_ms']:.1f} | "
                             f"{r['p99_ms']:.1f} | {note} |")
        done = [r for r in sql if "skipped" not in r]
        pg = [r for r in done if r["engine"].startswith("postgis")]
        if pg and done[0] is not pg[0]:
            lines += ["", f"- {done[0]['engine']} / PostGIS p50: "
                          f"**{done[0]['p50_ms'] / pg[0]['p50_ms']:.2f}** (goal <= 0.5)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="number of cells")
    ap.add_argument("--dsn", default=default_dsn(),
                    help="a PostgreSQL server where a scratch database may be created")
    ap.add_argument("--workdir", type=Path, default=BENCH / "work" / "annotations")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--budget", type=float, default=30.0, help="seconds per viewport set")
    ap.add_argument("--images", type=int, default=1,
                    help="scale case: import the n cells into this many images of one project "
                         "(10 with --n 1000000 is the ten-million case)")
    args = ap.parse_args(argv)
    rec = records.Recording("annotations", "python -m bench.annotations "
                            f"--n {args.n} --requests {args.requests} --budget {args.budget:g}"
                            f" --images {args.images}")

    def record(fig: dict) -> None:
        rec.add(fig)
        print(orjson.dumps(fig).decode(), flush=True)

    bench(args.n, args.dsn, args.workdir, lambda m: print(m, file=sys.stderr, flush=True),
          record, args.requests, args.budget, args.images)
    print(render(rec.figures))
    print(f"wrote {records.save_and_report(rec)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
