"""The Python client (microtome_client) against a live `microtome serve` on loopback.

- region: a 4096 x 4096 full-resolution region read through the client (IIIF
  tiles aligned to the stored chunks, fetched in parallel and stitched) vs the
  same region read with openslide-python from the local file, same run;
- upload: tus throughput of a large file (default 500 MB) and the uploading
  process's peak RSS (the file is streamed, never read into memory);
- annotations: a QuPath-style GeoJSON of 100k polygons imported through
  ``image.import_annotations`` vs the same file POSTed with plain httpx (the
  server's import rate without the client), and ``create_annotations`` batches.

``python -m bench.client [--quick]`` prints JSON records and a Markdown section
(``--out FILE`` writes it); ``run(ctx)``/``render(records)`` plug into ``python -m bench``.
Short by design: the machine is shared, so each measurement is a few repetitions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench import records
from bench.dbsetup import default_dsn, scratch_database, start_serve

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
REGION = 4096
Record = Callable[[dict[str, Any]], None]


def bench_region(client: Any, slide: Path, image: Any, reps: int, record: Record) -> None:
    import numpy as np
    import openslide

    meta = image.metadata
    spots = {"aligned": (4096, 4096), "unaligned": (4096 + 77, 4096 + 131)}
    for name, (x, y) in spots.items():
        x, y = min(x, meta.width - REGION), min(y, meta.height - REGION)
        t_client, t_raw, t_local = [], [], []
        for _ in range(reps):  # interleaved, so all see the same machine load
            t0 = time.perf_counter()
            got = image.region(x, y, REGION, REGION)
            t_client.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            raw = image.region(x, y, REGION, REGION, format="npy")
            t_raw.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with openslide.OpenSlide(str(slide)) as s:
                ref = np.asarray(s.read_region((x, y), 0, (REGION, REGION)))[..., :3]
            t_local.append(time.perf_counter() - t0)
        mae = float(np.abs(got.astype(np.int16) - ref.astype(np.int16)).mean())
        mid_client, mid_local = statistics.median(t_client), statistics.median(t_local)
        record({"suite": "client-region", "spot": name, "size": REGION, "reps": reps,
                "client_s": mid_client, "client_best_s": min(t_client),
                "openslide_s": mid_local, "openslide_best_s": min(t_local),
                "ratio": mid_client / mid_local, "mean_abs_diff": round(mae, 2),
                "client_npy_s": statistics.median(t_raw),
                "npy_equal": bool(np.array_equal(raw, got))})


_UPLOAD_PROBE = """
import sys, time
from microtome_client import Client
url, key, project, path = sys.argv[1:5]
with Client(url, api_key=key, timeout=120) as c:
    t0 = time.perf_counter()
    (r,) = c.upload(path, project=int(project), wait=False, progress=False, reupload=True,
                    state_file=path + ".state.json")
    dt = time.perf_counter() - t0
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec (the parent's peak would show).
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(dt, hwm, r.error or "")
"""


def bench_upload(base: str, key: str, project: int, workdir: Path, mb: int,
                 record: Record) -> None:
    path = workdir / f"upload-{mb}MB.bin"
    if not path.exists() or path.stat().st_size != mb * 1024**2:
        with open(path, "wb") as fh:
            for _ in range(mb):
                fh.write(os.urandom(1024**2))
    out = subprocess.run([sys.executable, "-c", _UPLOAD_PROBE, base, key, str(project),
                          str(path)], capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    seconds, rss_kb, error = out.stdout.split(" ", 2)
    record({"suite": "client-upload", "bytes": mb * 1024**2, "seconds": float(seconds),
            "mb_per_s": mb / float(seconds), "peak_rss_mb": int(rss_kb) / 1024,
            "error": error.strip() or None})


async def _raw_import(base: str, key: str, iid: int, path: Path) -> float:
    """The same file POSTed with plain httpx: the server's import rate without the client."""
    import httpx

    async def body() -> Any:
        with open(path, "rb") as fh:  # noqa: ASYNC230 (benchmark harness, 1 MB reads)
            while data := fh.read(1 << 20):
                yield data

    async with httpx.AsyncClient(timeout=3600) as http:
        t0 = time.perf_counter()
        r = await http.post(f"{base}/api/images/{iid}/annotations/import", content=body(),
                            headers={"Authorization": f"Bearer {key}",
                                     "Content-Type": "application/geo+json"})
        r.raise_for_status()
        return time.perf_counter() - t0


def bench_annotations(client: Any, base: str, key: str, iid: int, workdir: Path, n: int,
                      batch_n: int, record: Record) -> None:
    from shapely.geometry import Point

    from bench.annotations import write_geojson

    geojson = workdir / f"cells-{n}.geojson"
    if not geojson.exists():
        write_geojson(geojson, n)
    image = client.image(iid)
    raws, clients = [], []
    for who in ("raw", "client", "client", "raw"):  # ABBA: the table grows as we go
        if who == "raw":
            raws.append(asyncio.run(_raw_import(base, key, iid, geojson)))
            continue
        t0 = time.perf_counter()
        result = image.import_annotations(geojson)
        clients.append(time.perf_counter() - t0)
        assert result["imported"] == n, result
    raw, via_client = statistics.mean(raws), statistics.mean(clients)
    record({"suite": "client-import", "features": n, "bytes": geojson.stat().st_size,
            "order": "ABBA (raw, client, client, raw), means",
            "raw_s": raw, "client_s": via_client, "raw_rate": n / raw,
            "client_rate": n / via_client, "ratio": raw / via_client})
    shapes = [Point(500 + (i % 300) * 40, 500 + (i // 300) * 40).buffer(12, quad_segs=4)
              for i in range(batch_n)]
    t0 = time.perf_counter()
    ids = image.create_annotations(shapes, batch_size=5000)
    dt = time.perf_counter() - t0
    record({"suite": "client-batch", "features": len(ids), "seconds": dt,
            "rate": len(ids) / dt})


def bench(workdir: Path, dsn: str, *, quick: bool, log: Callable[[str], None],
          record: Record) -> None:
    from microtome_client import Client

    from bench.annotations import _seed
    from bench.slide import ensure_slide

    workdir.mkdir(parents=True, exist_ok=True)
    with scratch_database(dsn, "microtome_bench_client") as db:
        (fake_iid,), project, key = asyncio.run(_seed(db))  # + a 100k x 100k pixel-less image
        proc, base = start_serve(db, workdir, job_workers=1)
        try:
            log(f"server up on {base}")
            slide = ensure_slide(BENCH / "data", 16384, 12288, log=log)
            with Client(base, api_key=key, timeout=120) as client:
                t0 = time.perf_counter()
                (up,) = client.upload(slide, project=project, progress=False, reupload=True,
                                      state_file=workdir / "state.json", wait_timeout=1800)
                assert up.ok, up.error
                log(f"slide uploaded and converted in {time.perf_counter() - t0:.0f} s")
                bench_region(client, slide, up.image, 3 if quick else 5, record)
                bench_upload(base, key, project, workdir, 100 if quick else 500, record)
                bench_annotations(client, base, key, fake_iid, workdir,
                                  20_000 if quick else 100_000, 5_000 if quick else 20_000,
                                  record)
        finally:
            proc.stop()


def run(ctx: Any) -> None:
    """Entry point for `python -m bench` (bench.run.SuiteContext)."""
    bench(ctx.workdir / "client", default_dsn(), quick=ctx.quick, log=ctx.log,
          record=ctx.record)


def render(records: list[dict[str, Any]]) -> str:
    lines = ["## Python client (microtome_client)", ""]
    for r in records:
        s = r.get("suite")
        if s == "client-region":
            lines.append(
                f"- Region {r['size']}x{r['size']} at full resolution ({r['spot']}), median of "
                f"{r['reps']}: client over loopback **{r['client_s']:.2f} s** vs openslide "
                f"local read {r['openslide_s']:.2f} s = **{r['ratio']:.2f}x** (best "
                f"{r['client_best_s']:.2f} / {r['openslide_best_s']:.2f} s; mean abs pixel "
                f"difference {r['mean_abs_diff']}); the same region as raw `.npy` blocks "
                f"(`format=\"npy\"`): {r['client_npy_s']:.2f} s")
        elif s == "client-upload":
            lines.append(f"- Upload (tus, one file of {r['bytes'] / 1024**2:.0f} MB, loopback): "
                         f"**{r['mb_per_s']:.0f} MB/s**, client peak RSS "
                         f"{r['peak_rss_mb']:.0f} MB")
        elif s == "client-import":
            lines.append(f"- GeoJSON import of {r['features']:,} polygons, ABBA "
                         f"({r['bytes'] / 1e6:.0f} MB): client {r['client_rate']:,.0f}/s vs "
                         f"plain HTTP POST {r['raw_rate']:,.0f}/s = **{r['ratio']:.0%}** of "
                         f"the server's rate")
        elif s == "client-batch":
            lines.append(f"- `create_annotations` of {r['features']:,} shapely polygons "
                         f"(batches of 5,000): {r['rate']:,.0f}/s")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller upload and import")
    ap.add_argument("--dsn", default=default_dsn())
    ap.add_argument("--workdir", type=Path, default=BENCH / "work" / "client")
    args = ap.parse_args(argv)
    rec = records.Recording("client", "python -m bench.client"
                            f"{' --quick' if args.quick else ''}", quick=args.quick)

    def record(fig: dict[str, Any]) -> None:
        rec.add(fig)
        print(orjson.dumps(fig).decode(), flush=True)

    bench(args.workdir, args.dsn, quick=args.quick,
          log=lambda m: print(m, file=sys.stderr, flush=True), record=record)
    print(render(rec.figures))
    print(f"wrote {records.save_and_report(rec)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
