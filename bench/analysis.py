"""Analysis benchmark: nucleus detection throughput (megapixels/s, per core).

Runs the built-in ``nucleus_detection`` app on the H&E sample
(``CMU-1-Small-Region.svs``, converted to OME-Zarr once) at full resolution,
reading through the same OME-Zarr raster a local ``microtome analyse`` uses,
with 1 and 2 tile threads; reports megapixels/s, megapixels/s per core and
the 2-thread scaling. Dask and multi-process scaling (the issue's 65536 x
49152 run) are not measured here.

Standalone:  python -m bench.analysis [--reps N]
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

BENCH = Path(__file__).resolve().parent
SAMPLE = BENCH.parent.parent / "shared" / "testdata" / "CMU-1-Small-Region.svs"


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


def run(ctx: Any) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []

    def record(rec: dict[str, Any]) -> None:
        records.append(rec)
        ctx.record(rec)

    bench(ctx.workdir / "analysis", 1 if ctx.quick else 3, ctx.log, record)
    return records


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
                         "process; not the 2-process dask figure the issue asks for)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.analysis", description=__doc__)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    if not SAMPLE.exists():
        print(f"error: sample missing: {SAMPLE}", file=sys.stderr)
        return 2
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-analysis-") as tmp:
        bench(Path(tmp), args.reps, lambda s: print(s, flush=True), records.append)
    print(render(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
