"""Tiles from S3 vs local disk, and the S3 client libraries compared.

S3 here is moto's standalone server on loopback (a real S3 API over HTTP, in
its own process, sharing this machine's cores with the tile server): the
figures measure our request pattern and per-request overhead, not a cloud
network's latency.

1. Clients (`clients`): 32 KiB range GETs (a JPEG chunk's size) of one 16 MiB
   object, sequential (latency) and 16 at a time (throughput), with obstore
   (sync calls from threads, and `get_ranges` coalescing), s3fs (fsspec over
   aiobotocore, `cat_ranges`) and boto3.
2. Tiles (`tiles`): the same slide converted once, published to S3; `microtome
   tiles --root DIR` vs `--root s3://...`, one worker each, the same panning
   tile list, blocks local, s3, s3, local (ABBA).  Each block starts the server
   fresh: cold pass, then the same tiles again (warm).  S3 requests per tile
   from the server's own counter (/metrics).

Standalone:  python -m bench.s3tiles [--quick] [--size WxH] [--tiles N]
From the suite runner (bench.run.EXTRA_SUITES):  run(ctx), render(records).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PY = sys.executable
CREDS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
         "AWS_REGION": "us-east-1"}
BUCKET = "bench"


# -- the S3 server --------------------------------------------------------------------
class Moto:
    def __init__(self, logdir: Path) -> None:
        from bench.procs import Proc, free_port

        self.port = free_port()
        self.proc = Proc("moto", [PY, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                  str(self.port)], logdir / "moto.log", env=CREDS)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {**CREDS, "AWS_ENDPOINT_URL": self.endpoint}

    def __enter__(self) -> Moto:
        self.proc.start()
        self.proc.wait_ready(self.endpoint + "/moto-api/")
        import boto3

        boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="bench",
                     aws_secret_access_key="bench", region_name="us-east-1"
                     ).create_bucket(Bucket=BUCKET)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.stop()


# -- 1. client libraries --------------------------------------------------------------
def clients(moto: Moto, n: int = 400) -> dict[str, Any]:
    """Range-GET latency and throughput of obstore, s3fs and boto3 against one object."""
    import random

    import boto3
    import obstore
    import s3fs
    from obstore.store import S3Store

    size, chunk = 16 * 1024**2, 32 * 1024
    key = "clients/object.bin"
    boto = boto3.client("s3", endpoint_url=moto.endpoint, aws_access_key_id="bench",
                        aws_secret_access_key="bench", region_name="us-east-1")
    boto.put_object(Bucket=BUCKET, Key=key, Body=os.urandom(size))
    rng = random.Random(5)
    offsets = [rng.randrange(0, size - chunk) for _ in range(n)]
    ob = S3Store(BUCKET, endpoint=moto.endpoint, access_key_id="bench",
                 secret_access_key="bench", region="us-east-1",
                 client_options={"allow_http": True})
    fs = s3fs.S3FileSystem(key="bench", secret="bench",
                           client_kwargs={"endpoint_url": moto.endpoint,
                                          "region_name": "us-east-1"})
    path = f"{BUCKET}/{key}"

    def ob_get(off: int) -> int:
        return len(obstore.get_range(ob, key, start=off, length=chunk))

    def fs_get(off: int) -> int:
        return len(fs.cat_file(path, start=off, end=off + chunk))

    def boto_get(off: int) -> int:
        r = boto.get_object(Bucket=BUCKET, Key=key, Range=f"bytes={off}-{off + chunk - 1}")
        return len(r["Body"].read())

    out: dict[str, Any] = {"suite": "s3-clients", "object_mb": size / 1024**2,
                           "range_kb": chunk / 1024, "requests": n}
    for name, fn in (("obstore", ob_get), ("s3fs", fs_get), ("boto3", boto_get)):
        fn(0)  # connection set up outside the timing
        lat = []
        for off in offsets[: n // 2]:
            t0 = time.perf_counter()
            fn(off)
            lat.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(fn, offsets))
        out[name] = {"p50_ms": round(statistics.median(lat) * 1e3, 2),
                     "seq_per_s": round(len(lat) / sum(lat), 1),
                     "par16_per_s": round(n / (time.perf_counter() - t0), 1)}
    # The server's own cost: a whole 32 KiB object vs a 32 KiB range of the big one
    # (moto reads the whole stored object for a range request).
    obstore.put(ob, "clients/small.bin", os.urandom(chunk))
    lat = []
    for _ in range(50):
        t0 = time.perf_counter()
        obstore.get(ob, "clients/small.bin").bytes()
        lat.append(time.perf_counter() - t0)
    out["obstore_small_object_p50_ms"] = round(statistics.median(lat) * 1e3, 2)
    # Coalescing: the 16 chunks of one shard row in one call.
    starts = [i * chunk for i in range(16)]
    t0 = time.perf_counter()
    for _ in range(20):
        obstore.get_ranges(ob, key, starts=starts, lengths=[chunk] * 16)
    out["obstore_get_ranges_16_ms"] = round((time.perf_counter() - t0) / 20 * 1e3, 2)
    t0 = time.perf_counter()
    for _ in range(20):
        fs.cat_ranges([path] * 16, starts, [s + chunk for s in starts])
    out["s3fs_cat_ranges_16_ms"] = round((time.perf_counter() - t0) / 20 * 1e3, 2)
    return out


# -- 2. tiles ---------------------------------------------------------------------------
def _metric(base: str, name: str) -> float:
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def _publish(zarr: Path, url: str, env: dict[str, str]) -> float:
    code = ("import sys; from microtome.converters.publish import publish; "
            "publish(__import__('pathlib').Path(sys.argv[1]), sys.argv[2], overwrite=True)")
    t0 = time.perf_counter()
    subprocess.run([PY, "-c", code, str(zarr), url], env={**os.environ, **env}, check=True,
                   cwd=REPO)
    return time.perf_counter() - t0


def tiles(moto: Moto, work: Path, width: int, height: int, n: int, log: Any = print
          ) -> list[dict[str, Any]]:
    from bench import slide, tilelists
    from bench.procs import Proc, free_port, tree_cpu_seconds
    from bench.run import DATA, load_pass, write_paths
    from bench.servers import ServerSpec

    svs = slide.ensure_slide(DATA, width, height, log=log)
    root = work / "local"
    zarr = root / "slide.ome.zarr"
    if not (zarr / "zarr.json").exists():
        log(f"s3tiles: converting {svs.name}")
        subprocess.run([PY, "-m", "microtome", "convert", str(svs), "-o", str(root),
                        "--quality", "75", "--overwrite"], check=True, cwd=REPO,
                       stdout=subprocess.DEVNULL)
        (root / f"{svs.stem}.ome.zarr").rename(zarr)
    url = f"s3://{BUCKET}/images"
    upload_s = _publish(zarr, f"{url}/slide.ome.zarr", moto.env)
    stored = sum(p.stat().st_size for p in zarr.rglob("*") if p.is_file())
    log(f"s3tiles: published {stored / 1e6:.0f} MB to moto in {upload_s:.1f} s")
    tl = tilelists.panning(width, height, n, seed=11)
    records: list[dict[str, Any]] = [{"suite": "s3-setup", "width": width, "height": height,
                                      "stored_mb": round(stored / 1e6, 1),
                                      "upload_s": round(upload_s, 2), "tiles": len(tl)}]
    def argv(where: str) -> Any:
        return lambda port, _w: [PY, "-m", "microtome", "tiles", "--root", where, "--host",
                                 "127.0.0.1", "--port", str(port), "--workers", "1"]

    specs = {name: ServerSpec(name=f"s3bench-{name}", setup="", make_argv=argv(where),
                              ready_path="/dzi/slide.dzi",
                              tile=lambda lv, c, r: f"/dzi/slide_files/{lv}/{c}_{r}.jpg")
             for name, where in (("local", str(root)), ("s3", url))}
    logdir = work / "logs"
    for block, name in enumerate(("local", "s3", "s3", "local")):
        spec = specs[name]
        # Start with the AWS variables of the moto server (the local server ignores them).
        spec.port = free_port()
        spec.proc = Proc(spec.name, spec.make_argv(spec.port, logdir), logdir / f"{spec.name}.log",
                         env=moto.env, cwd=REPO)
        spec.proc.start()
        try:
            spec.proc.wait_ready(spec.base + spec.ready_path)
            paths = write_paths(spec, "s3tiles", [spec.tile(*t) for t in tl])
            for phase in ("cold", "warm"):
                g0 = _metric(spec.base, "microtome_store_remote_requests_total")
                m0 = tree_cpu_seconds(moto.proc.pid)
                res = load_pass(spec, paths, 0, 16, 600.0)
                # The S3 server's own CPU in this pass (moto is a Python server on the
                # same 2 cores: what it burns, the tile server cannot use).
                moto_cpu = tree_cpu_seconds(moto.proc.pid) - m0
                gets = _metric(spec.base, "microtome_store_remote_requests_total") - g0
                rec = {"suite": "s3-tiles", "store": name, "phase": phase, "block": block,
                       "concurrency": 16, "s3_gets": gets,
                       "s3_gets_per_tile": round(gets / max(1, res["ok"]), 3),
                       "moto_cpu_s": round(moto_cpu, 3), **res}
                records.append(rec)
                log(f"s3tiles {name} {phase}: {res['rps']:.0f} tiles/s, "
                    f"p99 {res['p99_ms']:.1f} ms, errors {res['errors']}, "
                    f"S3 GETs/tile {rec['s3_gets_per_tile']}, moto CPU {moto_cpu:.2f} s")
        finally:
            spec.stop()
    return records


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    rows = [r for r in records if r.get("suite") == "s3-tiles"]
    out: dict[str, Any] = {}
    for phase in ("cold", "warm"):
        rps = {s: statistics.mean(r["rps"] for r in rows if r["store"] == s and
                                  r["phase"] == phase) for s in ("local", "s3")
               if any(r["store"] == s and r["phase"] == phase for r in rows)}
        if len(rps) == 2:
            out[phase] = {"local_rps": round(rps["local"], 1), "s3_rps": round(rps["s3"], 1),
                          "ratio": round(rps["s3"] / rps["local"], 3),
                          "s3_gets_per_tile": round(statistics.mean(
                              r["s3_gets_per_tile"] for r in rows
                              if r["store"] == "s3" and r["phase"] == phase), 3)}
            s3 = [r for r in rows if r["store"] == "s3" and r["phase"] == phase
                  and "moto_cpu_s" in r]
            if s3:
                # moto's CPU per tile, and as a share of the pass's wall time on one core.
                out[phase]["moto_cpu_ms_per_tile"] = round(statistics.mean(
                    r["moto_cpu_s"] / max(1, r["ok"]) * 1e3 for r in s3), 3)
                out[phase]["moto_cpu_share"] = round(statistics.mean(
                    r["moto_cpu_s"] / r["elapsed_s"] for r in s3), 3)
                out[phase]["server_cpu_ms_per_tile"] = round(statistics.mean(
                    r["server_cpu_s"] / max(1, r["ok"]) * 1e3 for r in s3), 3)
    return out


def run(ctx: Any) -> list[dict[str, Any]]:
    """Entry point for `python -m bench` (bench.run.SuiteContext)."""
    work = ctx.workdir / "s3"
    size = (16384, 12288) if ctx.quick else (32768, 24576)
    with Moto(ctx.logdir) as moto:
        recs = [clients(moto)]
        recs += tiles(moto, work, *size, 1500 if ctx.quick else 3000, ctx.log)
    for r in recs:
        ctx.record(r)
    return recs


def render(records: list[dict[str, Any]]) -> str:
    lines = ["## Object storage (S3 on loopback vs local disk)", ""]
    c = next((r for r in records if r.get("suite") == "s3-clients"), None)
    setup = next((r for r in records if r.get("suite") == "s3-setup"), None)
    if c:
        lines += [f"- S3 clients, {c['requests']} random {c['range_kb']:.0f} KiB range GETs of a "
                  f"{c['object_mb']:.0f} MiB object on the moto server (loopback):", "",
                  "| client | p50 latency | sequential GET/s | 16 threads GET/s |",
                  "|---|---:|---:|---:|"]
        for name in ("obstore", "s3fs", "boto3"):
            v = c[name]
            lines.append(f"| {name} | {v['p50_ms']} ms | {v['seq_per_s']} | "
                         f"{v['par16_per_s']} |")
        if "obstore_small_object_p50_ms" in c:
            lines += ["", f"  A whole 32 KiB object with obstore: p50 "
                      f"{c['obstore_small_object_p50_ms']} ms (the moto server's own floor per "
                      f"request; it is a Python server sharing the cores with the client)."]
        lines += ["", f"  16 neighbouring ranges in one call: obstore `get_ranges` "
                  f"{c['obstore_get_ranges_16_ms']} ms (coalesced into one GET), s3fs "
                  f"`cat_ranges` {c['s3fs_cat_ranges_16_ms']} ms.", ""]
    s = summary(records)
    if setup and s:
        lines += [f"- Tiles: a {setup['width']} x {setup['height']} slide "
                  f"({setup['stored_mb']} MB stored), {setup['tiles']} panning tiles, "
                  f"concurrency 16, `microtome tiles --workers 1`, blocks local, s3, s3, local; "
                  f"each block a fresh server (cold), then the same tiles again (warm):", "",
                  "| pass | local tiles/s | S3 tiles/s | S3 / local | S3 GETs per tile |",
                  "|---|---:|---:|---:|---:|"]
        for phase in ("cold", "warm"):
            if phase in s:
                v = s[phase]
                lines.append(f"| {phase} | {v['local_rps']} | {v['s3_rps']} | "
                             f"{v['ratio']:.0%} | {v['s3_gets_per_tile']} |")
        lines.append("")
        cold = s.get("cold", {})
        if "moto_cpu_ms_per_tile" in cold:
            lines += [f"  The S3 server's own CPU (moto, a Python server on the same 2 cores) "
                      f"in the cold S3 passes: {cold['moto_cpu_ms_per_tile']} ms per tile, "
                      f"busy {cold['moto_cpu_share']:.0%} of the pass's wall time (one core "
                      f"= 100%); the tile server's CPU {cold['server_cpu_ms_per_tile']} ms per "
                      f"tile.", ""]
        load = next((r.get("loadavg") for r in records if r.get("loadavg")), None)
        if load:
            lines += [f"  Load average when measured: {load[0]:.1f} (1 min).", ""]
    return "\n".join(lines)


def collect(width: int, height: int, n: int) -> Iterator[dict[str, Any]]:
    """Every figure of a standalone run (bench.standalone)."""
    from bench.run import WORK

    work = WORK / "s3"
    with Moto(work / "logs") as moto:
        yield clients(moto)
        yield from tiles(moto, work, width, height, n)


def main(argv: list[str] | None = None) -> int:
    from bench import standalone

    return standalone.main("s3tiles", __doc__.splitlines()[0], collect, render,
                           full=(32768, 24576, 3000), quick=(16384, 12288, 1500), argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())
