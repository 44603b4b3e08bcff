"""Conversion benchmark: our OME-Zarr converter against ``vips tiffsave``.

Both read the same generated SVS from a warm page cache and write to the same
disk.  We report wall time, megapixels per second, peak RSS (largest single
process, from wait4) and peak RSS of the whole process tree (sampled every
0.2 s), CPU seconds and output size.  The vips output doubles as IIPImage's
x2 pyramid input.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from bench.procs import run_measured


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def warm_page_cache(path: Path) -> None:
    """Read a file or tree once so every contender starts from a warm page cache."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass


def vips_pyramid(slide: Path, out: Path, logdir: Path) -> dict:
    tmp = out.with_name(out.name + ".partial.tif")
    argv = ["vips", "tiffsave", str(slide), str(tmp), "--tile", "--pyramid",
            "--tile-width", "256", "--tile-height", "256", "--compression", "jpeg",
            "-Q", "75", "--bigtiff"]
    res = run_measured(argv, logdir / "vips.log")
    if res["exit"] == 0:
        tmp.replace(out)
        res["output_bytes"] = du(out)
    res["command"] = " ".join([*argv[:2], "SLIDE", "OUT", *argv[4:]])
    return res


def microtome_convert(slide: Path, outdir: Path, logdir: Path, quality: int = 75) -> dict:
    """``microtome convert`` into ``outdir``; the image lands at ``outdir/<stem>.ome.zarr``."""
    target = outdir / (slide.stem + ".ome.zarr")
    if target.exists():
        shutil.rmtree(target)
    outdir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "microtome", "convert", str(slide), "-o", str(outdir),
            "--quality", str(quality), "--json"]
    log = logdir / "microtome-convert.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    res = run_measured(argv, log)
    if res["exit"] == 0 and target.exists():
        res["output_bytes"] = du(target)
        res["files"] = sum(1 for p in target.rglob("*") if p.is_file())
        res.update(copied_chunks(log.read_text()))
    res["command"] = f"microtome convert SLIDE -o OUTDIR --quality {quality}"
    return res


def copied_chunks(log: str) -> dict:
    """From ``microtome convert --json`` output (mixed with its log lines): how many
    level-0 chunks were copied from the source's own JPEG tiles, of how many."""
    start = log.find("[\n")
    if start < 0:
        return {}
    try:
        rows, _ = json.JSONDecoder().raw_decode(log, start)
    except ValueError:
        return {}
    row = rows[0] if rows else {}
    if "copied_chunks" not in row or not row.get("tile_size"):
        return {}
    t = row["tile_size"]
    return {"copied_chunks": row["copied_chunks"],
            "level0_chunks": -(-row["width"] // t) * -(-row["height"] // t)}
