"""Format benchmarks: a giant plain JPEG and an imzML mass spectrometry image.

- Giant JPEG (default 40000 x 40000; ``--size``): `microtome convert` in its
  own process (peak RSS of that process from ``ru_maxrss``) against libvips'
  ``tiffsave`` pyramid (256-px JPEG tiles, Q90) of the same file, also in its
  own process, run back to back.
- imzML: a synthetic continuous image (``--msi`` pixels square, 4000 m/z
  bins) written with pyimzML; conversion time, then the latency of
  ``/images/{id}/spectrum`` through the real tile app over loopback HTTP.

- Benchmark slide: libvips ``tiffsave`` pyramid (512-px tiles, Q90) against
  ``microtome convert`` (default, and ``--tile-size 512``), optionally with
  an older commit's tree as the baseline in the same pass (``slide_speed``).

Standalone:  python -m bench.formats [--size 40000] [--msi 128] [--out FILE]
(updates the "Formats" section of bench/RESULTS.md);
python -m bench.formats slide [--width W --height H] [--baseline DIR]
(appends its raw record only).  From the suite runner:
run(ctx) -> list[dict], render(records) -> str.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import records

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


_VIPS_SLIDE = """
import sys
import pyvips
pyvips.Image.new_from_file(sys.argv[1], access="sequential").tiffsave(
    sys.argv[2], tile=True, pyramid=True, compression="jpeg", Q=90, tile_width=512,
    tile_height=512, bigtiff=True)
"""


def _convert_argv(src: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "microtome", "convert", str(src), "-o", str(out),
            "--overwrite", *extra]


def slide_speed(width: int, height: int, work: Path, log: Any = print,
                baseline: Path | None = None) -> dict[str, Any]:
    """The benchmark slide (bench/slide.py: Aperio-style, 256-px JPEG tiles)
    converted back to back, each in its own process: libvips' ``tiffsave``
    pyramid (512-px JPEG tiles, Q90: the peer the issue names), ``microtome
    convert`` as it is (level-0 tiles copied) and with ``--tile-size 512``
    (every tile decoded and re-encoded).  With ``baseline`` (a source tree of
    an older commit), its two conversions run in the same pass, so the
    improvement is measured under the same load.  Wall and CPU seconds (user
    + sys of the process, less sensitive to the machine's load) and peak RSS."""
    from bench.procs import run_measured
    from bench.slide import ensure_slide

    work.mkdir(parents=True, exist_ok=True)
    src = ensure_slide(work, width, height, log=log)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    runs: dict[str, list[str]] = {
        "vips": [sys.executable, "-c", _VIPS_SLIDE, str(src), str(work / "vips.tif")],
        "ours": _convert_argv(src, work / "ours"),
        "ours_512": _convert_argv(src, work / "ours512", "--tile-size", "512"),
    }
    envs = {k: env for k in runs}
    if baseline is not None:
        runs["before"] = _convert_argv(src, work / "before")
        runs["before_512"] = _convert_argv(src, work / "before512", "--tile-size", "512")
        envs.update({k: dict(os.environ, PYTHONPATH=str(baseline))
                     for k in ("before", "before_512")})
    out: dict[str, Any] = {"suite": "formats-slide-speed", "width": width, "height": height,
                           "megapixels": width * height / 1e6}
    for name, argv in runs.items():
        log(f"formats: slide speed, {name}")
        res = run_measured(argv, work / f"{name}.log", env=envs[name])
        if res["exit"] != 0:
            raise RuntimeError(f"{name} failed (see {work / (name + '.log')})")
        out[f"{name}_wall_s"] = res["wall_s"]
        out[f"{name}_cpu_s"] = res["cpu_s"]
        out[f"{name}_peak_mb"] = res["peak_rss_bytes"] / 1e6
    for name in [k for k in runs if k != "vips"]:
        for what in ("wall", "cpu"):
            out[f"{name}_{what}_ratio"] = out[f"{name}_{what}_s"] / out[f"vips_{what}_s"]
    out.update(dct_half_difference(src))
    return out


def dct_half_difference(src: Path, samples: int = 400) -> dict[str, Any]:
    """What building level 1 from DCT-domain half-size decodes (libjpeg-turbo
    scaled IDCT, `converters.build.half_decode`) changes against full decodes
    followed by the 2x2 area average: PSNR and largest difference over a
    spread of level-0 tiles, and the single-thread CPU of each way."""
    import resource

    import imagecodecs

    from microtome.converters.build import downsample2, half_decode
    from microtome.converters.sources import open_source

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_THREAD)
        return r.ru_utime + r.ru_stime

    with open_source(src) as reader:
        w, h = reader.info.width, reader.info.height
        pos = [(x, y) for y in range(0, h - 255, 256) for x in range(0, w - 255, 256)]
        step = max(1, len(pos) // samples)
        raws = [reader.raw_tile(x, y, 256) for x, y in pos[::step][:samples]]
    tiles = [r for r in raws if r is not None]
    t = cpu()
    halves = [half_decode(r, 256) for r in tiles]
    half_s = cpu() - t
    t = cpu()
    refs = [downsample2(np.asarray(imagecodecs.jpeg8_decode(r))) for r in tiles]
    full_s = cpu() - t
    a = np.stack([x for x in halves if x is not None]).astype(np.float64)
    b = np.stack([r for r, x in zip(refs, halves, strict=True) if x is not None])
    mse = float(np.mean((a - b) ** 2))
    return {"dct_tiles": len(tiles),
            "dct_half_psnr_db": float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse)),
            "dct_half_max_abs": int(np.abs(a - b).max()),
            "dct_half_cpu_s": half_s, "full_decode_avg_cpu_s": full_s}


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
    sp = by.get("formats-slide-speed")
    if sp:
        lines += [f"- Benchmark slide ({sp['width']} x {sp['height']}, Aperio-style 256-px "
                  "JPEG tiles), each conversion in its own process, back to back "
                  "(ratio = time / libvips' time in the same pass):", "",
                  "| | wall | ratio | CPU | ratio | peak RSS |", "|---|---:|---:|---:|---:|---:|",
                  f"| libvips `tiffsave` pyramid (512-px JPEG tiles, Q90) | "
                  f"{sp['vips_wall_s']:.1f} s | 1 | {sp['vips_cpu_s']:.1f} s | 1 | "
                  f"{sp['vips_peak_mb']:.0f} MB |"]
        labels = {"ours": "`microtome convert` (level-0 tiles copied)",
                  "ours_512": "`microtome convert --tile-size 512` (all re-encoded)",
                  "before": "the same, before (baseline commit)",
                  "before_512": "`--tile-size 512`, before (baseline commit)"}
        for key, label in labels.items():
            if f"{key}_wall_s" in sp:
                lines.append(f"| {label} | {sp[key + '_wall_s']:.1f} s | "
                             f"{sp[key + '_wall_ratio']:.2f} | {sp[key + '_cpu_s']:.1f} s | "
                             f"{sp[key + '_cpu_ratio']:.2f} | {sp[key + '_peak_mb']:.0f} MB |")
        if "dct_half_psnr_db" in sp:
            lines.append(f"\nLevel 1 from DCT-domain half-size decodes vs full decodes + 2x2 "
                         f"area average ({sp['dct_tiles']} level-0 tiles): PSNR "
                         f"{sp['dct_half_psnr_db']:.1f} dB, largest difference "
                         f"{sp['dct_half_max_abs']} grey levels; one thread's CPU "
                         f"{sp['dct_half_cpu_s']:.2f} s vs {sp['full_decode_avg_cpu_s']:.2f} s.")
        if "loadavg" in sp:
            lines.append(f"\nLoad average {sp['loadavg'][0]:.1f} (2 cores, shared).")
        lines.append("")
    m = by.get("formats-imzml")
    if m:
        lines += [f"- imzML, continuous, {m['side']} x {m['side']} pixels x {m['bins']} m/z "
                  f"({m['ibd_mb']:.0f} MB .ibd): conversion {m['convert_s']:.1f} s; "
                  f"`/images/{{id}}/spectrum` over loopback HTTP (200 random pixels, one "
                  f"client): p50 {m['spectrum_p50_ms']:.1f} ms, p99 "
                  f"{m['spectrum_p99_ms']:.1f} ms.", ""]
    return "\n".join(lines)


def slide_main(argv: list[str]) -> None:
    """``python -m bench.formats slide [--width W --height H] [--baseline DIR]``: the
    benchmark slide converted by us and by libvips (and an older tree) side by side;
    saved as the ``formats_slide`` record (bench/records/formats_slide.json)."""
    ap = argparse.ArgumentParser(prog="bench.formats slide")
    ap.add_argument("--width", type=int, default=16384)
    ap.add_argument("--height", type=int, default=12288)
    ap.add_argument("--baseline", type=Path, default=None,
                    help="source tree of an older commit (git archive REV | tar -x -C DIR)")
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "slide-speed")
    args = ap.parse_args(argv)
    rec = records.Recording("formats_slide", "python -m bench.formats slide "
                            f"--width {args.width} --height {args.height}"
                            + (f" --baseline {args.baseline}" if args.baseline else ""))
    fig = slide_speed(args.width, args.height, args.work, baseline=args.baseline)
    fig["loadavg"] = list(os.getloadavg())
    rec.add(fig)
    print(render(rec.figures))
    print(f"wrote {records.save_and_report(rec)}")


def main() -> None:
    if sys.argv[1:2] == ["slide"]:
        slide_main(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(prog="bench.formats")
    ap.add_argument("--size", type=int, default=40000)
    ap.add_argument("--msi", type=int, default=128)
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "formats")
    args = ap.parse_args()
    rec = records.Recording("formats", f"python -m bench.formats --size {args.size} "
                            f"--msi {args.msi}")
    rec.add(giant_jpeg(args.size, args.work))
    rec.add(imzml(args.msi, args.work))
    print(render(rec.figures))
    print(f"wrote {records.save_and_report(rec)}")


if __name__ == "__main__":
    main()
