"""``python -m bench.floor``: the tile path against its floor, and serve mode against
`microtome tiles`, as ratios measured in one run.

Tile floor: `microtome tiles --workers 2` against `bench/peers/floor_server.py`
(a minimal aiohttp handler answering every tile URL with one fixed JPEG from
memory, 2 processes on one port with SO_REUSEPORT and uvloop, like the tile
workers), on the same list of distinct full-resolution tiles of the
generated slide, warm (every tile requested once before measuring). Two
clients: `wrk` (C, low overhead) and the aiohttp load generator
(`bench.load`); order floor, ours, ours, floor for each; server CPU per
request from /proc over the whole process tree.

Serve mode: the same tiles of the same slide through `microtome serve` (one
process, catalog on PostgreSQL, the image in a private project) with a signed
URL (``/dzi/{id}~{token}_files/...``) and with a session cookie, against
`microtome tiles --workers 1` (also one process) on the same pyramid; ABBA
per credential, with `wrk`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from statistics import median
from typing import Any

from bench import records
from bench.dbsetup import default_dsn, scratch_database, seed_member, start_serve
from bench.procs import Proc, free_port, tree_cpu_seconds
from bench.tilelists import dzi_levels

BENCH = Path(__file__).resolve().parent
PY = sys.executable
WRK_LUA = """
local paths = {}
local header = os.getenv("BENCH_HEADER")
function init(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  i = math.random(#paths)
end
function request()
  i = i % #paths + 1
  if header and #header > 0 then
    local k, v = header:match("^([^:]+):%s*(.*)$")
    return wrk.format("GET", paths[i], {[k] = v})
  end
  return wrk.format("GET", paths[i])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, '
    .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def full_resolution_tiles(width: int, height: int, n: int, seed: int) -> list[tuple[int, int, int]]:
    """``n`` distinct full-resolution Deep Zoom tiles, seeded."""
    top = dzi_levels(width, height)[-1]
    every = [(top.level, c, r) for r in range(top.rows) for c in range(top.cols)]
    return random.Random(seed).sample(every, min(n, len(every)))


def wrk_pass(base: str, paths_file: Path, concurrency: int, seconds: float, pid: int,
             header: str = "") -> dict[str, Any]:
    """One `wrk` pass (2 client threads) over the list, looping; server CPU per request."""
    lua = paths_file.with_suffix(".lua")
    lua.write_text(WRK_LUA)
    argv = ["wrk", "-t2", f"-c{concurrency}", f"-d{seconds:g}s", "--latency", "-s", str(lua),
            base, "--", str(paths_file)]
    cpu0 = tree_cpu_seconds(pid)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60,
                         env={"PATH": "/usr/bin:/bin", "BENCH_HEADER": header})
    cpu = tree_cpu_seconds(pid) - cpu0
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {out.stderr.strip()[-300:]}")
    w = json.loads(line.removeprefix("WRKJSON "))
    errors = w["connect"] + w["read"] + w["write"] + w["status"] + w["timeout"]
    ok = w["requests"] - w["status"]  # non-2xx answers are never throughput
    dur = w["duration_us"] / 1e6
    return {"client": "wrk", "requests": w["requests"], "ok": ok, "errors": errors,
            "rps": ok / dur, "elapsed_s": dur, "p50_ms": w["p50_us"] / 1e3,
            "p99_ms": w["p99_us"] / 1e3, "bytes": w["bytes"], "server_cpu_s": round(cpu, 3),
            "cpu_ms_per_request": cpu / ok * 1e3 if ok else None}


def aiohttp_pass(base: str, paths_file: Path, concurrency: int, pid: int,
                 header: str = "") -> dict[str, Any]:
    """One pass of the aiohttp load generator over the whole list."""
    argv = [PY, "-m", "bench.load", "--base", base, "--paths", str(paths_file),
            "--concurrency", str(concurrency), "--max-seconds", "300"]
    if header:
        argv += ["--header", header]
    cpu0 = tree_cpu_seconds(pid)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=400)
    cpu = tree_cpu_seconds(pid) - cpu0
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr.strip()[-300:]}")
    r = json.loads(out.stdout)
    return {"client": "aiohttp", "requests": r["requests"], "ok": r["ok"],
            "errors": r["errors"], "rps": r["rps"], "elapsed_s": r["elapsed_s"],
            "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "bytes": r["bytes"],
            "server_cpu_s": round(cpu, 3),
            "cpu_ms_per_request": cpu / r["ok"] * 1e3 if r["ok"] else None}


@contextmanager
def running(name: str, argv: list[str], ready: str, logdir: Path,
            env: dict[str, str] | None = None) -> Iterator[Proc]:
    proc = Proc(name, argv, logdir / f"{name}.log", env or {})
    proc.start()
    try:
        proc.wait_ready(ready)
        yield proc
    finally:
        proc.stop()


def _get(url: str, header: str = "") -> bytes:
    req = urllib.request.Request(url)
    if header:
        k, v = header.split(":", 1)
        req.add_header(k, v.strip())
    with urllib.request.urlopen(req, timeout=60) as r:
        body: bytes = r.read()
    return body


def prepare(width: int, height: int, workdir: Path, log: Callable[[str], None]
            ) -> tuple[Path, str]:
    """The generated slide converted to OME-Zarr (cached); returns (root, image id)."""
    from bench import slide
    from microtome.converters import convert

    svs = slide.ensure_slide(BENCH / "data", width, height, log=log)
    root = workdir / "zarr"
    target = root / (svs.stem + ".ome.zarr")
    if not (target / "zarr.json").exists():
        shutil.rmtree(target, ignore_errors=True)
        log(f"converting {svs.name}")
        convert(svs, target)
    return root, svs.stem


def _abba(passes: Callable[[str], dict[str, Any]], a: str, b: str, rounds: int
          ) -> list[dict[str, Any]]:
    out = []
    for _ in range(rounds):
        for who in (a, b, b, a):
            out.append({"server": who, **passes(who)})
    return out


def _summary(rows: list[dict[str, Any]], ours: str, ref: str) -> dict[str, Any]:
    def med(who: str, key: str) -> float:
        return median(r[key] for r in rows if r["server"] == who)

    return {"rps": {ours: med(ours, "rps"), ref: med(ref, "rps")},
            "cpu_ms_per_request": {ours: med(ours, "cpu_ms_per_request"),
                                   ref: med(ref, "cpu_ms_per_request")},
            "throughput_ratio": med(ours, "rps") / med(ref, "rps"),
            "cpu_ratio": med(ours, "cpu_ms_per_request") / med(ref, "cpu_ms_per_request"),
            "errors": sum(r["errors"] for r in rows)}


def tile_floor(root: Path, image: str, width: int, height: int, workdir: Path,
               tiles: int, concurrency: int, seconds: float, rounds: int,
               log: Callable[[str], None], record: Callable[[dict[str, Any]], None]) -> None:
    logdir = workdir / "logs"
    paths = [f"/dzi/{image}_files/{lv}/{c}_{r}.jpg"
             for lv, c, r in full_resolution_tiles(width, height, tiles, 20261203)]
    paths_file = workdir / "floor-tiles.txt"
    paths_file.write_text("\n".join(paths) + "\n")
    p_ours, p_floor = free_port(), free_port()
    ours_argv = [PY, "-m", "microtome", "tiles", "--root", str(root), "--host", "127.0.0.1",
                 "--port", str(p_ours), "--workers", "2"]
    with running("microtome", ours_argv, f"http://127.0.0.1:{p_ours}/dzi/{image}.dzi",
                 logdir) as ours:
        base_ours = f"http://127.0.0.1:{p_ours}"
        sizes = [len(_get(base_ours + p)) for p in paths]  # warms both workers' caches below
        aiohttp_pass(base_ours, paths_file, concurrency, ours.pid)
        mean = sum(sizes) / len(sizes)
        pick = min(range(len(sizes)), key=lambda i: abs(sizes[i] - mean))
        body = workdir / "floor-body.jpg"
        body.write_bytes(_get(base_ours + paths[pick]))
        floor_argv = [PY, "-m", "bench.peers.floor_server", str(body), "--port",
                      str(p_floor), "--processes", "2"]
        with running("floor", floor_argv, f"http://127.0.0.1:{p_floor}/health",
                     logdir) as floor:
            base = {"microtome": (base_ours, ours.pid),
                    "floor": (f"http://127.0.0.1:{p_floor}", floor.pid)}
            aiohttp_pass(base["floor"][0], paths_file, concurrency, floor.pid)  # warm-up
            for client in ("wrk", "aiohttp"):
                def one(who: str, client: str = client) -> dict[str, Any]:
                    url, pid = base[who]
                    if client == "wrk":
                        return wrk_pass(url, paths_file, concurrency, seconds, pid)
                    return aiohttp_pass(url, paths_file, concurrency, pid)

                rows = _abba(one, "floor", "microtome", rounds)
                for r in rows:
                    log(f"floor {client} {r['server']}: {r['rps']:.0f}/s, "
                        f"{r['cpu_ms_per_request']:.3f} ms CPU/request, errors {r['errors']}")
                record({"suite": "floor-tiles", "client": client, "tiles": len(paths),
                        "concurrency": concurrency, "workers": 2,
                        "wrk_seconds": seconds if client == "wrk" else None,
                        "mean_tile_bytes": round(mean), "floor_body_bytes": body.stat().st_size,
                        "passes": rows, **_summary(rows, "microtome", "floor")})


async def _seed_serve(db: str, var: Path, pyramid: Path, width: int, height: int
                      ) -> tuple[int, str, str]:
    """Migrate; a user with an API key and a session in a private project holding the
    image (its pyramid copied into the catalog's storage)."""
    from microtome.catalog.db import connect
    from microtome.catalog.images import register_image
    from microtome.catalog.storage import storage_relpath

    conn = await connect(db)
    try:
        uid, pid, key = await seed_member(conn)
        token = secrets.token_urlsafe(32)
        await conn.execute("INSERT INTO sessions (token_hash, csrf_token, user_id, expires_at)"
                           " VALUES ($1, 'x', $2, now() + interval '1 day')",
                           hashlib.sha256(token.encode()).digest(), uid)
    finally:
        await conn.close()
    import asyncpg

    pool = await asyncpg.create_pool(db, min_size=1, max_size=2)
    try:
        iid = await register_image(pool, name="slide", relpath="pending", width=width,
                                   height=height, levels=8, project_id=pid)
        await pool.execute("UPDATE images SET storage_path = $2, status = 'ready' "
                           "WHERE id = $1", iid, storage_relpath(iid))
    finally:
        await pool.close()
    dst = var / "images" / storage_relpath(iid)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(pyramid, dst, dirs_exist_ok=True)
    return iid, key, token


def serve_mode(root: Path, image: str, width: int, height: int, workdir: Path, tiles: int,
               concurrency: int, seconds: float, rounds: int, log: Callable[[str], None],
               record: Callable[[dict[str, Any]], None]) -> None:
    logdir = workdir / "logs"
    var = workdir / "var"
    shutil.rmtree(var, ignore_errors=True)
    full = full_resolution_tiles(width, height, tiles, 20261204)
    with scratch_database(default_dsn(), "microtome_bench_serve") as db:
        iid, key, session = asyncio.run(_seed_serve(db, var, root / f"{image}.ome.zarr",
                                                    width, height))
        proc, base = start_serve(db, workdir, var, env={"MICROTOME_LOCAL_WORKERS": "0"})
        try:
            req = urllib.request.Request(f"{base}/api/images/{iid}/signed-url",
                                         data=b'{"expires_in": 3600}', method="POST",
                                         headers={"Authorization": f"Bearer {key}",
                                                  "Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                signed = json.loads(r.read())["image"]
            p_tiles = free_port()
            tiles_argv = [PY, "-m", "microtome", "tiles", "--root", str(root), "--host",
                          "127.0.0.1", "--port", str(p_tiles), "--workers", "1"]
            with running("microtome-tiles", tiles_argv,
                         f"http://127.0.0.1:{p_tiles}/dzi/{image}.dzi", logdir) as tp:
                lists = {
                    "tiles": [f"/dzi/{image}_files/{lv}/{c}_{r}.jpg" for lv, c, r in full],
                    "signed": [f"/dzi/{signed}_files/{lv}/{c}_{r}.jpg" for lv, c, r in full],
                    "cookie": [f"/dzi/{iid}_files/{lv}/{c}_{r}.jpg" for lv, c, r in full]}
                files = {}
                for name, ps in lists.items():
                    files[name] = workdir / f"serve-{name}.txt"
                    files[name].write_text("\n".join(ps) + "\n")
                cookie = f"Cookie: microtome_session={session}"
                target = {"tiles": (f"http://127.0.0.1:{p_tiles}", tp.pid, ""),
                          "signed": (base, proc.pid, ""), "cookie": (base, proc.pid, cookie)}
                for name in ("tiles", "signed", "cookie"):  # warm every cache once
                    url, pid, header = target[name]
                    warm = aiohttp_pass(url, files[name], concurrency, pid, header)
                    if warm["errors"]:
                        raise RuntimeError(f"serve mode {name}: {warm['errors']} errors "
                                           "while warming")
                for cred in ("signed", "cookie"):
                    def one(who: str, cred: str = cred) -> dict[str, Any]:
                        name = "tiles" if who == "tiles" else cred
                        url, pid, header = target[name]
                        return wrk_pass(url, files[name], concurrency, seconds, pid, header)

                    rows = _abba(one, "tiles", "serve", rounds)
                    for r in rows:
                        log(f"serve {cred} {r['server']}: {r['rps']:.0f}/s, "
                            f"{r['cpu_ms_per_request']:.3f} ms CPU/request, "
                            f"errors {r['errors']}")
                    record({"suite": "serve-mode", "credential": cred, "client": "wrk",
                            "tiles": len(full), "concurrency": concurrency,
                            "wrk_seconds": seconds, "passes": rows,
                            **_summary(rows, "serve", "tiles")})
        finally:
            proc.stop()


def bench(workdir: Path, quick: bool, log: Callable[[str], None],
          record: Callable[[dict[str, Any]], None], parts: tuple[str, ...] = ("floor", "serve"),
          ) -> None:
    if shutil.which("wrk") is None:
        from bench import deps

        if deps.ensure(log).get("wrk"):
            raise RuntimeError("wrk is needed (Debian: apt install wrk)")
    width, height = 16384, 12288
    workdir.mkdir(parents=True, exist_ok=True)
    root, image = prepare(width, height, workdir, log)
    seconds, rounds = (3.0, 1) if quick else (6.0, 2)
    if "floor" in parts:
        tile_floor(root, image, width, height, workdir, 1200, 32, seconds, rounds, log, record)
    if "serve" in parts:
        serve_mode(root, image, width, height, workdir, 1200, 32, seconds, rounds, log, record)


def run(ctx: Any) -> None:
    """Entry point for `python -m bench` (bench.run.SuiteContext)."""
    bench(ctx.workdir / "floor", ctx.quick, ctx.log, ctx.record)


def render(figures: list[dict[str, Any]]) -> str:
    lines = ["## Tile floor and serve mode", ""]
    fl = [f for f in figures if f.get("suite") == "floor-tiles"]
    if fl:
        f0 = fl[0]
        lines += [f"{f0['tiles']:,} distinct full-resolution tiles, warm, concurrency "
                  f"{f0['concurrency']}; `microtome tiles --workers {f0['workers']}` against "
                  f"the floor (a fixed {f0['floor_body_bytes']:,}-byte JPEG from memory, "
                  f"{f0['workers']} processes, same event loop; our mean tile "
                  f"{f0['mean_tile_bytes']:,} bytes). Medians over passes ordered floor, "
                  "ours, ours, floor. Goal: CPU per request <= 1.25x the floor's."
                  + (f" (This part was measured {f0['measured']}.)" if "measured" in f0
                     else ""), "",
                  "| client | floor tiles/s | Microtome tiles/s | throughput ratio "
                  "| floor CPU ms/tile | Microtome CPU ms/tile | CPU ratio | errors |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for f in fl:
            lines.append(
                f"| {f['client']} | {f['rps']['floor']:.0f} | {f['rps']['microtome']:.0f} "
                f"| {f['throughput_ratio']:.2f} | {f['cpu_ms_per_request']['floor']:.3f} "
                f"| {f['cpu_ms_per_request']['microtome']:.3f} | **{f['cpu_ratio']:.2f}x** "
                f"| {f['errors']} |")
        lines.append("")
    sv = [f for f in figures if f.get("suite") == "serve-mode"]
    if sv:
        lines += ["The same tiles through `microtome serve` (one process, catalog on "
                  "PostgreSQL, private project) against `microtome tiles --workers 1` (one "
                  "process) on the same pyramid, with `wrk`, passes ordered tiles, serve, "
                  "serve, tiles. Goal: >= 90 % of `microtome tiles`."
                  + (f" (This part was measured {sv[0]['measured']}.)" if "measured" in sv[0]
                     else ""), "",
                  "| credential | tiles tiles/s | serve tiles/s | serve / tiles "
                  "| tiles CPU ms/tile | serve CPU ms/tile | errors |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for f in sv:
            lines.append(
                f"| {f['credential']} | {f['rps']['tiles']:.0f} | {f['rps']['serve']:.0f} "
                f"| **{f['throughput_ratio']:.0%}** | {f['cpu_ms_per_request']['tiles']:.3f} "
                f"| {f['cpu_ms_per_request']['serve']:.3f} | {f['errors']} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.floor",
                                 description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="shorter passes, one round")
    ap.add_argument("--only", choices=("floor", "serve"), help="one of the two parts")
    args = ap.parse_args(argv)
    last = records.load("floor") if args.only else None
    rec = records.Recording("floor", "python -m bench.floor"
                            f"{' --quick' if args.quick else ''}"
                            f"{f' --only {args.only}' if args.only else ''}", quick=args.quick)
    t0 = time.time()
    bench(BENCH / "work" / "floor", args.quick,
          lambda m: print(f"[{time.time() - t0:6.0f} s] {m}", flush=True), rec.add,
          (args.only,) if args.only else ("floor", "serve"))
    if last:  # one part re-measured: the other part's figures stay, with the old date
        kept = "floor-tiles" if args.only == "serve" else "serve-mode"
        load = last.get("load") or {}
        when = (f"{last['date']} with `{last['command']}`, 1-min load average "
                f"{(load.get('start') or ['?'])[0]} at start, {(load.get('end') or ['?'])[0]} "
                "at end")
        rec.figures += [{**f, "measured": f.get("measured", when)} for f in last["figures"]
                        if f.get("suite") == kept]
    print(render(rec.figures))
    print(f"wrote {records.save_and_report(rec)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
