"""``python -m bench.scaleout``: 1 vs 2 `microtome tiles` processes behind HAProxy.

Measures, on one slide (the bench's generated slide, 16384 x 12288 by default,
converted to OME-Zarr once and cached under bench/data/):
- cost per tile on one process: server CPU seconds and bytes per tile, for
  stored-JPEG pass-through tiles (warm: served from the encoded-tile cache;
  cold: cache off) and for re-encoded PNG tiles (decode + encode, cache off);
- the encoded-tile cache's hit ratio (from the server's /metrics) when 1 and
  8 viewers pan the same slide (bench/tilelists.panning, one seed per viewer);
- throughput of 1 and 2 tile processes behind HAProxy (CPU-bound PNG tiles,
  cache off, same request list, order 1-2-2-1 and averaged) and HAProxy's own
  CPU per tile.
The machine's load average is recorded with the figures: other work on a
shared machine lowers every number, the ratio most.  Saves the record
``bench/records/scaleout.json`` (RESULTS.md is regenerated) and prints a Markdown table.
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

from bench import records
from bench.procs import free_port, tree_cpu_seconds
from bench.tilelists import panning

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def _wait(url: str, timeout: float = 60) -> None:
    import urllib.request

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=2):
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


def _slide(width: int, height: int) -> Path:
    """The bench slide as OME-Zarr, converted once (bench/data/, not in git)."""
    from bench.slide import ensure_slide
    from microtome.converters import ConvertOptions, convert

    root = DATA / f"scaleout-{width}x{height}"
    store = root / "slide.ome.zarr"
    if not (store / "zarr.json").exists():
        convert(ensure_slide(DATA, width, height), store, ConvertOptions(overwrite=True))
    return root


def _metrics(port: int) -> dict[str, float]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            name = name.split("{", 1)[0]  # labels (pid=...) summed over
            out[name] = out.get(name, 0.0) + float(value)
    return out


def _viewers(width: int, height: int, n_viewers: int, per_viewer: int) -> list[str]:
    """`n_viewers` people panning the same slide, their requests interleaved."""
    lists = [panning(width, height, per_viewer, seed=100 + v) for v in range(n_viewers)]
    out = []
    for i in range(per_viewer):
        out += [f"/dzi/slide_files/{lv}/{x}_{y}.jpg" for lst in lists if i < len(lst)
                for lv, x, y in [lst[i]]]
    return out


def _hit_ratio(root: Path, paths: list[str], work: Path) -> dict[str, Any]:
    p, port = _tiles(root, 256, 2)
    try:
        _load(f"http://127.0.0.1:{port}", paths, 120, 8, work)
        m = _metrics(port)
    finally:
        p.terminate()
        p.wait()
    hits = m.get("microtome_tile_cache_hits_total", 0.0)
    misses = m.get("microtome_tile_cache_misses_total", 0.0)
    return {"requests": len(paths), "distinct": len(set(paths)),
            "hit_ratio": round(hits / max(1.0, hits + misses), 3)}


def _balanced(root: Path, n: int, paths: list[str], seconds: float, concurrency: int,
              work: Path) -> dict[str, Any]:
    backs = [_tiles(root, 0, 1) for _ in range(n)]
    lb, port = _haproxy([b[1] for b in backs], work)
    try:
        m = _measure([lb, *(b[0] for b in backs)], f"http://127.0.0.1:{port}", paths,
                     seconds, concurrency, work)
    finally:
        lb.terminate()
        lb.wait()
        for b in backs:
            b[0].terminate()
            b[0].wait()
    m["haproxy_cpu_ms_per_tile"] = m["cpu_ms_per_tile"][0]
    m["cpu_ms_per_tile"] = m["cpu_ms_per_tile"][1:]
    return m


def measure(seconds: float, concurrency: int, width: int, height: int) -> dict[str, Any]:
    root = _slide(width, height)
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp:
        work = Path(tmp)
        one = _viewers(width, height, 1, 2000)
        jpg = _viewers(width, height, 8, 500)
        png = [p.replace(".jpg", ".png") for p in jpg]
        res: dict[str, Any] = {"slide": [width, height], "load_avg_before": os.getloadavg(),
                               "cpus": os.cpu_count()}
        res["hits_1_viewer"] = _hit_ratio(root, one, work)
        res["hits_8_viewers"] = _hit_ratio(root, jpg, work)
        # Cost per tile on one process (2 threads).
        for name, cache, paths in (("jpg_cold", 0, jpg), ("jpg_warm", 256, jpg),
                                   ("png_cold", 0, png)):
            p, port = _tiles(root, cache, 2)
            try:
                if name == "jpg_warm":  # fill the cache with the same list first
                    _load(f"http://127.0.0.1:{port}", jpg, 120, 8, work)
                res[name] = _measure([p], f"http://127.0.0.1:{port}", paths, seconds,
                                     concurrency, work)
            finally:
                p.terminate()
                p.wait()
        # 1 vs 2 processes (1 thread each) behind HAProxy: CPU-bound PNG tiles, cache
        # off, the same list; order 1-2-2-1 so a drift in the machine's load hits both.
        runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
        for n in (1, 2, 2, 1):
            runs[n].append(_balanced(root, n, png, seconds, concurrency, work))
        for n, ms in runs.items():
            m = dict(ms[0])
            m["rps"] = round(sum(x["rps"] for x in ms) / len(ms), 1)
            m["rps_runs"] = [x["rps"] for x in ms]
            m["haproxy_cpu_ms_per_tile"] = round(
                sum(x["haproxy_cpu_ms_per_tile"] for x in ms) / len(ms), 3)
            res[f"balanced_{n}"] = m
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
    h1, h8 = res["hits_1_viewer"], res["hits_8_viewers"]
    rows += ["", f"2 vs 1 processes behind HAProxy: x{res['ratio_2_vs_1']} "
             f"(runs 1-2-2-1: {res['balanced_1']['rps_runs']} / "
             f"{res['balanced_2']['rps_runs']} tiles/s; HAProxy CPU ms/tile: "
             f"{res['balanced_1']['haproxy_cpu_ms_per_tile']}, "
             f"{res['balanced_2']['haproxy_cpu_ms_per_tile']}); tile cache hit ratio: "
             f"{h1['hit_ratio']} for 1 viewer ({h1['requests']} requests, {h1['distinct']} "
             f"distinct), {h8['hit_ratio']} for 8 viewers ({h8['requests']} requests, "
             f"{h8['distinct']} distinct); slide {res['slide']}; load average before/after: "
             f"{[round(x, 2) for x in res['load_avg_before']]} / "
             f"{[round(x, 2) for x in res['load_avg_after']]} on {res['cpus']} CPUs"]
    return "\n".join(rows)


SECTION = "## Scale-out: 1 vs 2 tile processes behind HAProxy"


def render(records: list[dict[str, Any]]) -> str:
    """The RESULTS.md section (bench.run's extra-suite interface)."""
    res = next((r for r in records if r.get("suite") == "scaleout"), None)
    if res is None:
        return ""
    return "\n".join([SECTION, "", markdown(res), "",
                      "Cost per tile on one process (2 threads); the balanced runs use 1 thread "
                      "per process, PNG tiles with the tile cache off (CPU-bound); see "
                      "docs/SCALING.md for what these figures mean for capacity.", ""])


def run(ctx: Any) -> list[dict[str, Any]]:
    """Entry point for `python -m bench` (bench.run.SuiteContext)."""
    res = measure(ctx.pass_seconds if not ctx.quick else 5.0, 16,
              *((8192, 6144) if ctx.quick else (16384, 12288)))
    res["suite"] = "scaleout"
    ctx.record(res)
    return [res]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.scaleout",
                                 description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=10.0, help="per measured pass")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--size", default="16384x12288", help="slide WIDTHxHEIGHT")
    args = ap.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    rec = records.Recording("scaleout", f"python -m bench.scaleout --seconds {args.seconds:g} "
                            f"--concurrency {args.concurrency} --size {args.size}")
    rec.add({**measure(args.seconds, args.concurrency, width, height), "suite": "scaleout"})
    print(markdown(rec.figures[0]))
    print(f"wrote {records.save_and_report(rec)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
