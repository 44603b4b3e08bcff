"""Analysis benchmark: nucleus detection throughput (megapixels/s, per core).

Runs the built-in ``nucleus_detection`` app on the H&E sample
(``CMU-1-Small-Region.svs``, converted to OME-Zarr once) at full resolution,
reading through the same OME-Zarr raster a local ``microtome analyse`` uses,
with 1 and 2 tile threads; reports megapixels/s, megapixels/s per core and
the 2-thread scaling.

On the 65536 x 49152 benchmark slide (bench/slide.py, converted once; both
cached under bench/data and bench/work like the tile benchmark's): nucleus
detection as worker processes (`microtome analyse`, one tile thread each) on
a 4096 x 4096 area, by one process, then by two processes each taking one
half at the same time (the 1 -> 2 worker scaling); and the peak RSS of one
worker process analysing areas of two sizes (2048 and 4096 px square) to show
what memory grows with. Every record carries the load (`uptime`).

Standalone:  python -m bench.analysis [--reps N] [--no-large] [--large-only]
             (saved as the analysis and analysis_large records, bench/records/)
From the suite runner:  run(ctx) -> list[dict], render(records) -> str.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import records

BENCH = Path(__file__).resolve().parent
SAMPLE = BENCH.parent.parent / "shared" / "testdata" / "CMU-1-Small-Region.svs"
LARGE = (65536, 49152)
#: Side of the square analysed on the large slide (the scaling figure), and the
#: smaller one of the memory figure.
AREA, SMALL_AREA = 4096, 2048


def uptime() -> str:
    """The machine's load, as `uptime` says it (other helpers share the 2 cores)."""
    import subprocess

    out = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def large_zarr(log: Callable[[str], None]) -> Path:
    """The benchmark slide as OME-Zarr: generated and converted once, then cached
    (bench/data, bench/work/zarr: the tile benchmark's own cache)."""
    from bench import slide
    from bench.convert import microtome_convert

    zroot = BENCH / "work" / "zarr"
    svs_stem = f"bench-{LARGE[0]}x{LARGE[1]}"
    target = zroot / f"{svs_stem}.ome.zarr"
    if (target / "zarr.json").exists() or (target / ".zattrs").exists():
        return target
    svs = slide.ensure_slide(BENCH / "data", *LARGE, log=log)
    log(f"analysis: converting {svs.name} once ...")
    res = microtome_convert(svs, zroot, BENCH / "work" / "logs")
    if res.get("exit", 0) != 0 or not target.exists():
        raise RuntimeError(f"conversion of {svs.name} failed: {res}")
    return target


def _worker_run(zarr: Path, region: tuple[int, int, int, int], out: Path,
                logdir: Path, threshold: float) -> dict[str, Any]:
    """One worker process: `microtome analyse nucleus_detection` on ``region``, one
    tile thread; wall time and peak RSS (VmHWM, sampled) of that process."""
    import json
    import sys

    from bench.procs import run_measured

    argv = [sys.executable, "-m", "microtome", "analyse", "nucleus_detection", str(zarr),
            "-o", str(out), "--quiet", "--workers", "1", "--param", f"threshold={threshold}",
            "--region", ",".join(str(v) for v in region)]
    res = run_measured(argv, logdir / f"{out.stem}.log", timeout=3 * 3600)
    if res["exit"] != 0:
        raise RuntimeError(f"microtome analyse exited {res['exit']} (see {logdir})")
    res["nuclei"] = len(json.loads(out.read_text())["features"])
    return res


def large(log: Callable[[str], None], record: Callable[[dict[str, Any]], None]) -> None:
    """Scaling 1 -> 2 worker processes and peak RSS at two area sizes."""
    from concurrent.futures import ThreadPoolExecutor

    zarr = large_zarr(log)
    logdir = BENCH / "work" / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    # Centre of the slide: tissue everywhere (the slide is mirrored real tissue).
    x0, y0 = LARGE[0] // 2 - AREA // 2, LARGE[1] // 2 - AREA // 2
    mp = AREA * AREA / 1e6
    # One threshold for every run (the app's automatic one, for the whole area): the
    # halves then find exactly the nuclei the whole finds (ownership by centroid).
    from microtome.analysis.apps.nuclei import auto_threshold
    from microtome.analysis.raster import PyramidRaster
    from microtome.analysis.runner import Region

    threshold = round(auto_threshold(PyramidRaster(zarr), Region(x0, y0, AREA, AREA)), 6)
    with tempfile.TemporaryDirectory(prefix="bench-analysis-") as tmp:
        t = Path(tmp)
        small = _worker_run(zarr, (x0, y0, SMALL_AREA, SMALL_AREA), t / "small.geojson",
                            logdir, threshold)
        load_one = uptime()
        one = _worker_run(zarr, (x0, y0, AREA, AREA), t / "one.geojson", logdir, threshold)
        load_two = uptime()
        halves = [(x0, y0, AREA, AREA // 2), (x0, y0 + AREA // 2, AREA, AREA // 2)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            two = list(pool.map(lambda a: _worker_run(zarr, a[1], t / f"half{a[0]}.geojson",
                                                      logdir, threshold), enumerate(halves)))
        wall_two = time.perf_counter() - t0
        load_after = uptime()
    base = {"slide": f"{LARGE[0]}x{LARGE[1]}", "area": f"{AREA}x{AREA}"}
    rec_one = {"suite": "analysis-large", **base, "processes": 1, "megapixels": mp,
               "wall_s": round(one["wall_s"], 2), "nuclei": one["nuclei"],
               "mp_per_s": round(mp / one["wall_s"], 3),
               "mp_per_s_per_core": round(mp / one["wall_s"], 3),
               "peak_rss_mb": round(one["peak_rss_bytes"] / 1e6, 1), "uptime": load_one,
               "load_avg": os.getloadavg()[0]}
    rec_two = {"suite": "analysis-large", **base, "processes": 2, "megapixels": mp,
               "wall_s": round(wall_two, 2), "nuclei": sum(r["nuclei"] for r in two),
               "mp_per_s": round(mp / wall_two, 3),
               "mp_per_s_per_core": round(mp / wall_two / 2, 3),
               "peak_rss_mb": round(max(r["peak_rss_bytes"] for r in two) / 1e6, 1),
               "uptime": load_two, "load_avg": os.getloadavg()[0]}
    for r in (rec_one, rec_two):
        record(r)
        log(f"nucleus detection on {r['area']} of the {r['slide']} slide, {r['processes']} "
            f"worker process(es): {r['mp_per_s']:.2f} MP/s, {r['nuclei']} nuclei "
            f"({r['uptime']})")
    record({"suite": "analysis-large-scaling", **base,
            "ratio": round(one["wall_s"] / wall_two, 3), "uptime": load_two,
            "uptime_after": load_after, "same_nuclei": rec_one["nuclei"] == rec_two["nuclei"]})
    record({"suite": "analysis-memory", "slide": base["slide"],
            "sizes": [f"{SMALL_AREA}x{SMALL_AREA}", f"{AREA}x{AREA}"],
            "megapixels": [SMALL_AREA * SMALL_AREA / 1e6, mp],
            "nuclei": [small["nuclei"], one["nuclei"]],
            "peak_rss_mb": [round(small["peak_rss_bytes"] / 1e6, 1),
                            round(one["peak_rss_bytes"] / 1e6, 1)],
            "uptime": load_one})


def measure(zarr: Path, threads: int, reps: int) -> dict[str, Any]:
    from microtome.analysis import get_app, run_app, validate_params
    from microtome.analysis.raster import PyramidRaster

    app = get_app("nucleus_detection")
    params = validate_params(app.descriptor, {"tile_size": 1024})
    raster = PyramidRaster(zarr)
    times, count = [], 0
    for _ in range(reps):
        t0 = time.perf_counter()
        features, _ = run_app(app, raster, params, workers=threads)
        times.append(time.perf_counter() - t0)
        count = len(features)
    mp = raster.width * raster.height / 1e6
    best, median = min(times), statistics.median(times)
    return {"suite": "analysis-nuclei", "threads": threads, "megapixels": round(mp, 3),
            "nuclei": count, "reps": reps, "best_s": round(best, 3),
            "median_s": round(median, 3), "mp_per_s": round(mp / median, 3),
            "mp_per_s_per_core": round(mp / median / threads, 3),
            "load_avg": os.getloadavg()[0]}


def bench(workdir: Path, reps: int, log: Callable[[str], None],
          record: Callable[[dict[str, Any]], None]) -> None:
    from microtome.converters import ConvertOptions, convert

    zarr = workdir / "cmu.ome.zarr"
    if not zarr.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        convert(SAMPLE, zarr, ConvertOptions(workers=2))
    results = [measure(zarr, t, reps) for t in (1, 2)]
    for r in results:
        log(f"nucleus detection, {r['threads']} thread(s): {r['mp_per_s']:.2f} MP/s "
            f"({r['mp_per_s_per_core']:.2f} per core), {r['nuclei']} nuclei")
        record(r)
    record({"suite": "analysis-scaling", "ratio": round(
        results[1]["mp_per_s"] / results[0]["mp_per_s"], 3)})


def run(ctx: Any) -> None:
    bench(ctx.workdir / "analysis", 1 if ctx.quick else 3, ctx.log, ctx.record)


def render(records: list[dict[str, Any]]) -> str:
    lines = ["## Analysis: nucleus detection", ""]
    for r in records:
        if r.get("suite") == "analysis-nuclei":
            lines.append(
                f"- {r['threads']} tile thread(s), {r['megapixels']} MP H&E sample at full "
                f"resolution, median of {r['reps']}: **{r['mp_per_s']:.2f} MP/s** "
                f"(**{r['mp_per_s_per_core']:.2f} MP/s per core**), {r['nuclei']} nuclei, "
                f"best {r['best_s']:.1f} s (1-min load average {r['load_avg']:.1f})")
        elif r.get("suite") == "analysis-scaling":
            lines.append(f"- 2 threads / 1 thread: **{r['ratio']:.2f}x** (threads in one "
                         "process)")
        elif r.get("suite") == "analysis-large":
            lines.append(
                f"- {r['slide']} slide, {r['area']} px at its centre, {r['processes']} worker "
                f"process(es) of one thread (`microtome analyse`): **{r['mp_per_s']:.2f} "
                f"MP/s** ({r['mp_per_s_per_core']:.2f} per core), {r['wall_s']:.0f} s, "
                f"{r['nuclei']} nuclei, peak RSS {r['peak_rss_mb']:.0f} MB per process "
                f"(`{r['uptime']}`)")
        elif r.get("suite") == "analysis-large-scaling":
            lines.append(f"- 2 worker processes / 1: **{r['ratio']:.2f}x** (each process one "
                         f"half of the area, at the same time; `{r['uptime']}`; the machine's "
                         "other load shares the cores, so this is not a 2-core figure unless "
                         "the load is near 0)")
        elif r.get("suite") == "analysis-memory":
            sizes = ", ".join(f"{s}: {m:.0f} MB ({n} nuclei)" for s, m, n in zip(
                r["sizes"], r["peak_rss_mb"], r["nuclei"], strict=True))
            lines.append(f"- peak RSS of one worker process by analysed area: {sizes} "
                         f"(`{r['uptime']}`)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.analysis", description=__doc__)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-large", action="store_true", help="skip the large-slide part")
    ap.add_argument("--large-only", action="store_true", help="only the large-slide part")
    args = ap.parse_args(argv)
    if not SAMPLE.exists():
        print(f"error: sample missing: {SAMPLE}", file=sys.stderr)
        return 2
    def log(s: str) -> None:
        print(s, flush=True)

    if not args.large_only:
        rec = records.Recording("analysis", f"python -m bench.analysis --reps {args.reps}")
        with tempfile.TemporaryDirectory(prefix="bench-analysis-") as tmp:
            bench(Path(tmp), args.reps, log, rec.add)
        print(render(rec.figures))
        print(f"wrote {records.save_and_report(rec)}")
    if not args.no_large:
        big = records.Recording("analysis_large", "python -m bench.analysis --large-only")
        large(log, big.add)
        print(render(big.figures))
        print(f"wrote {records.save_and_report(big)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
