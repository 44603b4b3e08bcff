"""Load generator: replay a list of URL paths against one server, bounded in time.

Runs as its own process (``python -m bench.load``), never inside a server, and
prints one JSON object: how many requests completed, throughput, latency
percentiles, errors, bytes and the client's own CPU time.  Throughput counts
successful (200) answers only: an error is never throughput.  Workers take paths
in list order; once ``max_seconds`` has passed no new request starts, so the
completed requests are always a prefix of the list (the warm pass replays
exactly that prefix).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

import aiohttp


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


async def replay(base: str, paths: list[str], concurrency: int, max_seconds: float,
                 request_timeout: float = 30.0, headers: dict[str, str] | None = None) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    nbytes = 0
    ok = 0
    next_i = 0
    deadline = time.perf_counter() + max_seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_i, nbytes, ok
        while next_i < len(paths) and time.perf_counter() < deadline:
            path = paths[next_i]
            next_i += 1
            t0 = time.perf_counter()
            try:
                async with session.get(base + path) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        errors[str(resp.status)] = errors.get(str(resp.status), 0) + 1
                    else:
                        ok += 1
                    nbytes += len(body)
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            latencies.append(time.perf_counter() - t0)

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    client_timeout = aiohttp.ClientTimeout(total=request_timeout)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout,
                                     auto_decompress=False, headers=headers) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    lat = sorted(latencies)
    done = len(lat)
    return {
        "requests": done,
        "ok": ok,
        "elapsed_s": elapsed,
        "rps": ok / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(lat, 50) * 1e3,
        "p90_ms": percentile(lat, 90) * 1e3,
        "p99_ms": percentile(lat, 99) * 1e3,
        "max_ms": (lat[-1] if lat else float("nan")) * 1e3,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "bytes": nbytes,
        "client_cpu_s": (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime),
        "timed_out": done < len(paths),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--paths", type=Path, required=True, help="file, one URL path a line")
    ap.add_argument("--limit", type=int, default=0, help="only the first N paths")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-seconds", type=float, default=10.0)
    ap.add_argument("--header", action="append", default=[],
                    help="'Name: value' sent with every request (e.g. a session cookie)")
    args = ap.parse_args(argv)
    headers = dict((k.strip(), v.strip()) for k, v in (h.split(":", 1) for h in args.header))
    paths = args.paths.read_text().split()
    if args.limit:
        paths = paths[: args.limit]
    try:
        import uvloop  # the client must not be the bottleneck
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(replay(args.base, paths, args.concurrency, args.max_seconds,
                           headers=headers or None))
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
