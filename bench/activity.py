"""Activity logging cost: 1,000 live viewers, each sending its position every 2 s,
against tile serving in the same `microtome serve` process.

Phases of equal length, in this order: tiles alone, viewers alone, tiles with
viewers, tiles alone again.  Tiles come from a separate load-generator process
(bench/load.py, concurrency 16, Deep Zoom tiles of a converted sample slide,
all answered from the tile cache after the first pass: the cheapest tiles and
so the case where any event-loop work added by activity shows most); the
viewers are a second separate process holding 1,000 WebSockets (one user and
session each, staggered phases).  Server CPU is read from /proc for the
server's process tree.  Figures: tiles/s with and without the viewers, server
CPU per tile, and the server CPU the viewers cost alone.

Standalone:  python -m bench.activity [--viewers 1000] [--seconds 20] [--out FILE]
From the suite runner:  run(ctx) -> list[dict], render(records) -> str.
Viewer process (internal):  python -m bench.activity --viewer-process ...
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench import records
from bench.dbsetup import default_dsn, scratch_database, start_serve

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SAMPLE = REPO.parent / "shared" / "testdata" / "CMU-1-Small-Region.svs"
INTERVAL_S = 2.0
TILE_CONCURRENCY = 16


# -- the viewer process ----------------------------------------------------------------
async def _viewers(base: str, tokens: list[str], image_id: int, interval: float) -> None:
    import aiohttp

    sent = errors = 0
    all_in = asyncio.Event()

    def settled() -> None:
        if len(ready) + errors >= len(tokens):
            all_in.set()

    stop = asyncio.Event()
    active = asyncio.Event()  # SIGUSR1 pauses the positions, SIGUSR2 resumes them
    active.set()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, active.clear)
    loop.add_signal_handler(signal.SIGUSR2, active.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    async def one(token: str, session: aiohttp.ClientSession) -> None:
        nonlocal sent, errors
        url = base.replace("http", "ws", 1) + f"/api/live?image_id={image_id}"
        try:
            async with session.ws_connect(url, headers={
                    "Cookie": f"microtome_session={token}"}, heartbeat=None) as ws:
                ready.append(1)
                settled()
                await asyncio.sleep(random.random() * interval)  # staggered phases
                x, y = random.random() * 2000, random.random() * 2000
                while not stop.is_set():
                    await active.wait()
                    x, y = x + random.uniform(-50, 50), y + random.uniform(-50, 50)
                    await ws.send_str(orjson.dumps({"x": x, "y": y, "w": 800.0,
                                                    "h": 450.0}).decode())
                    sent += 1
                    await asyncio.sleep(interval)
        except (aiohttp.ClientError, OSError) as exc:
            errors += 1
            settled()
            print(f"viewer error: {exc!r}", file=sys.stderr, flush=True)

    ready: list[int] = []
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as session:
        tasks = []
        for t in tokens:  # open gradually: a login storm is not what is measured
            tasks.append(asyncio.create_task(one(t, session)))
            await asyncio.sleep(0.002)
        await all_in.wait()
        print(orjson.dumps({"ready": len(ready), "errors": errors}).decode(), flush=True)
        await stop.wait()  # until the bench sends SIGTERM
        print(orjson.dumps({"sent": sent}).decode(), flush=True)
        for task in tasks:
            task.cancel()


def viewer_main(args: argparse.Namespace) -> int:
    tokens = Path(args.tokens).read_text().split()
    try:
        import uvloop

        uvloop.run(_viewers(args.base, tokens, args.image, args.interval))
    except ImportError:
        asyncio.run(_viewers(args.base, tokens, args.image, args.interval))
    return 0


# -- set-up ----------------------------------------------------------------------------
async def _seed(db: str, viewers: int, images_dir: Path, pyramid: Path
                ) -> tuple[int, list[str], int]:
    """A public project with one ready image and `viewers` users with a session each."""
    import asyncpg

    from microtome.catalog.images import register_image
    from microtome.catalog.storage import storage_relpath

    pool = await asyncpg.create_pool(db, min_size=1, max_size=2)
    try:
        pid = await pool.fetchval("INSERT INTO projects (name, public) VALUES ('bench', true)"
                                  " RETURNING id")
        iid = await register_image(pool, name="sample", relpath="pending", width=2220,
                                   height=2967, levels=5, project_id=pid)
        await pool.execute("UPDATE images SET storage_path = $2 WHERE id = $1", iid,
                           storage_relpath(iid))
        dst = images_dir / storage_relpath(iid)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(pyramid, dst)
        ids = await pool.fetch(
            "INSERT INTO users (username) SELECT 'viewer' || g FROM generate_series(1, $1) g"
            " RETURNING id", viewers)
        tokens = [secrets.token_urlsafe(32) for _ in ids]
        await pool.executemany(
            "INSERT INTO sessions (token_hash, csrf_token, user_id, expires_at)"
            " VALUES ($1, 'x', $2, now() + interval '1 day')",
            [(hashlib.sha256(t.encode()).digest(), r["id"]) for t, r in zip(tokens, ids,
                                                                          strict=True)])
        return iid, tokens, pid
    finally:
        await pool.close()


def _tile_paths(image_id: int, width: int, height: int, n: int) -> list[str]:
    import math

    top = math.ceil(math.log2(max(width, height)))
    paths = []
    for level in range(top - 3, top + 1):  # the levels a viewer pans over
        scale = 2 ** (top - level)
        cols, rows = math.ceil(width / scale / 254), math.ceil(height / scale / 254)
        paths += [f"/dzi/{image_id}_files/{level}/{c}_{r}.jpeg" for c in range(cols)
                  for r in range(rows)]
    rng = random.Random(7)
    return [rng.choice(paths) for _ in range(n)]


def _tiles(base: str, paths_file: Path, seconds: float, log: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.load", "--base", base, "--paths", str(paths_file),
         "--concurrency", str(TILE_CONCURRENCY), "--max-seconds", str(seconds)],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=seconds + 60)
    log.write_text(out.stderr)
    return orjson.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def bench(viewers: int, seconds: float, dsn: str, workdir: Path, log: Callable[[str], None],
          record: Callable[[dict[str, Any]], None]) -> None:
    from bench.procs import tree_cpu_seconds
    from microtome.converters import convert

    workdir.mkdir(parents=True, exist_ok=True)
    pyramid = workdir / "sample.ome.zarr"
    if not (pyramid / "zarr.json").exists():
        shutil.rmtree(pyramid, ignore_errors=True)
        convert(SAMPLE, pyramid)
    var = workdir / "var"
    shutil.rmtree(var, ignore_errors=True)
    server = viewer_proc = None
    with scratch_database(dsn, "microtome_bench_act") as db:
        try:
            server, base = start_serve(db, workdir, var)
            iid, tokens, _pid = asyncio.run(_seed(db, viewers, var / "images", pyramid))
            paths_file = workdir / "tiles.txt"
            paths_file.write_text("\n".join(_tile_paths(iid, 2220, 2967, 2_000_000)))
            tokens_file = workdir / "tokens.txt"
            tokens_file.write_text("\n".join(tokens))
            _tiles(base, paths_file, 3, workdir / "warm.log")  # fill the tile cache
            results: dict[str, dict[str, Any]] = {}

            def phase(name: str, tiles: bool, viewers_on: bool) -> None:
                assert viewer_proc is not None
                viewer_proc.send_signal(signal.SIGUSR2 if viewers_on else signal.SIGUSR1)
                time.sleep(INTERVAL_S if viewers_on else 0.5)  # steady state
                cpu0, t0 = tree_cpu_seconds(server.pid), time.perf_counter()
                vcpu0 = tree_cpu_seconds(viewer_proc.pid)
                if tiles:
                    res = _tiles(base, paths_file, seconds, workdir / f"{name}.log")
                else:
                    time.sleep(seconds)
                    res = {}
                wall = time.perf_counter() - t0
                cpu = tree_cpu_seconds(server.pid) - cpu0
                rec = {"suite": "activity", "phase": name, "viewers": viewers if viewers_on
                       else 0, "seconds": wall,
                       "viewer_process_cpu_pct": 100 * (tree_cpu_seconds(viewer_proc.pid) - vcpu0)
                       / wall, "server_cpu_s": cpu,
                       "server_cpu_pct": 100 * cpu / wall, "tiles_per_s": res.get("rps", 0.0),
                       "tile_p50_ms": res.get("p50_ms"), "tile_p99_ms": res.get("p99_ms"),
                       "tile_errors": res.get("errors", 0),
                       "server_cpu_ms_per_tile": (1000 * cpu / res["ok"]) if res.get("ok")
                       else None}
                results[name] = rec
                record(rec)
                log(f"{name}: {rec['tiles_per_s']:.0f} tiles/s, server CPU "
                    f"{rec['server_cpu_pct']:.1f}% of a core")

            viewer_proc = subprocess.Popen(
                [sys.executable, "-m", "bench.activity", "--viewer-process", "--base", base,
                 "--tokens", str(tokens_file), "--image", str(iid), "--interval",
                 str(INTERVAL_S)], cwd=REPO, stdout=subprocess.PIPE, stderr=open(
                    workdir / "viewers.log", "w"), text=True, start_new_session=True)
            assert viewer_proc.stdout is not None
            ready = orjson.loads(viewer_proc.stdout.readline() or "{}")
            log(f"viewers connected: {ready}")
            time.sleep(INTERVAL_S * 2)  # every viewer has sent once: steady state
            events0 = asyncio.run(_count(db))
            # A B B A: drift on a shared machine hits both sides alike.  In A phases the
            # viewers stay connected but silent (their sockets cost nothing while idle).
            phase("tiles, viewers silent", True, False)
            phase("tiles + viewers", True, True)
            phase("viewers only", False, True)
            phase("tiles + viewers (2)", True, True)
            phase("tiles, viewers silent (2)", True, False)
            viewer_proc.terminate()
            sent = orjson.loads(viewer_proc.stdout.readline() or "{}").get("sent", 0)
            viewer_proc.wait(10)
            viewer_proc = None
            time.sleep(2)  # the batch writer's last flush
            events = asyncio.run(_count(db)) - events0

            def mean(names: list[str], key: str) -> float:
                return sum(results[n][key] for n in names) / len(names)

            without = ["tiles, viewers silent", "tiles, viewers silent (2)"]
            with_ = ["tiles + viewers", "tiles + viewers (2)"]
            base_rate = mean(without, "tiles_per_s")
            with_rate = mean(with_, "tiles_per_s")
            summary = {"suite": "activity-summary", "viewers": viewers,
                       "connected": ready.get("ready", 0), "connect_errors": ready.get("errors"),
                       "interval_s": INTERVAL_S, "messages_sent": sent,
                       "events_recorded_during_phases": events,
                       "tiles_per_s_without": base_rate, "tiles_per_s_with": with_rate,
                       "tile_throughput_change_pct": 100 * (with_rate - base_rate) / base_rate,
                       "server_cpu_ms_per_tile_without": mean(without, "server_cpu_ms_per_tile"),
                       "server_cpu_ms_per_tile_with": mean(with_, "server_cpu_ms_per_tile"),
                       "viewers_only_cpu_pct_of_core": results["viewers only"]["server_cpu_pct"]}
            record(summary)
            log(f"summary: {summary}")
        finally:
            if viewer_proc is not None:
                viewer_proc.kill()
            if server is not None:
                server.stop()


async def _count(db: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(db)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM activity_events"))
    finally:
        await conn.close()


def run(ctx: Any) -> None:
    """Entry point for `python -m bench` (bench.run.SuiteContext)."""
    bench(1000, 10.0 if ctx.quick else 20.0, default_dsn(), ctx.workdir / "activity",
          ctx.log, ctx.record)


def render(records: list[dict[str, Any]]) -> str:
    phases = [r for r in records if r.get("suite") == "activity"]
    summary = next((r for r in records if r.get("suite") == "activity-summary"), None)
    if not phases:
        return ("## Activity logging vs tile serving\n\nNot part of this run "
                "(`python -m bench.activity`).\n")
    lines = ["## Activity logging vs tile serving", "",
             "One `microtome serve` process; tiles from a load-generator process "
             f"(concurrency {TILE_CONCURRENCY}, cached Deep Zoom tiles: the cheapest tiles, "
             "where added event-loop work shows most); 1,000 viewers from another process, "
             "each its own user on its own WebSocket, sending a position every "
             f"{INTERVAL_S:.0f} s (staggered). Phases A B B A; in A the viewers stay "
             "connected but silent. All three processes share the machine's cores.", "",
             "| phase | viewers sending | tiles/s | tile p50 ms | tile p99 ms | server CPU "
             "(% of a core) | server CPU ms/tile | viewer process CPU % |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in phases:
        per = r["server_cpu_ms_per_tile"]
        tiles = (f"{r['tiles_per_s']:.0f} | {r['tile_p50_ms'] or 0:.1f} | "
                 f"{r['tile_p99_ms'] or 0:.1f}") if per is not None else "– | – | –"
        lines.append(f"| {r['phase']} | {r['viewers']} | {tiles} | {r['server_cpu_pct']:.1f} | "
                     f"{'–' if per is None else f'{per:.3f}'} | "
                     f"{r.get('viewer_process_cpu_pct', 0):.1f} |")
    if summary:
        s = summary
        lines += ["", f"- {s['connected']} of {s['viewers']} viewers connected "
                      f"({s['connect_errors']} errors); {s['messages_sent']:,} positions sent, "
                      f"{s['events_recorded_during_phases']:,} events recorded (one position "
                      "per viewer per 2 s, written in batches).",
                  f"- Server CPU the viewers cost on their own: "
                  f"**{s['viewers_only_cpu_pct_of_core']:.1f}% of one core**.",
                  f"- Server CPU per tile: {s['server_cpu_ms_per_tile_without']:.3f} ms "
                  f"without, {s['server_cpu_ms_per_tile_with']:.3f} ms with the viewers "
                  "(the latter includes the viewers' own work during the phase).",
                  f"- Tiles/s: {s['tiles_per_s_without']:.0f} without, "
                  f"{s['tiles_per_s_with']:.0f} with the viewers "
                  f"({s['tile_throughput_change_pct']:+.1f}%)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--viewers", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    ap.add_argument("--dsn", default=default_dsn())
    ap.add_argument("--workdir", type=Path, default=BENCH / "work" / "activity")
    ap.add_argument("--viewer-process", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--base", help=argparse.SUPPRESS)
    ap.add_argument("--tokens", help=argparse.SUPPRESS)
    ap.add_argument("--image", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--interval", type=float, default=INTERVAL_S, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.viewer_process:
        return viewer_main(args)
    rec = records.Recording("activity", "python -m bench.activity "
                            f"--viewers {args.viewers} --seconds {args.seconds:g}")

    def record(fig: dict[str, Any]) -> None:
        rec.add(fig)
        print(orjson.dumps(fig).decode(), flush=True)

    bench(args.viewers, args.seconds, args.dsn, args.workdir,
          lambda m: print(m, file=sys.stderr, flush=True), record)
    print(render(rec.figures))
    print(f"wrote {records.save_and_report(rec)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
