"""The standalone tile app on a free loopback port (for sync HTTP clients)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from microtome.tileserver.app import TileSettings, create_tiles_app
from tests.livesrv import live_app


@contextmanager
def live_server(root: Path, settings: TileSettings | None = None) -> Iterator[str]:
    """Yield 'host:port' of a tile server over `root`; stop it on exit."""
    with live_app(lambda: create_tiles_app(root, settings or TileSettings(threads=2))) as url:
        yield url.removeprefix("http://")
