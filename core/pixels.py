"""The seam through which non-tile code reads pixels with the tile server's caches.

Annotation crops (and later analysis reads) must not open their own pyramids:
the tile server's opened-image cache and decoded-chunk cache should serve
them too.  The tile server provides a `PixelSource` under `PIXELS`; readers
use it without importing ``tileserver`` (which nothing but the assembly does).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from aiohttp import web

from microtome.pyramid.reader import Pyramid

T = TypeVar("T")


class PixelSource(Protocol):
    async def open_image(self, request: web.Request, image_id: str) -> Pyramid:
        """The opened image, after the same access checks as its tiles."""
        ...

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU work on pixels off the event loop (the tile server's pool)."""
        ...

    def forget(self, root: Path | str) -> None:
        """Drop opened images stored under `root` (changed or deleted)."""
        ...


PIXELS: web.AppKey[PixelSource] = web.AppKey("pixels", PixelSource)
