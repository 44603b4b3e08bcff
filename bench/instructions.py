"""Instructions per tile request, counted by valgrind's callgrind: a load-proof guard.

Throughput and CPU seconds move with whatever else the machine runs (on a
shared 2-core machine `--quick` has seen +100 % CPU per tile from load alone).
Executed instructions do not: callgrind counts them whatever the load.  The
tile server runs in-process behind aiohttp's test client; the script is
measured twice, with `small` and `large` request counts, so start-up and
imports cancel out:

    per request = (Ir(large) - Ir(small)) / (large - small)

Each pass is a fixed list over a synthetic slide: `warm` re-requests tiles
already in the tile cache (the handler, key, ETag and cache path alone),
`cold` asks for distinct tiles the first time (pass-through reads included),
`floor` sends the same URLs to bench/peers/floor_server.py's app (one fixed
JPEG of the slide's from memory): what aiohttp and the client cost alone, so
`warm` minus `floor` is Microtome's own work per cached tile.
Compare two checkouts with the same command; the figures are only comparable
on the same Python and library versions.

    python -m bench.instructions            # needs Debian's valgrind
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SMALL, LARGE = 50, 450


async def _drive(root: Path, mode: str, n: int) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from microtome.tileserver.app import TileSettings, create_tiles_app

    # Cold modes run with no tile cache, so every request reads (and, for
    # `render`, decodes and encodes) again.
    settings = TileSettings() if mode == "warm" else TileSettings(cache_bytes=0)
    app = create_tiles_app(root, settings)
    if mode == "floor":
        from bench.peers.floor_server import make_app

        app = make_app((root / "floor.jpg").read_bytes())
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        # 1024x1024 with 256-px tiles: DZI level 10 holds 4x4 stored chunks.
        tiles = [f"/dzi/slide_files/10/{c}_{r}.jpg" for r in range(4) for c in range(4)]
        regions = [f"/iiif/3/slide/{100 + 50 * (i % 8)},{100 + 50 * (i // 8)},300,300/256,/0/"
                   "default.jpg" for i in range(16)]
        urls = regions if mode == "render" else tiles
        for u in urls:  # open the image, warm the decoded-chunk and resolver caches
            assert (await client.get(u)).status == 200, u
        for i in range(n):
            resp = await client.get(urls[i % len(urls)])
            await resp.read()
            assert resp.status == 200
    finally:
        await client.close()


def _child(root: str, mode: str, n: int) -> None:
    asyncio.run(_drive(Path(root), mode, n))


def _count(root: Path, mode: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
               sys.executable, "-m", "bench.instructions", "--child", str(root), mode, str(n)]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        m = re.search(r"^(?:summary|totals):\s*(\d+)", out.read_text(), re.M)
        if m is None:
            raise RuntimeError("no totals in callgrind output")
        return int(m.group(1))


def _slide(root: Path) -> None:
    import imagecodecs
    import numpy as np

    from microtome.pyramid.layout import ImageMeta, Level
    from microtome.pyramid.writer import PyramidWriter

    yy, xx = np.mgrid[0:1024, 0:1024]
    img = np.stack([xx % 256, yy % 256, (xx + yy) % 256], axis=-1).astype(np.uint8)
    levels = [img]
    while max(levels[-1].shape[:2]) > 256:
        levels.append(levels[-1][::2, ::2])
    meta = ImageMeta(width=1024, height=1024, kind="rgb", dtype="uint8", tile_size=256,
                     shard_size=512, codec="jpeg", pixel_size_um=(0.25, 0.25), version="1",
                     name="slide", levels=tuple(Level(str(i), a.shape[1], a.shape[0], 2**i)
                                                for i, a in enumerate(levels)))
    writer = PyramidWriter(root / "slide.ome.zarr", meta, 90)
    writer.write_metadata()
    for lv, px in zip(meta.levels, levels, strict=True):
        for sy in range(-(-lv.height // 512)):
            for sx in range(-(-lv.width // 512)):
                chunks = {}
                for r in range(2):
                    for c in range(2):
                        block = np.zeros((256, 256, 3), np.uint8)
                        part = px[sy * 512 + r * 256:][:256, sx * 512 + c * 256:][:, :256]
                        if part.size:
                            block[:part.shape[0], :part.shape[1]] = part
                            chunks[(r, c)] = bytes(imagecodecs.jpeg8_encode(block, level=90))
                writer.write_shard(lv, sy, sx, chunks)
    (root / "floor.jpg").write_bytes(bytes(imagecodecs.jpeg8_encode(img[:256, :256], level=90)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", nargs=3, metavar=("ROOT", "MODE", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--modes", default="warm,floor,cold,render",
                    help="comma-separated passes to count (default: %(default)s)")
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child[0], args.child[1], int(args.child[2]))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is needed (Debian: apt install valgrind)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        _slide(Path(tmp))
        for mode in args.modes.split(","):
            small, large = _count(Path(tmp), mode, SMALL), _count(Path(tmp), mode, LARGE)
            per = (large - small) / (LARGE - SMALL)
            print(f"{mode:10s} {per / 1000:9.1f} k instructions per request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
