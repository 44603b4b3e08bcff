"""``python -m bench.scaleout``: 1 vs 2 `microtome tiles` processes behind HAProxy.

Measures, on one slide (the CMU sample converted to OME-Zarr):
- cost per tile on one process: server CPU seconds and bytes per tile, for
  stored-JPEG pass-through tiles (warm: served from the encoded-tile cache;
  cold: cache off) and for re-encoded PNG tiles (decode + encode, cache off);
- the viewer-like request list's repeat ratio (the best hit ratio any cache
  can reach on it) and the measured warm/cold throughput;
- throughput of 1 and 2 tile processes behind HAProxy (CPU-bound PNG tiles,
  cache off, same request list) and HAProxy's own CPU per tile.
The machine's load average is recorded with the figures: other work on a
shared machine lowers every number, the ratio most.  Writes
``bench/results/scaleout.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.procs import free_port, tree_cpu_seconds
from bench.tilelists import panning

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT.parent / "shared" / "testdata" / "CMU-1-Small-Region.svs"
RESULTS = Path(__file__).resolve().parent / "results" / "scaleout.json"
WIDTH, HEIGHT = 2220, 2967


def _wait(url: str, timeout: float = 60) -> None:
    import urllib.request

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback
                return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def _tiles(root: Path, cache_mb: int, threads: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "MICROTOME_TILE_CACHE_MB": str(cache_mb)}
    p = subprocess.Popen([sys.executable, "-m", "microtome", "tiles", "--root", str(root),
                          "--port", str(port), "--threads", str(threads)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    _wait(f"http://127.0.0.1:{port}/metrics")
    return p, port


def _haproxy(ports: list[int], workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    servers = "\n".join(f"    server t{i} 127.0.0.1:{p}" for i, p in enumerate(ports))
    cfg = workdir / f"haproxy-{len(ports)}.cfg"
    cfg.write_text(f"""global
    maxconn 2000
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend f
    bind 127.0.0.1:{port}
    default_backend b
backend b
    balance roundrobin
    http-reuse always
{servers}
""")
    p = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    _wait(f"http://127.0.0.1:{port}/metrics")
    return p, port


def _load(base: str, paths: list[str], seconds: float, concurrency: int,
          workdir: Path) -> dict[str, Any]:
    lst = workdir / "paths.txt"
    lst.write_text("\n".join(paths))
    out = subprocess.run([sys.executable, "-m", "bench.load", "--base", base, "--paths",
                          str(lst), "--concurrency", str(concurrency), "--max-seconds",
                          str(seconds)], capture_output=True, text=True, check=True, cwd=ROOT)
    return dict(json.loads(out.stdout))


def _measure(procs: list[subprocess.Popen[bytes]], base: str, paths: list[str],
             seconds: float, concurrency: int, workdir: Path) -> dict[str, Any]:
    cpu0 = [tree_cpu_seconds(p.pid) for p in procs]
    r = _load(base, paths, seconds, concurrency, workdir)
    cpu = [tree_cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0, strict=True)]
    ok = max(1, r["ok"])
    return {"rps": round(r["rps"], 1), "ok": r["ok"], "errors": r["errors"],
            "p50_ms": round(r["p50_ms"], 1), "p99_ms": round(r["p99_ms"], 1),
            "bytes_per_tile": round(r["bytes"] / ok), "cpu_ms_per_tile": [
                round(c / ok * 1e3, 3) for c in cpu], "client_cpu_s": round(r["client_cpu_s"], 2)}


def run(seconds: float, concurrency: int) -> dict[str, Any]:
    from converters import ConvertOptions, convert

    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp:
        work = Path(tmp)
        root = work / "root"
        convert(SAMPLE, root / "cmu.ome.zarr", ConvertOptions())
        viewer = panning(WIDTH, HEIGHT, 400, seed=7)
        jpg = [f"/dzi/cmu_files/{lv}/{x}_{y}.jpg" for lv, x, y in viewer]
        png = [p.replace(".jpg", ".png") for p in jpg]
        distinct = len(set(viewer))
        res: dict[str, Any] = {
            "load_avg_before": os.getloadavg(), "cpus": os.cpu_count(),
            "viewer_list": {"requests": len(viewer), "distinct": distinct,
                            "best_hit_ratio": round(1 - distinct / len(viewer), 3)}}
        # Cost per tile on one process.
        for name, cache, paths in (("jpg_cold", 0, jpg), ("jpg_warm", 256, jpg * 20),
                                   ("png_cold", 0, png * 20)):
            p, port = _tiles(root, cache, 2)
            try:
                if name == "jpg_warm":  # fill the cache once
                    _load(f"http://127.0.0.1:{port}", jpg, 30, 4, work)
                res[name] = _measure([p], f"http://127.0.0.1:{port}", paths, seconds,
                                     concurrency, work)
            finally:
                p.terminate()
                p.wait()
        # 1 vs 2 processes behind HAProxy (CPU-bound: PNG, cache off), same list.
        for n in (1, 2):
            backs = [_tiles(root, 0, 1) for _ in range(n)]
            lb, port = _haproxy([b[1] for b in backs], work)
            try:
                m = _measure([lb, *(b[0] for b in backs)], f"http://127.0.0.1:{port}",
                             png * 40, seconds, concurrency, work)
                m["haproxy_cpu_ms_per_tile"] = m["cpu_ms_per_tile"][0]
                m["cpu_ms_per_tile"] = m["cpu_ms_per_tile"][1:]
                res[f"balanced_{n}"] = m
            finally:
                lb.terminate()
                lb.wait()
                for b in backs:
                    b[0].terminate()
                    b[0].wait()
        res["ratio_2_vs_1"] = round(res["balanced_2"]["rps"] / max(0.1, res["balanced_1"]["rps"]),
                                    2)
        res["load_avg_after"] = os.getloadavg()
        return res


def markdown(res: dict[str, Any]) -> str:
    rows = ["| case | tiles/s | server CPU ms/tile | bytes/tile | p50 ms | errors |",
            "|---|---|---|---|---|---|"]
    for k in ("jpg_cold", "jpg_warm", "png_cold", "balanced_1", "balanced_2"):
        m = res[k]
        rows.append(f"| {k} | {m['rps']} | {', '.join(map(str, m['cpu_ms_per_tile']))} | "
                    f"{m['bytes_per_tile']} | {m['p50_ms']} | {m['errors']} |")
    v = res["viewer_list"]
    rows += ["", f"2 vs 1 processes behind HAProxy: x{res['ratio_2_vs_1']} "
             f"(HAProxy CPU ms/tile: {res['balanced_1']['haproxy_cpu_ms_per_tile']}, "
             f"{res['balanced_2']['haproxy_cpu_ms_per_tile']}); viewer list: "
             f"{v['requests']} requests, {v['distinct']} distinct (best hit ratio "
             f"{v['best_hit_ratio']}); load average before/after: "
             f"{[round(x, 2) for x in res['load_avg_before']]} / "
             f"{[round(x, 2) for x in res['load_avg_after']]} on {res['cpus']} CPUs"]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.scaleout",
                                 description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=10.0, help="per measured pass")
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args(argv)
    res = run(args.seconds, args.concurrency)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=1) + "\n")
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
