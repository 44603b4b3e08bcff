"""Similar-region queries at scale through the HTTP API, with access filtering, against
an exact search in the same run.

``python -m bench.retrieval_http [--n 1000000] [--queries 200] [--exact-queries 100]``

The dataset (bench/retrieval_data.py: N annotations over 100 images in 20 projects,
one descriptor each, the migration's HNSW index) is built once and reused.  Access
is set on the small tables each run: project 19 is public, and three users are
members of 10, 4 and 1 of the other projects, so they may read 55 %, 25 % and 10 %
of the descriptors (every one of them can read less than the whole index, none of
them can read everything).  `microtome serve` runs over that database; each query is
``POST /api/retrieval/similar {annotation_id, scope: "all", k: 20}`` with a user's
API key, the annotation one of the user's readable ones (its own descriptor is the
query vector; it is excluded from the results).  In the same loop the same search is
timed in-process (`retrieval.index.nearest`, direct SQL: what HTTP adds is the
difference), and for the first `exact-queries` the exact answer (pgvector's distance
over every readable row, the access rules as EXISTS predicates as before this
change, no index) gives recall@20 of the HTTP answer.

Records go to the ``retrieval`` record (suite "retrieval-http"), next to the figures
of bench/retrieval.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import records as bench_records
from bench import retrieval_data
from bench.annotations import _pct

K = 20
#: Projects each bench user is a member of (project PUBLIC is public).
MEMBERSHIPS = {"bench-wide": range(0, 10), "bench-mid": range(0, 4), "bench-narrow": range(0, 1)}
PUBLIC = retrieval_data.PROJECTS - 1
#: shared_buffers of the benchmark's server: the 1M index (~0.8 GB) fits.
SHARED_BUFFERS = "2GB"


async def _access(uri: str) -> list[dict[str, Any]]:
    """Users, memberships, API keys and the public project (idempotent); returns per
    user: name, id, key, readable project ids."""
    import asyncpg

    from microtome.catalog.security import digest, new_api_key

    conn = await asyncpg.connect(uri)
    try:
        pids = [r["id"] for r in await conn.fetch("SELECT id FROM projects ORDER BY id")]
        await conn.execute("UPDATE projects SET public = (id = $1)", pids[PUBLIC])
        await conn.execute("DELETE FROM users WHERE username LIKE 'bench-%'")
        users = []
        for name, projects in MEMBERSHIPS.items():
            uid = await conn.fetchval("INSERT INTO users (username) VALUES ($1) RETURNING id",
                                      name)
            for j in projects:
                await conn.execute("INSERT INTO project_members VALUES ($1, $2, 'viewer')",
                                   pids[j], uid)
            key = new_api_key()
            await conn.execute("INSERT INTO api_keys (user_id, name, prefix, key_hash) "
                               "VALUES ($1, 'bench', $2, $3)", uid, key[:8], digest(key))
            users.append({"name": name, "id": uid, "key": key,
                          "projects": [pids[j] for j in projects] + [pids[PUBLIC]]})
        return users
    finally:
        await conn.close()


def _configure(server: Any, log: Callable[[str], None]) -> None:
    """shared_buffers large enough for the index (a restart when it changes)."""
    import asyncpg

    async def current() -> str:
        conn = await asyncpg.connect(server.get_uri("postgres"))
        try:
            return str(await conn.fetchval("SHOW shared_buffers"))
        finally:
            await conn.close()

    now = asyncio.run(current())
    if now != SHARED_BUFFERS:
        async def alter() -> None:
            conn = await asyncpg.connect(server.get_uri("postgres"))
            try:
                await conn.execute(f"ALTER SYSTEM SET shared_buffers = '{SHARED_BUFFERS}'")
            finally:
                await conn.close()
        asyncio.run(alter())
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(["-w", "restart"], pgdata=server.pgdata, user=server.system_user, timeout=120)
        log(f"shared_buffers {now} -> {asyncio.run(current())}")


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes and their children (the
    PostgreSQL backends are the postmaster's)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            procs = [psutil.Process(pid)]
            procs += procs[0].children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        for pr in procs:
            try:
                t = pr.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
    return total


async def _measure(uri: str, base: str, users: list[dict[str, Any]], queries: int,
                   exact_queries: int, warmup: int, log: Callable[[str], None],
                   cpu_pids: list[int] | None = None, budget_s: float = 3600.0
                   ) -> dict[str, Any]:
    import aiohttp
    import asyncpg

    from microtome.catalog.access import Principal
    from microtome.retrieval import index
    from microtome.retrieval.descriptors import FAMILY

    pool = await asyncpg.create_pool(uri, min_size=1, max_size=2, command_timeout=None)
    sessions = {u["name"]: aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {u['key']}"},
        timeout=aiohttp.ClientTimeout(total=600)) for u in users}
    try:
        rng = np.random.default_rng(7)
        total = await pool.fetchval("SELECT count(*) FROM annotation_descriptors")
        per_user = {}
        for u in users:
            n = await pool.fetchval(
                "SELECT count(*) FROM annotations WHERE project_id = ANY($1::bigint[])",
                u["projects"])
            per_user[u["name"]] = n / total
        lat: dict[str, list[float]] = {"http": [], "direct": [], "exact": [], "cpu": [],
                                       "dcpu": []}
        recall: list[float] = []
        variants = _variants()
        vlat: dict[str, list[float]] = {v: [] for v in variants}
        vcpu: dict[str, list[float]] = {v: [] for v in variants}
        vrecall: dict[str, list[float]] = {v: [] for v in variants}
        started = time.monotonic()
        methods: dict[str, int] = {}
        shortfalls = 0
        for q in range(-warmup, queries):
            u = users[q % len(users)]
            # A random annotation the user may read: a random id among its projects'.
            aid = await pool.fetchval(
                "SELECT id FROM annotations WHERE project_id = ANY($1::bigint[]) "
                "AND id >= $2 ORDER BY id LIMIT 1", u["projects"],
                int(rng.integers(1, total)))
            if aid is None:
                continue
            a = await pool.fetchrow("SELECT image_id, project_id FROM annotations "
                                    "WHERE id = $1", aid)
            c0 = _cpu_s(cpu_pids or [])
            t0 = time.perf_counter()
            async with sessions[u["name"]].post(
                    f"{base}/api/retrieval/similar",
                    json={"annotation_id": aid, "scope": "all", "k": K}) as r:
                body = await r.json()
            http_ms = (time.perf_counter() - t0) * 1000
            cpu_ms = (_cpu_s(cpu_pids or []) - c0) * 1000
            if r.status != 200:
                raise RuntimeError(f"similar failed: {r.status} {body}")
            ids = [it["annotation_id"] for it in body["items"]]
            p = Principal(u["id"], u["name"], False, "apikey")
            f = index.Filter("all", a["image_id"], (a["project_id"],), aid)
            vec = await index.descriptor(pool, aid, FAMILY)
            assert vec is not None
            direct_ms = dcpu_ms = 0.0
            answers: dict[str, set[int]] = {}
            for name, search in variants.items():
                c0 = _cpu_s((cpu_pids or [])[1:]) + time.process_time()
                t0 = time.perf_counter()
                answers[name] = await search(pool, p, f, vec)
                v_ms = (time.perf_counter() - t0) * 1000
                v_cpu = (_cpu_s((cpu_pids or [])[1:]) + time.process_time() - c0) * 1000
                if q >= 0:
                    vlat[name].append(v_ms)
                    vcpu[name].append(v_cpu)
                if name == DEFAULT:
                    direct_ms, dcpu_ms = v_ms, v_cpu
            if q < 0:
                continue
            lat["http"].append(http_ms)
            lat["direct"].append(direct_ms)
            lat["cpu"].append(cpu_ms)
            lat["dcpu"].append(dcpu_ms)
            methods[body["method"]] = methods.get(body["method"], 0) + 1
            shortfalls += len(ids) < K
            if set(ids) - set(int(x) for x in await pool.fetchval(
                    "SELECT array_agg(id) FROM annotations WHERE id = ANY($1::bigint[]) "
                    "AND project_id = ANY($2::bigint[])", ids, u["projects"]) or []):
                raise RuntimeError(f"{u['name']} got an annotation it may not read")
            if q < exact_queries:
                t0 = time.perf_counter()
                exact = await _exact(pool, p, f, vec)
                lat["exact"].append((time.perf_counter() - t0) * 1000)
                recall.append(len(set(ids) & exact) / K)
                for name, got in answers.items():
                    vrecall[name].append(len(got & exact) / K)
            if (q + 1) % 20 == 0:
                log(f"  {q + 1}/{queries}: http p50 {_pct(lat['http'], 0.5):.1f} ms, direct "
                    f"p50 {_pct(lat['direct'], 0.5):.1f} ms, recall "
                    f"{np.mean(recall) if recall else float('nan'):.3f}")
            if time.monotonic() - started > budget_s:
                log(f"  time budget ({budget_s:.0f} s) spent after {q + 1} queries")
                break
        return {"n": int(total), "k": K, "queries": len(lat["http"]),
                "exact_queries": len(recall),
                "readable_share": {k: round(v, 3) for k, v in per_user.items()},
                "http_p50_ms": _pct(lat["http"], 0.5), "http_p99_ms": _pct(lat["http"], 0.99),
                # Mean, not a percentile: CPU times tick in 10 ms.
                "http_cpu_mean_ms": float(np.mean(lat["cpu"])) if cpu_pids else None,
                "direct_cpu_mean_ms": float(np.mean(lat["dcpu"])) if cpu_pids else None,
                "direct_p50_ms": _pct(lat["direct"], 0.5),
                "direct_p99_ms": _pct(lat["direct"], 0.99),
                "exact_p50_ms": _pct(lat["exact"], 0.5) if lat["exact"] else None,
                "recall": float(np.mean(recall)) if recall else None,
                "recall_min": float(np.min(recall)) if recall else None,
                "methods": methods, "short_results": shortfalls,
                "variants": [{"variant": v, "p50_ms": _pct(vlat[v], 0.5),
                              "p99_ms": _pct(vlat[v], 0.99),
                              "cpu_mean_ms": float(np.mean(vcpu[v])) if cpu_pids else None,
                              "recall": float(np.mean(vrecall[v])) if vrecall[v] else None}
                             for v in variants if vlat[v]]}
    finally:
        for s in sessions.values():
            await s.close()
        await pool.close()


DEFAULT = "shipped"


def _variants() -> dict[str, Callable[..., Any]]:
    """In-process searches timed side by side: the shipped `nearest`, the same with
    other pass factors (how much candidate margin recall needs), and the search as it
    was before (fixed ef_search 100, EXISTS access predicates, exact when short)."""
    from microtome.retrieval import index
    from microtome.retrieval.descriptors import FAMILY

    def with_factor(pf: int | None) -> Callable[..., Any]:
        async def search(pool: Any, p: Any, f: Any, vec: np.ndarray) -> set[int]:
            keep = index.PASS_FACTOR
            index.PASS_FACTOR = pf or keep
            try:
                rows, _m = await index.nearest(pool, p, f, FAMILY, vec, K, True)
            finally:
                index.PASS_FACTOR = keep
            return {r["id"] for r in rows}
        return search

    out: dict[str, Callable[..., Any]] = {DEFAULT: with_factor(None)}
    for pf in (10,):
        if pf != index.PASS_FACTOR:
            out[f"pass factor {pf}"] = with_factor(pf)
    out["before (ef 100, EXISTS)"] = _before
    return out


async def _before(pool: Any, p: Any, f: Any, vec: np.ndarray) -> set[int]:
    """The search of the previous commit: ef_search max(100, 4k), the access rules as
    EXISTS predicates on every candidate, LIMIT k; exact scan when fewer than k."""
    from microtome.retrieval import index
    from microtome.retrieval.descriptors import FAMILY

    args: list[Any] = [FAMILY, np.asarray(vec, dtype=np.float32).tolist()]
    where = index._where(p, f, args)
    args.append(K)
    dist = "d.embedding <=> $2::real[]::vector"
    base = (f"FROM annotation_descriptors d JOIN annotations a ON a.id = d.annotation_id "
            f"JOIN images i ON i.id = a.image_id WHERE d.family = $1 AND "
            f"d.source_updated_at = a.updated_at AND d.vec IS NOT NULL AND {where}")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL hnsw.ef_search = {max(100, 4 * K)}")
        rows = await conn.fetch(f"SELECT a.id {base} ORDER BY {dist} LIMIT ${len(args)}",
                                *args)
        if len(rows) < K:
            rows = await conn.fetch(f"SELECT a.id {base} ORDER BY ({dist}) + 0, a.id "
                                    f"LIMIT ${len(args)}", *args)
    return {r["id"] for r in rows}


async def _exact(pool: Any, p: Any, f: Any, vec: np.ndarray) -> set[int]:
    """The true k nearest readable: pgvector's distance over every row (`+ 0` keeps
    the planner off the HNSW index), access as the EXISTS predicates."""
    from microtome.retrieval import index
    from microtome.retrieval.descriptors import FAMILY

    args: list[Any] = [FAMILY, np.asarray(vec, dtype=np.float32).tolist()]
    where = index._where(p, f, args)
    args.append(K)
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            f"""SELECT a.id FROM annotation_descriptors d JOIN annotations a
                  ON a.id = d.annotation_id
                WHERE d.family = $1 AND d.source_updated_at = a.updated_at
                  AND d.vec IS NOT NULL AND {where}
                ORDER BY (d.embedding <=> $2::real[]::vector) + 0, a.id
                LIMIT ${len(args)}""", *args)
    return {r["id"] for r in rows}


def run(n: int, queries: int, exact_queries: int, warmup: int = 30,
        log: Callable[[str], None] = print, budget_s: float = 3600.0) -> dict[str, Any]:
    from bench.dbsetup import start_serve
    from microtome.retrieval.descriptors import FAMILY

    t0 = time.perf_counter()
    server, stages = retrieval_data.dataset(n, FAMILY, log)
    _configure(server, log)
    uri = server.get_uri("postgres")
    users = asyncio.run(_access(uri))
    log(f"dataset ready in {time.perf_counter() - t0:.0f} s (build stages: {stages})")
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="microtome-bench-rhttp-") as tmp:
        proc, base = start_serve(uri, Path(tmp))
        try:
            pids = [proc.pid, server.get_pid()]
            fig = asyncio.run(_measure(uri, base, users, queries, exact_queries, warmup, log,
                                       pids, budget_s))
        finally:
            proc.stop()
    return {"suite": "retrieval-http", **fig, "hnsw_build_s": stages.get("index"),
            "shared_buffers": SHARED_BUFFERS, "load_average_start": load_start,
            "load_average": os.getloadavg()[0]}


def render(records: list[dict[str, Any]]) -> str:
    """Markdown rows of the "retrieval-http" records ('' when none)."""
    rows = [r for r in records if r.get("suite") == "retrieval-http"]
    if not rows:
        return ""
    lines = ["Similar regions through the HTTP API (`python -m bench.retrieval_http`: "
             "`POST /api/retrieval/similar`, k = 20, scope all, API keys of three users who "
             "may read 55 %, 25 % and 10 % of the descriptors, in turn; direct = the same "
             "search in-process (`retrieval.index.nearest`); CPU = CPU time of the server "
             "process and every PostgreSQL process during one HTTP request (what the "
             "latency would be on an idle machine, about); recall@20 of the HTTP answer "
             "against an exact scan over every readable row, same run):", "",
             "| descriptors | HTTP p50 ms | HTTP p99 ms | HTTP CPU mean ms | direct p50 ms "
             "| direct p99 ms | direct CPU mean ms | exact p50 ms | recall@20 (min) "
             "| queries / exact | methods | load start/end |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: int(r["n"])):
        ex = "" if r.get("exact_p50_ms") is None else f"{float(r['exact_p50_ms']):.0f}"
        rec = ("" if r.get("recall") is None
               else f"{float(r['recall']):.3f} ({float(r['recall_min']):.2f})")
        meth = ", ".join(f"{k} {v}" for k, v in sorted(dict(r["methods"]).items()))
        dcpu = ("" if r.get("direct_cpu_mean_ms") is None
                else f"{float(r['direct_cpu_mean_ms']):.1f}")
        cpu = "" if r.get("http_cpu_mean_ms") is None else f"{float(r['http_cpu_mean_ms']):.1f}"
        lines.append(
            f"| {int(r['n']):,} | {float(r['http_p50_ms']):.1f} | "
            f"{float(r['http_p99_ms']):.1f} | {cpu} | {float(r['direct_p50_ms']):.1f} | "
            f"{float(r['direct_p99_ms']):.1f} | {dcpu} | {ex} | {rec} | "
            f"{int(r['queries'])} / {int(r['exact_queries'])} | {meth} | "
            f"{float(r['load_average_start']):.1f}/{float(r['load_average']):.1f} |")
    for r in sorted(rows, key=lambda r: int(r["n"])):
        if not r.get("variants"):
            continue
        lines += ["", f"In-process variants at {int(r['n']):,} descriptors, same queries, same "
                  "run (pass factor: candidates that must pass the access filter per result; "
                  "before: fixed ef_search 100 with the EXISTS predicates):", "",
                  "| search | p50 ms | p99 ms | CPU mean ms | recall@20 |", "|---|---|---|---|---|"]
        for v in r["variants"]:
            cpu = "" if v.get("cpu_mean_ms") is None else f"{float(v['cpu_mean_ms']):.1f}"
            rec = "" if v.get("recall") is None else f"{float(v['recall']):.3f}"
            lines.append(f"| {v['variant']} | {float(v['p50_ms']):.1f} | "
                         f"{float(v['p99_ms']):.1f} | {cpu} | {rec} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.retrieval_http",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--exact-queries", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=30, help="untimed queries first")
    ap.add_argument("--budget-s", type=float, default=1800.0,
                    help="stop timing more queries after this (what was done is recorded)")
    args = ap.parse_args(argv)
    fig = run(args.n, args.queries, args.exact_queries, args.warmup,
              log=lambda s: print(s, flush=True), budget_s=args.budget_s)
    print(fig)
    command = "python -m bench.retrieval_http " + " ".join(
        argv if argv is not None else sys.argv[1:])
    last = bench_records.load("retrieval")
    old = [r for r in (last["figures"] if last else [])
           if not (r.get("suite") == "retrieval-http" and int(r["n"]) == int(fig["n"]))]
    rec = bench_records.Recording("retrieval", command)
    for f in [*old, fig]:
        rec.add(f)
    bench_records.save_and_report(rec)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
