"""Peer: openslide-python's DeepZoomGenerator behind a small aiohttp server.

This is what Python users run today (the openslide-python ``deepzoom_server``
example, made async): per process one OpenSlide handle, tiles rendered in a
thread pool (openslide and Pillow's JPEG encoder release the GIL), no tile
cache; ``--processes N`` runs N such processes on one port, like Microtome's
tile workers.  Tile size 256, overlap 0, limit_bounds False, JPEG quality 75.
"""

from __future__ import annotations

import io
from typing import Any

import openslide
from aiohttp import web
from openslide.deepzoom import DeepZoomGenerator

from bench.peers.common import build_app, dzi_xml, parse_args, serve


def main() -> None:
    args = parse_args(__doc__ or "")
    serve(lambda: make_app(args), args.host, args.port, args.processes)


def make_app(args: Any) -> web.Application:
    slide = openslide.OpenSlide(args.slide)
    dz = DeepZoomGenerator(slide, tile_size=256, overlap=0, limit_bounds=False)
    width, height = slide.dimensions

    def get_tile(level: int, col: int, row: int) -> bytes | None:
        if not 0 <= level < dz.level_count:
            return None
        cols, rows = dz.level_tiles[level]
        if not (0 <= col < cols and 0 <= row < rows):
            return None
        buf = io.BytesIO()
        dz.get_tile(level, (col, row)).save(buf, "jpeg", quality=args.quality)
        return buf.getvalue()

    def get_thumbnail(size: int) -> bytes:
        buf = io.BytesIO()
        slide.get_thumbnail((size, size)).convert("RGB").save(buf, "jpeg", quality=args.quality)
        return buf.getvalue()

    return build_app(get_tile, get_thumbnail, dzi_xml(width, height, 256), args.threads)


if __name__ == "__main__":
    main()
