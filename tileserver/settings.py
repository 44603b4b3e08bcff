"""Tile server settings (re-exported by tileserver.app)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from microtome.settings import Settings


@dataclass
class TileSettings:
    #: Threads for decode/resample/encode and file reads (CPU work off the loop).
    threads: int = os.cpu_count() or 2
    #: Encoded-tile LRU size, bytes.
    cache_bytes: int = 256 * 1024**2
    #: Opened images kept (metadata + cached shard indexes each).
    max_open_images: int = 256
    #: Largest output of one request (advertised as maxWidth/maxHeight/maxArea).
    max_width: int = 8192
    max_height: int = 8192
    max_area: int = 4096 * 4096
    #: Largest thumbnail edge, pixels.
    max_thumbnail: int = 2048
    #: How long an id → image resolution is trusted (folder mode), seconds.
    resolver_ttl: float = 2.0
    #: Cache-Control max-age for tiles and documents whose URL has no version.
    max_age: int = 3600

    @classmethod
    def from_settings(cls, settings: Settings) -> TileSettings:
        return cls(threads=max(1, settings.tile_threads),
                   cache_bytes=max(0, settings.tile_cache_bytes))
