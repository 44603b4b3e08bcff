"""Analysis benchmark: nucleus detection throughput (megapixels/s, per core).

Runs the built-in ``nucleus_detection`` app on the H&E sample
(``CMU-1-Small-Region.svs``, converted to OME-Zarr once) at full resolution,
reading through the same OME-Zarr raster a local ``microtome analyse`` uses,
with 1 and 2 tile threads; reports megapixels/s, megapixels/s per core and
the 2-thread scaling.

On the 65536 x 49152 benchmark slide (bench/slide.py, converted once; both
cached under bench/data and bench/work like the tile benchmark's): nucleus
detection with its tiles on a dask `LocalCluster` (`tiles.iter_tiles`: each
worker process reads its own pixels from the OME-Zarr path and sends back only
its nuclei), 1 worker process of 1 thread vs 2 of 1 thread each, on the same
2048 x 1024 area (8 tiles of 512), in ABBA order in one run (the 1 -> 2 worker
scaling); then a 4096 x 2048 area on the 2-process cluster, results streamed
in batches of 500, for the peak RSS of the driver and the workers next to that
of the smaller runs (memory does not grow with the number of nuclei). Every record carries
the load (`uptime`).

Standalone:  python -m bench.analysis [--reps N] [--no-large] [--large-only]
                                      [--area N] [--big-area WxH]
             (saved as the analysis and analysis_large records, bench/records/)
From the suite runner:  run(ctx) -> list[dict], render(records) -> str.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench import records

BENCH = Path(__file__).resolve().parent
SAMPLE = BENCH.parent.parent / "shared" / "testdata" / "CMU-1-Small-Region.svs"
LARGE = (65536, 49152)
#: Side of the square analysed on the large slide (the scaling figure), and the
#: smaller one of the memory figure.
AREA, SMALL_AREA = 4096, 2048
#: The 1 vs 2 worker area and its tile side: 8 tiles (a worker process gets
#: about a tenth of a core while other helpers load the machine to 20+).
SCALING_AREA, SCALING_TILE = (2048, 1024), 512
#: Objects per streamed batch in the bench (the worker's default is 2,000).
BENCH_BATCH = 500
#: The larger area of the memory figure (the whole slide, 3,221 MP, takes hours
#: at this machine's speed: see RESULTS.md).
BIG_AREA = (4096, 2048)


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


class RssSampler:
    """Peak resident memory of a set of processes (the driver and the dask
    workers), sampled every ``every`` seconds from a thread: per process and
    of their sum."""

    def __init__(self, pids: list[int], every: float = 0.25) -> None:
        import threading

        import psutil

        self.procs = [psutil.Process(p) for p in pids]
        self.peak = dict.fromkeys(pids, 0)
        self.peak_sum = 0
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        total = 0
        for p in self.procs:
            try:
                rss = p.memory_info().rss
            except Exception:  # a worker restarting: not ours to judge here
                continue
            self.peak[p.pid] = max(self.peak[p.pid], rss)
            total += rss
        self.peak_sum = max(self.peak_sum, total)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> RssSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()


@contextlib.contextmanager
def _cluster(n: int, zarr: Path, threshold: float, tmp: Path) -> Iterator[Any]:
    """A client of a LocalCluster of ``n`` worker processes of one thread each
    (one cluster at a time in this process: two clients side by side stalled
    here); each worker has analysed a tile before any timing (warm-up)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                      dashboard_address=None, memory_limit=0) as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(n)
        _detect_on_cluster(client, zarr, (0, 0, SCALING_TILE * n, SCALING_TILE), threshold,
                           tmp)
        yield client


def _detect_on_cluster(client: Any, zarr: Path, region: tuple[int, int, int, int],
                       threshold: float, tmp: Path) -> dict[str, Any]:
    """Nucleus detection of ``region`` with its tiles on the cluster, results streamed
    to GeoJSON batch files (as the worker streams them to the server); wall time,
    nuclei, largest batch, and the peak RSS of this process and of the workers."""
    from microtome.analysis import get_app, validate_params, write_geojson
    from microtome.analysis.raster import open_pyramid_raster
    from microtome.analysis.runner import Region, stream_app

    app = get_app("nucleus_detection")
    params = validate_params(app.descriptor, {"threshold": threshold,
                                              "tile_size": SCALING_TILE})
    written = {"n": 0, "batches": 0, "largest": 0}

    def sink(batch: list[Any]) -> None:
        path = tmp / f"batch-{written['batches']}.geojson"
        write_geojson(path, batch)
        path.unlink()
        written["n"] += len(batch)
        written["batches"] += 1
        written["largest"] = max(written["largest"], len(batch))

    worker_pids = list(client.run(os.getpid).values())
    raster = open_pyramid_raster(str(zarr))
    with RssSampler([os.getpid(), *worker_pids]) as rss:
        t0 = time.perf_counter()
        prov = stream_app(app, raster, params, sink, Region(*region), BENCH_BATCH, dask=client)
        wall = time.perf_counter() - t0
    assert prov["count"] == written["n"]
    return {"wall_s": wall, "nuclei": written["n"], "batches": written["batches"],
            "largest_batch": written["largest"],
            "driver_peak_rss_mb": round(rss.peak[os.getpid()] / 1e6, 1),
            "worker_peak_rss_mb": round(max(rss.peak[p] for p in worker_pids) / 1e6, 1),
            "total_peak_rss_mb": round(rss.peak_sum / 1e6, 1)}


def large(log: Callable[[str], None], record: Callable[[dict[str, Any]], None],
          big: tuple[int, int] = BIG_AREA, size: tuple[int, int] = SCALING_AREA) -> None:
    """Nucleus detection on the benchmark slide with its tiles on a dask LocalCluster:
    1 worker process (1 thread) vs 2 worker processes (1 thread each) on the same
    area, in ABBA order, side by side in one run; then a larger area on the
    2-process cluster for the peak memory (results streamed in batches)."""
    zarr = large_zarr(log)
    # Centre of the slide: tissue everywhere (the slide is mirrored real tissue).
    x0, y0 = LARGE[0] // 2 - size[0] // 2, LARGE[1] // 2 - size[1] // 2
    area = (x0, y0, *size)
    mp = size[0] * size[1] / 1e6
    # One threshold for every run (the app's automatic one, for the area).
    from microtome.analysis.apps.nuclei import auto_threshold
    from microtome.analysis.raster import PyramidRaster
    from microtome.analysis.runner import Region

    threshold = round(auto_threshold(PyramidRaster(zarr), Region(*area)), 6)
    log(f"analysis: threshold {threshold}; LocalClusters of 1 and 2 workers, ABBA ...")
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    base = {"slide": f"{LARGE[0]}x{LARGE[1]}", "area": f"{size[0]}x{size[1]}",
            "tile_size": SCALING_TILE, "batch_size": BENCH_BATCH}
    with tempfile.TemporaryDirectory(prefix="bench-analysis-") as tmp:
        # ABBA (1, 2, 2, 1): a drift of the machine's load hits both alike.
        for n, reps in ((1, 1), (2, 2), (1, 1)):
            with _cluster(n, zarr, threshold, Path(tmp)) as client:
                for _ in range(reps):
                    load = uptime()
                    r = _detect_on_cluster(client, zarr, area, threshold, Path(tmp))
                    r |= {"uptime": load, "load_avg": os.getloadavg()[0]}
                    runs[n].append(r)
                    log(f"  {n} worker process(es): {mp / r['wall_s']:.3f} MP/s, "
                        f"{r['nuclei']} nuclei, {r['wall_s']:.1f} s ({load})")
        bx, by = LARGE[0] // 2 - big[0] // 2, LARGE[1] // 2 - big[1] // 2
        with _cluster(2, zarr, threshold, Path(tmp)) as client:
            load_big = uptime()
            rb = _detect_on_cluster(client, zarr, (bx, by, *big), threshold, Path(tmp))
            load_big_after = uptime()
        log(f"  {big[0]}x{big[1]} on 2 worker processes: {rb}")
    for n in (1, 2):
        walls = [r["wall_s"] for r in runs[n]]
        wall = statistics.mean(walls)
        record({"suite": "analysis-large-dask", **base, "worker_processes": n,
                "threads_per_worker": 1, "megapixels": mp, "runs_wall_s":
                [round(w, 2) for w in walls], "wall_s": round(wall, 2),
                "nuclei": runs[n][0]["nuclei"], "mp_per_s": round(mp / wall, 3),
                "mp_per_s_per_core": round(mp / wall / n, 3),
                "worker_peak_rss_mb": max(r["worker_peak_rss_mb"] for r in runs[n]),
                "driver_peak_rss_mb": max(r["driver_peak_rss_mb"] for r in runs[n]),
                "uptime": [r["uptime"] for r in runs[n]],
                "load_avg": [round(r["load_avg"], 2) for r in runs[n]]})
    one = statistics.mean(r["wall_s"] for r in runs[1])
    two = statistics.mean(r["wall_s"] for r in runs[2])
    record({"suite": "analysis-large-dask-scaling", **base, "order": "ABBA (1, 2, 2, 1)",
            "ratio": round(one / two, 3),
            "ratio_first_pair": round(runs[1][0]["wall_s"] / runs[2][0]["wall_s"], 3),
            "ratio_second_pair": round(runs[1][1]["wall_s"] / runs[2][1]["wall_s"], 3),
            "same_nuclei": len({r["nuclei"] for rr in runs.values() for r in rr}) == 1,
            "uptime_start": runs[1][0]["uptime"], "uptime_end": runs[1][1]["uptime"]})
    big_mp = big[0] * big[1] / 1e6
    record({"suite": "analysis-large-memory", "slide": base["slide"],
            "area": f"{big[0]}x{big[1]}", "megapixels": big_mp, "worker_processes": 2,
            "wall_s": round(rb["wall_s"], 1), "mp_per_s": round(big_mp / rb["wall_s"], 3),
            "nuclei": rb["nuclei"], "batches": rb["batches"],
            "largest_batch": rb["largest_batch"],
            "driver_peak_rss_mb": rb["driver_peak_rss_mb"],
            "worker_peak_rss_mb": rb["worker_peak_rss_mb"],
            "total_peak_rss_mb": rb["total_peak_rss_mb"],
            "small_area": base["area"], "small_nuclei": runs[2][0]["nuclei"],
            "small_driver_peak_rss_mb": max(r["driver_peak_rss_mb"] for r in runs[2]),
            "small_worker_peak_rss_mb": max(r["worker_peak_rss_mb"] for r in runs[2]),
            "small_total_peak_rss_mb": max(r["total_peak_rss_mb"] for r in runs[2]),
            "uptime": load_big, "uptime_after": load_big_after})


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
        elif r.get("suite") == "analysis-large-dask":
            loads = ", ".join(f"{v:.1f}" for v in r["load_avg"])
            lines.append(
                f"- {r['slide']} slide, {r['area']} px at its centre, tiles on a dask "
                f"LocalCluster of **{r['worker_processes']} worker process(es)** x "
                f"{r['threads_per_worker']} thread (each reads its own pixels from the "
                f"OME-Zarr): **{r['mp_per_s']:.3f} MP/s** (**{r['mp_per_s_per_core']:.3f} "
                f"MP/s per core**), mean of {len(r['runs_wall_s'])} runs "
                f"({', '.join(f'{w:.0f}' for w in r['runs_wall_s'])} s), {r['nuclei']} nuclei, "
                f"peak RSS {r['worker_peak_rss_mb']:.0f} MB per worker, "
                f"{r['driver_peak_rss_mb']:.0f} MB driver (1-min load averages {loads})")
        elif r.get("suite") == "analysis-large-dask-scaling":
            lines.append(
                f"- 2 worker processes / 1: **{r['ratio']:.2f}x** (goal >= 1.7), runs in "
                f"{r['order']} order in one run: first pair {r['ratio_first_pair']:.2f}x, "
                f"second pair {r['ratio_second_pair']:.2f}x; same nuclei in every run: "
                f"{r['same_nuclei']} (`{r['uptime_start']}` ... `{r['uptime_end']}`; the "
                "machine's other load shares the 2 cores)")
        elif r.get("suite") == "analysis-large-memory":
            lines.append(
                f"- memory, results streamed in batches: {r['area']} px ({r['megapixels']:.0f} "
                f"MP) on 2 worker processes, {r['nuclei']} nuclei in {r['batches']} batches "
                f"(largest {r['largest_batch']}), {r['wall_s']:.0f} s "
                f"({r['mp_per_s']:.3f} MP/s): peak RSS driver **{r['driver_peak_rss_mb']:.0f} "
                f"MB**, per worker **{r['worker_peak_rss_mb']:.0f} MB**, all three "
                f"{r['total_peak_rss_mb']:.0f} MB; on {r['small_area']} ({r['small_nuclei']} "
                f"nuclei): driver {r['small_driver_peak_rss_mb']:.0f} MB, per worker "
                f"{r['small_worker_peak_rss_mb']:.0f} MB, all three "
                f"{r['small_total_peak_rss_mb']:.0f} MB (`{r['uptime']}`)")
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
    ap.add_argument("--area", default=f"{SCALING_AREA[0]}x{SCALING_AREA[1]}",
                    help="area of the 1 vs 2 worker runs, WxH (default %(default)s)")
    ap.add_argument("--big-area", default=f"{BIG_AREA[0]}x{BIG_AREA[1]}",
                    help="the memory run's area, WxH (default %(default)s)")
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
        bw, bh = (int(v) for v in args.big_area.split("x"))
        aw, ah = (int(v) for v in args.area.split("x"))
        big = records.Recording("analysis_large", "python -m bench.analysis --large-only "
                                f"--area {aw}x{ah} --big-area {bw}x{bh}")
        large(log, big.add, (bw, bh), (aw, ah))
        print(render(big.figures))
        print(f"wrote {records.save_and_report(big)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
