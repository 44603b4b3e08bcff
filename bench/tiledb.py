"""TileDB arrays vs OME-Zarr: conversion time and tile throughput, in one run.

One generated slide (bench/slide.py) is converted twice by the CLI:
``microtome convert`` (OME-Zarr, JPEG chunks in shards) and ``microtome
convert --format tiledb`` (the same decoded pixels as TileDB dense arrays,
zstd tiles; pyramid/tiledbstore.py).  Then ``microtome tiles --workers 1``
serves each, blocks zarr, tiledb, tiledb, zarr (ABBA), each block a fresh
server with the encoded-tile cache off: the first pass over the panning list
is "cold" (a fresh process: no opened arrays, no decoded chunks; the OS page
cache is not dropped), the same list again is "warm".  Two tile kinds: JPEG
(OME-Zarr passes its stored chunks through; TileDB decodes and re-encodes)
and PNG (both decode pixels and encode).

Standalone:  python -m bench.tiledb [--quick] [--size WxH] [--tiles N]
Saved as the ``tiledb`` record (bench/records/tiledb.json, with the load
average; RESULTS.md is generated from it).  From the suite runner
(bench.run.EXTRA_SUITES): run(ctx), render(records).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import records

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PY = sys.executable
FORMATS = ("zarr", "tiledb")
KINDS = ("jpg", "png")


def _convert(svs: Path, out: Path, fmt: str) -> float:
    """Seconds for one CLI conversion of ``svs`` into the folder ``out``."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    argv = [PY, "-m", "microtome", "convert", str(svs), "-o", str(out), "--quality", "75"]
    if fmt == "tiledb":
        argv += ["--format", "tiledb"]
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    # One id for both: the slide is "slide" in each root.
    for p in out.iterdir():
        if p.name.endswith((".ome.zarr", ".tdb")):
            p.rename(out / ("slide.tdb" if fmt == "tiledb" else "slide.ome.zarr"))
    return seconds


def _tile_url(kind: str) -> Callable[[int, int, int], str]:
    def url(level: int, col: int, row: int) -> str:
        return f"/dzi/slide_files/{level}/{col}_{row}.{kind}"

    return url


def _stored_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def tiles(work: Path, width: int, height: int, n: int, log: Any = print
          ) -> list[dict[str, Any]]:
    from bench import slide, tilelists
    from bench.procs import Proc, free_port
    from bench.run import DATA, load_pass, write_paths
    from bench.servers import ServerSpec

    svs = slide.ensure_slide(DATA, width, height, log=log)
    roots = {fmt: work / fmt for fmt in FORMATS}
    records: list[dict[str, Any]] = []
    setup: dict[str, Any] = {"suite": "tiledb-setup", "width": width, "height": height}
    for fmt in FORMATS:
        log(f"tiledb bench: converting {svs.name} to {fmt}")
        setup[f"{fmt}_convert_s"] = round(_convert(svs, roots[fmt], fmt), 2)
        setup[f"{fmt}_stored_mb"] = round(_stored_bytes(roots[fmt]) / 1e6, 1)
    tl = tilelists.panning(width, height, n, seed=13)
    setup["tiles"] = len(tl)
    records.append(setup)
    log(f"tiledb bench: {setup}")

    def argv(where: Path) -> Any:
        return lambda port, _w: [PY, "-m", "microtome", "tiles", "--root", str(where),
                                 "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]

    logdir = work / "logs"
    env = {"MICROTOME_TILE_CACHE_MB": "0"}
    for block, fmt in enumerate(("zarr", "tiledb", "tiledb", "zarr")):
        for kind in KINDS:
            spec = ServerSpec(name=f"tiledb-bench-{fmt}", setup="", make_argv=argv(roots[fmt]),
                              ready_path="/dzi/slide.dzi",
                              tile=_tile_url(kind))
            spec.port = free_port()
            spec.proc = Proc(spec.name, spec.make_argv(spec.port, logdir),
                             logdir / f"{spec.name}.log", env=env, cwd=REPO)
            spec.proc.start()
            try:
                spec.proc.wait_ready(spec.base + spec.ready_path)
                paths = write_paths(spec, f"tiledb-{kind}", [spec.tile(*t) for t in tl])
                for phase in ("cold", "warm"):
                    res = load_pass(spec, paths, 0, 8, 600.0)
                    rec = {"suite": "tiledb-tiles", "format": fmt, "kind": kind,
                           "phase": phase, "block": block, "concurrency": 8, **res}
                    records.append(rec)
                    log(f"tiledb bench {fmt} {kind} {phase}: {res['rps']:.0f} tiles/s, "
                        f"p99 {res['p99_ms']:.1f} ms, errors {res['errors']}")
            finally:
                spec.stop()
    return records


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean tiles/s per (kind, phase) and format, and the TileDB / OME-Zarr ratio."""
    rows = [r for r in records if r.get("suite") == "tiledb-tiles"]
    out: dict[str, Any] = {}
    for kind in KINDS:
        for phase in ("cold", "warm"):
            rps = {f: statistics.mean(r["rps"] for r in rows if r["format"] == f
                                      and r["kind"] == kind and r["phase"] == phase)
                   for f in FORMATS if any(r["format"] == f and r["kind"] == kind
                                           and r["phase"] == phase for r in rows)}
            errors = sum(r["errors"] for r in rows if r["kind"] == kind and r["phase"] == phase)
            if len(rps) == 2:
                out[f"{kind}-{phase}"] = {"zarr_rps": round(rps["zarr"], 1),
                                          "tiledb_rps": round(rps["tiledb"], 1),
                                          "ratio": round(rps["tiledb"] / rps["zarr"], 3),
                                          "errors": errors}
    return out


def run(ctx: Any) -> list[dict[str, Any]]:
    """Entry point for `python -m bench` (bench.run.SuiteContext)."""
    size = (8192, 6144) if ctx.quick else (16384, 12288)
    recs = tiles(ctx.workdir / "tiledb", *size, 800 if ctx.quick else 1500, ctx.log)
    for r in recs:
        ctx.record(r)
    return recs


def render(records: list[dict[str, Any]]) -> str:
    lines = ["## TileDB arrays vs OME-Zarr", ""]
    setup = next((r for r in records if r.get("suite") == "tiledb-setup"), None)
    s = summary(records)
    load = next((r.get("loadavg") for r in records if r.get("loadavg")), None)
    if setup:
        lines += [f"- Conversion of a {setup['width']} x {setup['height']} slide by the CLI: "
                  f"OME-Zarr {setup['zarr_convert_s']} s ({setup['zarr_stored_mb']} MB, "
                  f"JPEG chunks), TileDB {setup['tiledb_convert_s']} s "
                  f"({setup['tiledb_stored_mb']} MB, the same pixels losslessly in zstd "
                  f"tiles; the OME-Zarr conversion is its first step)."
                  + (f" Load average {load[0]:.1f}." if load else ""), ""]
    if s and setup:
        lines += [f"- Tiles: {setup['tiles']} panning DZI tiles, concurrency 8, "
                  f"`microtome tiles --workers 1`, encoded-tile cache off, blocks zarr, tiledb, "
                  f"tiledb, zarr; cold = a fresh server's first pass, warm = the same tiles "
                  f"again:", "",
                  "| tiles | pass | OME-Zarr tiles/s | TileDB tiles/s | TileDB / OME-Zarr |",
                  "|---|---|---:|---:|---:|"]
        for key, v in s.items():
            kind, phase = key.split("-")
            lines.append(f"| {kind.upper()} | {phase} | {v['zarr_rps']} | {v['tiledb_rps']} | "
                         f"{v['ratio']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from bench.run import WORK

    ap = argparse.ArgumentParser(prog="python -m bench.tiledb",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--size", default=None, help="slide WIDTHxHEIGHT")
    ap.add_argument("--tiles", type=int, default=None)
    args = ap.parse_args(argv)
    w, h = ((int(v) for v in args.size.lower().split("x")) if args.size else
            ((8192, 6144) if args.quick else (16384, 12288)))
    n = args.tiles or (800 if args.quick else 1500)
    rec = records.Recording("tiledb", "python -m bench.tiledb"
                            + (" --quick" if args.quick else "")
                            + (f" --size {args.size}" if args.size else "")
                            + (f" --tiles {args.tiles}" if args.tiles else ""))
    for r in tiles(WORK / "tiledb", w, h, n):
        r["loadavg"] = list(os.getloadavg())
        rec.add(r)
    print(render(rec.figures))
    print(f"wrote {records.save_and_report(rec)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
