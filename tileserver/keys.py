"""Application keys for the tile server's state (set by tileserver.app)."""

from __future__ import annotations

from aiohttp import web

from .resolver import Resolver
from .service import TileService

SERVICE = web.AppKey("tile_service", TileService)
RESOLVER = web.AppKey("tile_resolver", Resolver)
