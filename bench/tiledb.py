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

On S3 (the moto server on loopback, bench/s3tiles.py): the same slide
converted by the CLI straight into ``s3://bench/tiledb/`` in each format
(conversion + upload timed), served by ``microtome tiles --root s3://...``
(OME-Zarr through obstore, TileDB through TileDB's own S3 client), blocks
zarr, tiledb, tiledb, zarr again, the S3 server's CPU per pass recorded.

Standalone:  python -m bench.tiledb [--quick] [--size WxH] [--tiles N]
Saved as the ``tiledb`` record (bench/records/tiledb.json, with the load
average; RESULTS.md is generated from it).  From the suite runner
(bench.run.EXTRA_SUITES): run(ctx), render(records).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PY = sys.executable
FORMATS = ("zarr", "tiledb")
KINDS = ("jpg", "png")


def _convert_s3(svs: Path, url: str, fmt: str, env: dict[str, str]) -> float:
    """Seconds for one CLI conversion of ``svs`` straight into the store URL ``url``."""
    argv = [PY, "-m", "microtome", "convert", str(svs), "-o", url, "--quality", "75",
            "--overwrite"]
    if fmt == "tiledb":
        argv += ["--format", "tiledb"]
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, cwd=REPO, stdout=subprocess.DEVNULL,
                   env={**os.environ, **env})
    return time.perf_counter() - t0


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


def tiles(work: Path, width: int, height: int, n: int, log: Any = print,
          moto: Any = None) -> list[dict[str, Any]]:
    """Local conversions and tiles; with ``moto`` (bench.s3tiles.Moto) the same on S3."""
    from bench import slide, tilelists

    svs = slide.ensure_slide(_data_dir(), width, height, log=log)
    roots: dict[str, Path | str] = {fmt: work / fmt for fmt in FORMATS}
    records: list[dict[str, Any]] = []
    setup: dict[str, Any] = {"suite": "tiledb-setup", "width": width, "height": height}
    for fmt in FORMATS:
        log(f"tiledb bench: converting {svs.name} to {fmt}")
        setup[f"{fmt}_convert_s"] = round(_convert(svs, Path(roots[fmt]), fmt), 2)
        setup[f"{fmt}_stored_mb"] = round(_stored_bytes(Path(roots[fmt])) / 1e6, 1)
    s3_root = ""
    if moto is not None:
        from bench.s3tiles import BUCKET

        s3_root = f"s3://{BUCKET}/tiledb"
        for fmt in FORMATS:
            name = "slide.tdb" if fmt == "tiledb" else "slide.ome.zarr"
            log(f"tiledb bench: converting {svs.name} to {fmt} on S3")
            # One prefix per format, as one folder per format locally: the same id
            # ("slide") must not name both (the resolver would find the OME-Zarr first).
            setup[f"{fmt}_s3_convert_s"] = round(
                _convert_s3(svs, f"{s3_root}/{fmt}/{name}", fmt, moto.env), 2)
    tl = tilelists.panning(width, height, n, seed=13)
    setup["tiles"] = len(tl)
    records.append(setup)
    log(f"tiledb bench: {setup}")
    stores: list[tuple[str, dict[str, Path | str], dict[str, str]]] = [("local", roots, {})]
    if moto is not None:
        stores.append(("s3", {fmt: f"{s3_root}/{fmt}" for fmt in FORMATS}, moto.env))
    for where, where_roots, env in stores:
        for block, fmt in enumerate(("zarr", "tiledb", "tiledb", "zarr")):
            for kind in KINDS:
                records += _serve_block(work, where, fmt, kind, block, where_roots[fmt], tl,
                                        env, moto, log)
    return records


def _data_dir() -> Path:  # bench.run is imported late: it imports this module
    from bench.run import DATA

    return DATA


def _serve_block(work: Path, where: str, fmt: str, kind: str, block: int, root: Path | str,
                 tl: list[Any], env: dict[str, str], moto: Any, log: Any
                 ) -> list[dict[str, Any]]:
    """A fresh `microtome tiles` over ``root``: the cold pass, then the warm one."""
    from bench.procs import Proc, free_port, tree_cpu_seconds
    from bench.run import load_pass, write_paths
    from bench.servers import ServerSpec

    logdir = work / "logs"
    spec = ServerSpec(name=f"tiledb-bench-{where}-{fmt}", setup="",
                      make_argv=lambda port, _w: [PY, "-m", "microtome", "tiles", "--root",
                                                  str(root), "--host", "127.0.0.1",
                                                  "--port", str(port), "--workers", "1"],
                      ready_path="/dzi/slide.dzi", tile=_tile_url(kind))
    spec.port = free_port()
    spec.proc = Proc(spec.name, spec.make_argv(spec.port, logdir), logdir / f"{spec.name}.log",
                     env={"MICROTOME_TILE_CACHE_MB": "0", **env}, cwd=REPO)
    spec.proc.start()
    out = []
    try:
        spec.proc.wait_ready(spec.base + spec.ready_path)
        paths = write_paths(spec, f"tiledb-{kind}", [spec.tile(*t) for t in tl])
        for phase in ("cold", "warm"):
            m0 = tree_cpu_seconds(moto.proc.pid) if where == "s3" else 0.0
            res = load_pass(spec, paths, 0, 8, 600.0)
            rec = {"suite": "tiledb-tiles", "store": where, "format": fmt, "kind": kind,
                   "phase": phase, "block": block, "concurrency": 8, **res}
            if where == "s3":
                rec["moto_cpu_s"] = round(tree_cpu_seconds(moto.proc.pid) - m0, 3)
            out.append(rec)
            log(f"tiledb bench {where} {fmt} {kind} {phase}: {res['rps']:.0f} tiles/s, "
                f"p99 {res['p99_ms']:.1f} ms, errors {res['errors']}")
    finally:
        spec.stop()
    return out


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean tiles/s per (store, kind, phase) and format, and the TileDB / OME-Zarr ratio."""
    rows = [r for r in records if r.get("suite") == "tiledb-tiles"]
    out: dict[str, Any] = {}
    for where in ("local", "s3"):
        for kind in KINDS:
            for phase in ("cold", "warm"):
                sel = [r for r in rows if r.get("store", "local") == where
                       and r["kind"] == kind and r["phase"] == phase]
                rps = {f: statistics.mean(r["rps"] for r in sel if r["format"] == f)
                       for f in FORMATS if any(r["format"] == f for r in sel)}
                if len(rps) == 2:
                    out[f"{where}-{kind}-{phase}"] = {
                        "zarr_rps": round(rps["zarr"], 1), "tiledb_rps": round(rps["tiledb"], 1),
                        "ratio": round(rps["tiledb"] / rps["zarr"], 3),
                        "errors": sum(r["errors"] for r in sel)}
    return out


def run(ctx: Any) -> list[dict[str, Any]]:
    """Entry point for `python -m bench` (bench.run.SuiteContext)."""
    from bench.s3tiles import Moto

    size = (8192, 6144) if ctx.quick else (16384, 12288)
    with Moto(ctx.logdir) as moto:
        recs = tiles(ctx.workdir / "tiledb", *size, 800 if ctx.quick else 1500, ctx.log,
                     moto=moto)
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
        if "zarr_s3_convert_s" in setup:
            lines += [f"- Straight into S3 (moto on loopback; conversion + upload): OME-Zarr "
                      f"{setup['zarr_s3_convert_s']} s, TileDB {setup['tiledb_s3_convert_s']} s.",
                      ""]
    if s and setup:
        lines += [f"- Tiles: {setup['tiles']} panning DZI tiles, concurrency 8, "
                  f"`microtome tiles --workers 1`, encoded-tile cache off, blocks zarr, tiledb, "
                  f"tiledb, zarr per store; cold = a fresh server's first pass, warm = the same "
                  f"tiles again:", "",
                  "| store | tiles | pass | OME-Zarr tiles/s | TileDB tiles/s | "
                  "TileDB / OME-Zarr |",
                  "|---|---|---|---:|---:|---:|"]
        for key, v in s.items():
            where, kind, phase = key.split("-")
            lines.append(f"| {where} | {kind.upper()} | {phase} | {v['zarr_rps']} | "
                         f"{v['tiledb_rps']} | {v['ratio']:.2f} |")
        lines.append("")
        moto = [r for r in records if r.get("suite") == "tiledb-tiles" and "moto_cpu_s" in r
                and r["phase"] == "cold" and r["kind"] == "jpg"]
        if moto:
            per = {f: statistics.mean(r["moto_cpu_s"] / max(1, r["ok"]) * 1e3 for r in moto
                                      if r["format"] == f) for f in FORMATS
                   if any(r["format"] == f for r in moto)}
            lines += ["  S3 server (moto) CPU per cold JPEG tile: " + ", ".join(
                f"{'OME-Zarr' if f == 'zarr' else 'TileDB'} {v:.2f} ms"
                for f, v in per.items()) + ".", ""]
    return "\n".join(lines)


def collect(width: int, height: int, n: int) -> Iterator[dict[str, Any]]:
    """Every figure of a standalone run (bench.standalone): local and S3."""
    from bench.run import WORK
    from bench.s3tiles import Moto

    work = WORK / "tiledb"
    with Moto(work / "logs") as moto:
        yield from tiles(work, width, height, n, moto=moto)


def main(argv: list[str] | None = None) -> int:
    from bench import standalone

    return standalone.main("tiledb", __doc__.splitlines()[0], collect, render,
                           full=(16384, 12288, 1500), quick=(8192, 6144, 800), argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())
