"""Peer: large_image (the Digital Slide Archive's tile library) behind aiohttp.

``large_image.open`` picks the openslide tile source for an SVS; tiles are
asked for as JPEG at quality 75 in 256 px tiles, rendered in a thread pool,
with large_image's own in-process tile cache left at its defaults (that cache
is part of its design).  large_image numbers levels from the level where the
whole image fits one tile (z = 0); Deep Zoom levels below that (images
smaller than a tile, a handful of tiles in all) are not served and are left
out of every request list.  ``--processes N`` runs N such processes (each
with its source and cache) on one port, like Microtome's tile workers.
"""

from __future__ import annotations

from typing import Any

import large_image
from aiohttp import web

from bench.peers.common import build_app, dzi_max_level, dzi_xml, parse_args, serve


def main() -> None:
    args = parse_args(__doc__ or "")
    serve(lambda: make_app(args), args.host, args.port, args.processes)


def make_app(args: Any) -> web.Application:
    source = large_image.open(
        args.slide, encoding="JPEG", jpegQuality=args.quality, tileWidth=256, tileHeight=256
    )
    meta = source.getMetadata()
    width, height = meta["sizeX"], meta["sizeY"]
    offset = dzi_max_level(width, height) - (meta["levels"] - 1)

    def get_tile(level: int, col: int, row: int) -> bytes | None:
        z = level - offset
        if not 0 <= z < meta["levels"]:
            return None
        try:
            return source.getTile(col, row, z)
        except large_image.exceptions.TileSourceXYZRangeError:
            return None

    def get_thumbnail(size: int) -> bytes:
        data, _ = source.getThumbnail(width=size, height=size, encoding="JPEG",
                                      jpegQuality=args.quality)
        return data

    return build_app(get_tile, get_thumbnail, dzi_xml(width, height, 256), args.threads)


if __name__ == "__main__":
    main()
