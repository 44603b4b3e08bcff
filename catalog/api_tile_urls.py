"""``GET /api/tile-urls``: the tile base URLs viewers spread tiles across.

``MICROTOME_TILE_URLS`` lists several host names of the same tile service
(HTTP/1.1 domain sharding, frontend/static/js/viewer/shard.js); empty when
tiles come from this origin (the default, and the right choice over HTTP/2).
Public: the list is the same for everyone and reveals no image.
"""

from __future__ import annotations

from aiohttp import web

from microtome.catalog.state import CATALOG
from microtome.core.http import json_response


async def tile_urls(request: web.Request) -> web.Response:
    return json_response({"items": list(request.app[CATALOG].settings.tile_urls)},
                         headers={"Cache-Control": "max-age=300"})


def routes() -> list[web.RouteDef]:
    return [web.get("/api/tile-urls", tile_urls, allow_head=False)]
