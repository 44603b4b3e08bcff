"""The benchmark run: data, conversions, servers, load passes, records.

Fairness rules applied throughout:
- every server serves the same generated slide (SVS for the Python peers,
  the vips x2 pyramid of it for IIPImage, our OME-Zarr of it for us), at JPEG
  quality 75 in 256 px tiles;
- every server gets the same request list, mapped onto its URL scheme;
- servers are interleaved in ABBA blocks (A B C D D C B A) so slow drifts of
  machine load hit every server alike, and the reported figure is a ratio of
  throughputs;
- every input file is read once before the passes so the OS page cache is
  warm for everyone: "cold" means a freshly started server process (its own
  caches empty), not a cold disk;
- the load generator is a separate process on the same (2-core) machine.

Extra suites (e.g. annotations) plug in through `EXTRA_SUITES`: a module with
``run(ctx: SuiteContext) -> list[dict]`` and optionally
``render(records: list[dict]) -> str`` (a Markdown section for RESULTS.md).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import convert, deps, machine, records, servers, slide, tilelists
from bench.procs import tree_cpu_seconds
from bench.servers import ServerSpec

BENCH = Path(__file__).resolve().parent
DATA = BENCH / "data"
WORK = BENCH / "work"
RESULTS = BENCH / "results"

#: Modules providing extra suites; missing ones are reported as not run.
EXTRA_SUITES = (
    "bench.annotations",
    "bench.annotation_table",
    "bench.formats",
    "bench.client",
    "bench.histogram",
    "bench.scaleout",
    "bench.s3tiles",
    "bench.tiledb",
    "bench.analysis",
    "bench.activity",
    "bench.floor",
)

#: Suites with a RESULTS.md section that `make bench` does not run (too long, or
#: needing the embedded PostgreSQL with pgvector): run on their own, they save
#: their record and regenerate RESULTS.md.
STANDALONE_SUITES = (
    "bench.retrieval",
    "bench.retrieval_eval",  # python -m bench.retrieval_eval (held-out, hand-labelled tissue)
    "bench.formats_slide",  # python -m bench.formats slide (minutes per conversion)
    "bench.analysis_large",  # python -m bench.analysis --large-only (the 65536 x 49152 slide)
)


@dataclass
class Config:
    quick: bool
    width: int
    height: int
    list_sizes: dict[str, int]
    concurrencies: list[int]
    #: Time bound of the IIIF, thumbnail and plug-in suites' passes.
    pass_seconds: float
    peers: list[str]
    ours_workers: int = 2
    iip_procs: int = 2
    peer_threads: int = 4
    regions: int = 0
    thumbnails: int = 0
    #: Times the ABBA sequence of each tile scenario is run (the guard takes the
    #: median and reports the spread between repeats as its noise).
    repeats: int = 1
    #: Sample tiles whose pixels are compared with the openslide server's.
    pixel_samples: int = 24
    #: A tile pass is the first `pass_requests` tiles of its list, for every server
    #: (same requests, same level mix); `pass_cap_s` only stops a stuck pass.
    pass_requests: int = 4000
    pass_cap_s: float = 180.0
    convert_always: bool = True
    extra_suites: bool = True
    seed: int = 20261124

    @classmethod
    def full(cls) -> Config:
        return cls(False, 65536, 49152, {"panning": 40000, "uniform": 40000}, [8, 32, 64],
                   6.0, ["openslide", "large_image", "iipimage"], regions=600, thumbnails=48,
                   pass_requests=4000, pass_cap_s=180.0)

    @classmethod
    def quick_(cls) -> Config:
        # Top three levels hold ~16k tiles: enough for 3 s cold passes at ~4k tiles/s.
        return cls(True, 32768, 24576, {"panning": 12000, "uniform": 12000}, [32], 2.5,
                   ["openslide"], convert_always=False, repeats=2, pixel_samples=8,
                   pass_requests=3000, pass_cap_s=60.0)


@dataclass
class SuiteContext:
    """What an extra suite gets: where to work, how long a pass may take, a logger,
    and `record` to add one figure (a dict) to the suite's record
    (``bench/records/<suite>.json``, saved when its ``run`` returns)."""

    quick: bool
    workdir: Path
    logdir: Path
    pass_seconds: float
    log: Callable[[str], None]
    record: Callable[[dict], None]


@dataclass
class Recorder:
    """The tile run's records: streamed as JSON lines to ``path`` as they come (an
    interrupted run keeps them) and kept for the record document."""

    path: Path
    records: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def __call__(self, rec: dict) -> None:
        rec = {"t": round(time.time(), 1), **rec}
        self.records.append(rec)
        with self.path.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load_pass(spec: ServerSpec, paths_file: Path, limit: int, concurrency: int,
              seconds: float) -> dict:
    """One bounded pass of the load generator (its own process) plus server CPU."""
    argv = [sys.executable, "-m", "bench.load", "--base", spec.base, "--paths", str(paths_file),
            "--limit", str(limit), "--concurrency", str(concurrency),
            "--max-seconds", str(seconds)]
    cpu0 = tree_cpu_seconds(spec.pid)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    cpu = tree_cpu_seconds(spec.pid) - cpu0
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr.strip()[-500:]}")
    res = json.loads(out.stdout)
    res["server_cpu_s"] = round(cpu, 3)
    n = res["ok"]  # CPU per *successful* tile: errors are cheap, they must not flatter it
    res["server_cpu_s_per_1000"] = round(cpu / n * 1000, 3) if n else None
    return res


SAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}


def fetch_tiles(spec: ServerSpec, tiles: list[tilelists.Tile]) -> tuple[list, dict]:
    """Decoded sample tiles (numpy arrays) from a running server, and what its JPEGs
    look like (chroma subsampling, mean bytes)."""
    import io
    import urllib.request

    import numpy as np
    from PIL import Image, JpegImagePlugin

    out, sizes, sampling = [], [], set()
    for t in tiles:
        with urllib.request.urlopen(spec.base + spec.tile(*t), timeout=30) as r:
            body = r.read()
        im = Image.open(io.BytesIO(body))
        sampling.add(SAMPLING.get(JpegImagePlugin.get_sampling(im), "other"))
        sizes.append(len(body))
        out.append(np.asarray(im.convert("RGB")))
    return out, {"chroma": "/".join(sorted(sampling)), "mean_bytes": round(float(np.mean(sizes)))}


def same_pixels(pixels: dict[str, list], tiles: list[tilelists.Tile]) -> dict:
    """Check every server answers the same tiles with the same pixels as the openslide
    server (the reference): tile shapes equal, mean absolute difference small."""
    import numpy as np

    ref = pixels.get("openslide")
    out: dict = {"tiles": len(tiles), "reference": "openslide", "servers": {}}
    if ref is None:
        return out
    for name, arrs in pixels.items():
        if name == "openslide":
            continue
        shapes_equal = sum(a.shape == b.shape for a, b in zip(arrs, ref, strict=True))
        diffs = [float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
                 for a, b in zip(arrs, ref, strict=True) if a.shape == b.shape]
        out["servers"][name] = {
            "same_shape": shapes_equal,
            "mean_abs_diff": round(float(np.mean(diffs)), 2) if diffs else None,
            "max_tile_mean_abs_diff": round(max(diffs), 2) if diffs else None,
        }
    return out


def abba(specs: list[ServerSpec], repeats: int = 1) -> list[tuple[int, ServerSpec]]:
    """Blocks A B C C B A (repeated): each server's mean position in time is the same."""
    order = (specs + specs[::-1]) * repeats
    return list(enumerate(order))


def write_paths(spec: ServerSpec, name: str, urls: list[str]) -> Path:
    path = WORK / "lists" / f"{spec.name}-{name}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(urls) + "\n")
    return path


def tile_suite(cfg: Config, specs: list[ServerSpec], record: Recorder) -> None:
    w, h = cfg.width, cfg.height
    lists = {
        "panning": tilelists.panning(w, h, cfg.list_sizes["panning"], cfg.seed),
        "uniform": tilelists.uniform(w, h, cfg.list_sizes["uniform"], cfg.seed + 1),
    }
    n = cfg.pass_requests
    # Every server gets the same first n tiles: report their per-level mix.
    mix = {k: {str(lv): c for lv, c in sorted(Counter(t[0] for t in v[:n]).items())}
           for k, v in lists.items()}
    record({"suite": "lists", **{k: len(v) for k, v in lists.items()}, "pass_requests": n,
            "levels": mix})
    for lname, tiles in lists.items():
        files = {s.name: write_paths(s, f"tiles-{lname}", [s.tile(*t) for t in tiles])
                 for s in specs}
        for conc in cfg.concurrencies:
            for block, spec in abba(specs, cfg.repeats):
                spec.start(WORK / "logs")
                try:
                    cold = load_pass(spec, files[spec.name], n, conc, cfg.pass_cap_s)
                    warm = load_pass(spec, files[spec.name], cold["requests"], conc,
                                     cfg.pass_cap_s)
                finally:
                    spec.stop()
                for temp, res in (("cold", cold), ("warm", warm)):
                    record({"suite": "tiles", "server": spec.name, "list": lname,
                            "concurrency": conc, "temp": temp, "block": block, **res})
                log(f"tiles {lname} c={conc} {spec.name:11s} block {block}: "
                    f"cold {cold['rps']:.0f}/s p99 {cold['p99_ms']:.1f} ms, "
                    f"warm {warm['rps']:.0f}/s p99 {warm['p99_ms']:.1f} ms, "
                    f"errors {cold['errors'] + warm['errors']}")


def extras_suite(cfg: Config, specs: list[ServerSpec], record: Recorder) -> None:
    """IIIF aligned/unaligned regions and thumbnails, ABBA, concurrency 8."""
    w, h = cfg.width, cfg.height
    rng = random.Random(cfg.seed + 7)
    sizes = rng.sample(range(128, 1025), cfg.thumbnails)
    kinds: dict[str, list[str]] = {
        "iiif-aligned": [r + "/0/default.jpg"
                         for r in tilelists.iiif_regions(w, h, cfg.regions, cfg.seed + 2, True)],
        "iiif-unaligned": [r + "/0/default.jpg"
                           for r in tilelists.iiif_regions(w, h, cfg.regions // 2, cfg.seed + 3,
                                                           False)],
    }
    takers = [s for s in specs if s.iiif or s.thumbnail]
    for block, spec in abba(takers):
        spec.start(WORK / "logs")
        try:
            for kind, rests in kinds.items():
                if spec.iiif is None:
                    continue
                f = write_paths(spec, kind, [spec.iiif(r) for r in rests])
                res = load_pass(spec, f, 0, 8, cfg.pass_seconds)
                record({"suite": kind, "server": spec.name, "concurrency": 8,
                        "block": block, **res})
                log(f"{kind} {spec.name}: {res['rps']:.0f}/s p99 {res['p99_ms']:.1f} ms "
                    f"errors {res['errors']}")
            if spec.thumbnail is not None:
                f = write_paths(spec, "thumbnails", [spec.thumbnail(n) for n in sizes])
                res = load_pass(spec, f, 0, 4, cfg.pass_seconds * 2)
                record({"suite": "thumbnails", "server": spec.name, "concurrency": 4,
                        "block": block, **res})
                log(f"thumbnails {spec.name}: {res['rps']:.1f}/s p50 {res['p50_ms']:.0f} ms "
                    f"errors {res['errors']}")
        finally:
            spec.stop()


def extra_suites(cfg: Config, record: Recorder, report: Callable[[], None],
                 directory: Path | None = None) -> None:
    """Each extra suite into its own record; a failing one keeps its last record (the
    failure is noted in the tile run's records), and RESULTS.md is re-rendered after
    each suite."""
    for name in EXTRA_SUITES:
        if importlib.util.find_spec(name) is None:
            record({"suite": "extra", "module": name, "status": "not present"})
            continue
        mod = importlib.import_module(name)
        rec = records.Recording(name.removeprefix("bench."), "python -m bench",
                                quick=cfg.quick, directory=directory)
        ctx = SuiteContext(cfg.quick, WORK, WORK / "logs", cfg.pass_seconds, log, rec)
        try:
            mod.run(ctx)
        except Exception as exc:
            record({"suite": "extra", "module": name, "status": f"failed: {exc!r}"})
            log(f"{name} failed: {exc!r}")
            continue
        rec.save()
        record({"suite": "extra", "module": name, "status": "ok"})
        report()


def _stale(target: Path) -> bool:
    """A cached conversion is stale when the converter or storage code is newer than it."""
    repo = BENCH.parent
    made = (target / "zarr.json").stat().st_mtime if (target / "zarr.json").exists() else 0.0
    code = [p for d in ("converters", "pyramid") for p in (repo / d).rglob("*.py")]
    return any(p.stat().st_mtime > made for p in code)


def prepare(cfg: Config, record: Recorder, status: dict[str, str | None]
            ) -> tuple[Path, Path | None, Path | None]:
    """Slide, vips pyramid and our OME-Zarr; returns (svs, vips tif, zarr root)."""
    svs = slide.ensure_slide(DATA, cfg.width, cfg.height, log=log)
    convert.warm_page_cache(svs)
    record({"suite": "slide", "path": svs.name, "width": cfg.width, "height": cfg.height,
            "bytes": svs.stat().st_size})
    logdir = WORK / "logs"
    tif: Path | None = DATA / f"{svs.stem}-vips.tif"
    assert tif is not None
    wants_vips = cfg.convert_always or "iipimage" in cfg.peers
    if status["vips"] is None and wants_vips and (cfg.convert_always or not tif.exists()):
        log("convert: vips tiffsave ...")
        res = convert.vips_pyramid(svs, tif, logdir)
        record({"suite": "convert", "tool": "vips", "megapixels": cfg.width * cfg.height / 1e6,
                **res})
        log(f"convert: vips {res['wall_s']:.1f} s, peak RSS {res['peak_rss_bytes'] / 1e6:.0f} MB")
    if not tif.exists():
        tif = None
    zroot: Path | None = WORK / "zarr"
    assert zroot is not None
    target = zroot / (svs.stem + ".ome.zarr")
    if cfg.convert_always or not target.exists() or _stale(target):
        log("convert: microtome convert ...")
        res = convert.microtome_convert(svs, zroot, logdir)
        record({"suite": "convert", "tool": "microtome",
                "megapixels": cfg.width * cfg.height / 1e6, **res})
        log(f"convert: microtome exit {res['exit']} in {res['wall_s']:.1f} s, "
            f"peak RSS {res['peak_rss_bytes'] / 1e6:.0f} MB")
    if not target.exists():
        status["microtome"] = status["microtome"] or "conversion failed (see convert record)"
        zroot = None
    else:
        convert.warm_page_cache(target)
    if tif is not None:
        convert.warm_page_cache(tif)
    return svs, tif, zroot


def build_specs(cfg: Config, svs: Path, tif: Path | None, zroot: Path | None,
                status: dict[str, str | None]) -> list[ServerSpec]:
    specs: list[ServerSpec] = []
    if zroot is not None and status["microtome"] is None:
        specs.append(servers.microtome(zroot, svs.stem, cfg.ours_workers))
    if "openslide" in cfg.peers:
        # Same resources for every server: as many processes as Microtome's workers.
        specs.append(servers.openslide_peer(svs, cfg.peer_threads, cfg.ours_workers))
    if "large_image" in cfg.peers and status["large_image"] is None:
        specs.append(servers.large_image_peer(svs, cfg.peer_threads, cfg.ours_workers))
    if "iipimage" in cfg.peers:
        reason = status["lighttpd"] or status["iipsrv"] or (
            None if tif is not None else "no vips pyramid")
        if reason is None and tif is not None:
            specs.append(servers.iipimage_peer(tif, cfg.iip_procs))
        else:
            status["iipimage"] = reason
    return specs


def _no_checkpoint(records: list[dict]) -> None:
    pass


def run(cfg: Config, out: Path,
        checkpoint: Callable[[list[dict]], None] = _no_checkpoint) -> list[dict]:
    """Run every suite; ``checkpoint`` gets the records so far after each long suite
    (the full run saves the tile record and re-renders RESULTS.md there, so an
    interrupted run still reports)."""
    record = Recorder(out)
    t0 = time.time()
    log(f"bench: {'quick' if cfg.quick else 'full'} run, results -> {out}")
    record({"suite": "machine", **machine.describe(), "config": cfg.__dict__})
    status = deps.ensure(log)
    svs, tif, zroot = prepare(cfg, record, status)
    specs = build_specs(cfg, svs, tif, zroot, status)
    record({"suite": "servers", "status": status,
            "servers": {s.name: s.setup for s in specs}})
    # Every run checks pixels (the quick guard fails on a pixel change).
    samples = tilelists.uniform(cfg.width, cfg.height, cfg.pixel_samples, cfg.seed + 9)
    pixels: dict[str, list] = {}
    jpeg: dict[str, dict] = {}
    for s in specs if samples else []:  # a server that cannot start is reported, not fatal
        try:
            s.start(WORK / "logs")
            pixels[s.name], jpeg[s.name] = fetch_tiles(s, samples)
        except (RuntimeError, OSError) as exc:
            status[s.name] = str(exc)
            log(f"{s.name}: {exc}")
        finally:
            s.stop()
    specs = [s for s in specs if not status.get(s.name)]
    record({"suite": "same-pixels", **same_pixels(pixels, samples), "jpeg": jpeg})
    try:
        tile_suite(cfg, specs, record)
        checkpoint(record.records)
        if not cfg.quick and (cfg.regions or cfg.thumbnails):
            extras_suite(cfg, specs, record)
            checkpoint(record.records)
        if not cfg.quick and cfg.extra_suites:
            extra_suites(cfg, record, lambda: checkpoint(record.records))
    finally:
        for s in specs:
            s.stop()
    record({"suite": "end", "elapsed_s": round(time.time() - t0, 1),
            "loadavg": machine.describe()["loadavg"], "status": status})
    return record.records
