"""Image adjustments: the histogram endpoint and server-side filters, over loopback HTTP.

Converts the CMU-1-Small-Region sample (real tissue), serves it with
`microtome tiles` in its own process and measures, with one keep-alive client:
- `/images/{id}/histogram` answered from the stored document: the first request
  after a start (file read) and 1000 more (p50/p99/max);
- the same for an image whose document was removed (computed once, stored);
- the histogram computation itself (what conversion adds), in process;
- every full-resolution Deep Zoom tile of the slide with each filter, cold
  (each tile asked once): p50 ms per tile, against the plain tiles.

Standalone:  python -m bench.histogram [--out FILE]
From the suite runner:  run(ctx), render(records) -> str.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench import records

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SAMPLE = REPO.parent / "shared" / "testdata" / "CMU-1-Small-Region.svs"
FILTERS = ["", "brightness=0.1&contrast=1.3&gamma=0.8", "stain=H", "stain=DAB&threshold=otsu",
           "edge=sobel"]


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[float, int, bytes]:
    t0 = time.perf_counter()
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    return (time.perf_counter() - t0) * 1000, resp.status, body


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def measure(workdir: Path, log: Any = print) -> list[dict[str, Any]]:
    from bench.procs import Proc, free_port
    from microtome.converters.convert import convert
    from microtome.pyramid import histogram
    from microtome.pyramid.reader import open_pyramid

    root = workdir / "histogram-root"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    slide = root / "slide.ome.zarr"
    convert(SAMPLE, slide)
    old = root / "older.ome.zarr"
    shutil.copytree(slide, old)
    (old / histogram.RELPATH).unlink()  # as converted before histograms existed
    pyr = open_pyramid(slide)
    t0 = time.perf_counter()
    histogram.compute(pyr)  # chunks decoded from disk, as at the end of a conversion
    compute_ms = (time.perf_counter() - t0) * 1000
    records: list[dict[str, Any]] = []
    port = free_port()
    proc = Proc("microtome-tiles", [sys.executable, "-m", "microtome", "tiles", "--root",
                                    str(root), "--port", str(port), "--workers", "1"],
                workdir / "logs" / "histogram-tiles.log", cwd=REPO)
    proc.start()
    try:
        proc.wait_ready(f"http://127.0.0.1:{port}/dzi/slide.dzi")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        _get(conn, "/images/slide/metadata")  # opens the image (as any viewer does first)
        first, status, body = _get(conn, "/images/slide/histogram")
        assert status == 200, body[:200]
        times = []
        for _ in range(1000):
            ms, status, _ = _get(conn, "/images/slide/histogram")
            assert status == 200
            times.append(ms)
        lazy, status, _ = _get(conn, "/images/older/histogram")
        assert status == 200 and (old / histogram.RELPATH).exists()
        doc = json.loads(body)
        records.append({
            "suite": "histogram", "width": pyr.meta.width, "height": pyr.meta.height,
            "sample_level": doc["sample"]["level"], "bytes": len(body),
            "first_ms": first, "p50_ms": statistics.median(times), "p99_ms": _pct(times, 99),
            "max_ms": max(times), "n": len(times), "lazy_first_ms": lazy,
            "compute_ms": compute_ms, "load_average": os.getloadavg()[0]})
        log(f"histogram: first {first:.1f} ms, p50 {statistics.median(times):.2f} ms, "
            f"p99 {_pct(times, 99):.2f} ms; lazy {lazy:.0f} ms; compute {compute_ms:.0f} ms")
        lv = pyr.meta.levels[0]
        ts = pyr.meta.tile_size
        dzi_level = max(1, (max(lv.width, lv.height) - 1).bit_length())
        tiles = [(c, r) for r in range(-(-lv.height // ts)) for c in range(-(-lv.width // ts))]
        for f in FILTERS:
            q = f"?{f}" if f else ""
            per = []
            for c, r in tiles:
                ms, status, _ = _get(conn, f"/dzi/slide_files/{dzi_level}/{c}_{r}.jpg{q}")
                assert status == 200, (f, status)
                per.append(ms)
            records.append({"suite": "filters", "filter": f or "(none)", "tiles": len(per),
                            "p50_ms": statistics.median(per), "p99_ms": _pct(per, 99),
                            "mean_ms": statistics.fmean(per)})
            log(f"filter {f or '(none)'}: p50 {statistics.median(per):.1f} ms/tile")
        conn.close()
    finally:
        proc.stop()
    return records


def render(records: list[dict[str, Any]]) -> str:
    h = next((r for r in records if r.get("suite") == "histogram"), None)
    lines = ["## Image adjustments", ""]
    if h:
        lines += [
            f"`/images/{{id}}/histogram` of the CMU-1-Small-Region sample ({h['width']} x "
            f"{h['height']}, sample level {h['sample_level']}, {h['bytes']} bytes of JSON), "
            "`microtome tiles` with one worker, one keep-alive client over loopback:", "",
            "| | ms |", "|---|---:|",
            f"| first request after start (image open; stored document read) | "
            f"{h['first_ms']:.2f} |",
            f"| next {h['n']} requests, p50 | {h['p50_ms']:.2f} |",
            f"| p99 | {h['p99_ms']:.2f} |", f"| max | {h['max_ms']:.2f} |",
            f"| image converted before histograms: first request (computed, stored) | "
            f"{h['lazy_first_ms']:.0f} |",
            f"| the computation alone (added to a conversion) | {h['compute_ms']:.0f} |", "",
            "Goal (issue 20): answered from stored data in < 10 ms. Measured on the shared "
            f"2-core machine while other work ran (1-minute load average {h['load_average']:.1f}"
            "); the p99 and max carry that noise.", ""]
    fs = [r for r in records if r.get("suite") == "filters"]
    if fs:
        lines += ["Server-side filters, every full-resolution Deep Zoom tile of the same slide "
                  f"asked once (cold, {fs[0]['tiles']} tiles, JPEG):", "",
                  "| filter | p50 ms/tile | p99 ms/tile |", "|---|---:|---:|"]
        lines += [f"| `{r['filter']}` | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |" for r in fs]
        lines += ["", "Plain tiles are stored JPEG chunks passed through; filtered tiles are "
                  "decoded, filtered and encoded (the Otsu level is computed once per image "
                  "and setting, on the first tile).", ""]
    return "\n".join(lines)


def run(ctx: Any) -> None:
    for rec in measure(ctx.workdir, ctx.log):
        ctx.record(rec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.parse_args(argv)
    rec = records.Recording("histogram", "python -m bench.histogram")
    for fig in measure(BENCH / "work"):
        rec.add(fig)
    print(render(rec.figures))
    print(f"wrote {records.save_and_report(rec)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
