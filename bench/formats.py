"""Format benchmarks: a giant plain JPEG and an imzML mass spectrometry image.

- Giant JPEG (default 40000 x 40000; ``--size``): `microtome convert` in its
  own process (peak RSS of that process from ``ru_maxrss``) against libvips'
  ``tiffsave`` pyramid (256-px JPEG tiles, Q90) of the same file, also in its
  own process, run back to back.
- imzML: a synthetic continuous image (``--msi`` pixels square, 4000 m/z
  bins) written with pyimzML; conversion time, then the latency of
  ``/images/{id}/spectrum`` through the real tile app over loopback HTTP.

Standalone:  python -m bench.formats [--size 40000] [--msi 128] [--out FILE]
(updates the "Formats" section of bench/RESULTS.md).  From the suite runner:
run(ctx) -> list[dict], render(records) -> str.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent

_CONVERT = """
import resource, sys, time
from pathlib import Path
from microtome.converters import ConvertOptions, convert
t = time.perf_counter()
convert(Path(sys.argv[1]), Path(sys.argv[2]), ConvertOptions(overwrite=True))
def peak_mb():  # VmHWM: ru_maxrss survives fork/exec and would show the parent
    with open("/proc/self/status") as f:
        return int(next(x for x in f if x.startswith("VmHWM")).split()[1]) / 1024
print(time.perf_counter() - t, peak_mb())
"""
_VIPS = """
import resource, sys, time
import pyvips
t = time.perf_counter()
pyvips.Image.new_from_file(sys.argv[1], access="sequential").tiffsave(
    sys.argv[2], tile=True, pyramid=True, compression="jpeg", Q=90, tile_width=256,
    tile_height=256, bigtiff=True)
def peak_mb():  # VmHWM: ru_maxrss survives fork/exec and would show the parent
    with open("/proc/self/status") as f:
        return int(next(x for x in f if x.startswith("VmHWM")).split()[1]) / 1024
print(time.perf_counter() - t, peak_mb())
"""


def _child(code: str, *args: str) -> tuple[float, float]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=REPO,
                          capture_output=True, text=True, check=True)
    secs, peak = proc.stdout.split()[-2:]
    return float(secs), float(peak)


def giant_jpeg(size: int, work: Path, log: Any = print) -> dict[str, Any]:
    import pyvips

    work.mkdir(parents=True, exist_ok=True)
    src = work / f"giant-{size}.jpg"
    if not src.exists():
        log(f"formats: writing a {size}x{size} JPEG")
        xyz = pyvips.Image.xyz(size, size)
        noise = pyvips.Image.gaussnoise(size, size, sigma=12)
        img = ((xyz[0] % 256) + noise).bandjoin([(xyz[1] % 256) + noise,
                                                 ((xyz[0] + xyz[1]) % 256)]).cast("uchar")
        img.jpegsave(str(src), Q=90)
    log("formats: microtome convert")
    ours_s, ours_mb = _child(_CONVERT, str(src), str(work / "giant.ome.zarr"))
    log("formats: vips tiffsave --pyramid")
    vips_s, vips_mb = _child(_VIPS, str(src), str(work / "giant-vips.tif"))
    return {"suite": "formats-giant-jpeg", "width": size, "height": size,
            "file_mb": src.stat().st_size / 1e6, "ours_s": ours_s, "ours_peak_mb": ours_mb,
            "vips_s": vips_s, "vips_peak_mb": vips_mb}


def _msi(path: Path, side: int, bins: int) -> None:
    from pyimzml.ImzMLWriter import ImzMLWriter

    rng = np.random.default_rng(0)
    mz = np.linspace(100, 1000, bins)
    peaks = rng.uniform(150, 950, 12)
    with ImzMLWriter(str(path), mode="continuous", mz_dtype=np.float64,
                     intensity_dtype=np.float32) as w:
        for y in range(side):
            for x in range(side):
                inten = rng.exponential(1.0, bins).astype(np.float32)
                for i, p in enumerate(peaks):
                    inten[int((p - 100) / 900 * (bins - 1))] += 50 * (1 + np.sin(x / 9 + i)
                                                                       * np.cos(y / 7))
                w.addSpectrum(mz, inten, (x + 1, y + 1, 1))


async def _latency(root: Path, side: int, n: int) -> list[float]:
    from aiohttp.test_utils import TestClient, TestServer

    from microtome.tileserver.app import create_tiles_app

    client = TestClient(TestServer(create_tiles_app(root)))
    await client.start_server()
    rng = np.random.default_rng(1)
    out = []
    try:
        for _ in range(n):
            x, y = (int(v) for v in rng.integers(0, side, 2))
            t = time.perf_counter()
            r = await client.get(f"/images/msi/spectrum?x={x}&y={y}")
            await r.read()
            out.append((time.perf_counter() - t) * 1000)
            assert r.status == 200
    finally:
        await client.close()
    return out


def imzml(side: int, work: Path, log: Any = print, bins: int = 4000) -> dict[str, Any]:
    from microtome.converters import convert

    work.mkdir(parents=True, exist_ok=True)
    src = work / f"msi-{side}.imzML"
    if not src.exists():
        log(f"formats: writing a {side}x{side} imzML ({bins} bins)")
        _msi(src, side, bins)
    root = work / "msi-root"
    root.mkdir(exist_ok=True)
    t = time.perf_counter()
    convert(src, root / "msi.ome.zarr", overwrite_options())
    conv_s = time.perf_counter() - t
    lat = asyncio.run(_latency(root, side, 200))
    return {"suite": "formats-imzml", "side": side, "bins": bins,
            "ibd_mb": src.with_suffix(".ibd").stat().st_size / 1e6, "convert_s": conv_s,
            "spectrum_p50_ms": statistics.median(lat),
            "spectrum_p99_ms": float(np.percentile(lat, 99))}


def overwrite_options() -> Any:
    from microtome.converters import ConvertOptions
    return ConvertOptions(overwrite=True)


def run(ctx: Any) -> list[dict[str, Any]]:
    """Entry point for `python -m bench` (bench.run.SuiteContext)."""
    work = ctx.workdir / "formats"
    recs = [giant_jpeg(8000 if ctx.quick else 40000, work, ctx.log),
            imzml(48 if ctx.quick else 128, work, ctx.log)]
    for r in recs:
        ctx.record(r)
    return recs


def render(records: list[dict[str, Any]]) -> str:
    by = {r["suite"]: r for r in records if "suite" in r}
    lines = ["## Formats", ""]
    g = by.get("formats-giant-jpeg")
    if g:
        lines += [
            f"- Giant plain JPEG, {g['width']} x {g['height']} ({g['file_mb']:.0f} MB file), "
            "each in its own process, back to back:", "",
            "| | time | peak RSS |", "|---|---:|---:|",
            f"| `microtome convert` (libvips bands → pyramid, JPEG chunks Q90) | "
            f"{g['ours_s']:.1f} s | {g['ours_peak_mb']:.0f} MB |",
            f"| libvips `tiffsave` pyramid (256-px JPEG tiles, Q90) | {g['vips_s']:.1f} s | "
            f"{g['vips_peak_mb']:.0f} MB |", ""]
    m = by.get("formats-imzml")
    if m:
        lines += [f"- imzML, continuous, {m['side']} x {m['side']} pixels x {m['bins']} m/z "
                  f"({m['ibd_mb']:.0f} MB .ibd): conversion {m['convert_s']:.1f} s; "
                  f"`/images/{{id}}/spectrum` over loopback HTTP (200 random pixels, one "
                  f"client): p50 {m['spectrum_p50_ms']:.1f} ms, p99 "
                  f"{m['spectrum_p99_ms']:.1f} ms.", ""]
    return "\n".join(lines)


def _update_results(section: str) -> None:
    path = Path(__file__).parent / "RESULTS.md"
    text = path.read_text()
    start = text.find("## Formats")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section.rstrip() + "\n" + (text[end:] if end >= 0 else "")
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(prog="bench.formats")
    ap.add_argument("--size", type=int, default=40000)
    ap.add_argument("--msi", type=int, default=128)
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "formats")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "formats.jsonl")
    args = ap.parse_args()
    recs = [giant_jpeg(args.size, args.work), imzml(args.msi, args.work)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as fh:
        for r in recs:
            r["at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            r["loadavg"] = list(os.getloadavg())
            fh.write(json.dumps(r) + "\n")
    section = render(recs)
    runner_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    section += (f"\nMeasured with `python -m bench.formats --size {args.size} --msi "
                f"{args.msi}` (load average at the end {os.getloadavg()[0]:.1f} on 2 shared "
                f"cores, other agents working; peak RSS of the runner, which generated the "
                f"inputs, {runner_mb:.0f} MB).\n")
    _update_results(section)
    print(section)


if __name__ == "__main__":
    main()
