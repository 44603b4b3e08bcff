"""Extras: thumbnail, associated images, image metadata, /metrics."""

from __future__ import annotations

import json
import re
from typing import Any

import imagecodecs
from aiohttp import web

from microtome.core.http import json_response
from microtome.pyramid.errors import InvalidRequest, MicrotomeError, NotFound, StorageError
from microtome.pyramid.layout import ImageMeta
from microtome.pyramid.stores import REMOTE, ObjectMissing, Store

from .cache import Tile
from .encode import CONTENT_TYPES, encode
from .keys import RESOLVER, SERVICE
from .metrics import METRICS, instrumented
from .pipeline import serve
from .renderparams import parse_render
from .responses import CORS, cache_control, not_modified, not_modified_response, tile_response
from .service import etag_for
from .tilemath import thumbnail_tile
from .tilerequest import TileRequest

_NAME = re.compile(r"[a-z0-9_-]{1,64}")
#: Largest vendor metadata document returned by /metadata, bytes.
MAX_ORIGINAL = 8 * 1024**2


def _fmt(raw: str) -> str:
    if raw not in CONTENT_TYPES:
        raise InvalidRequest("format must be jpg, jpeg, png or webp")
    return raw


@instrumented("thumbnail")
async def thumbnail_handler(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICE]
    fmt = _fmt(request.match_info["fmt"])
    raw = request.query.get("size", "256")
    if (not (raw.isascii() and raw.isdigit()) or len(raw) > 6
            or not 1 <= int(raw) <= svc.settings.max_thumbnail):
        raise InvalidRequest(f"size must be an integer in 1..{svc.settings.max_thumbnail}")
    size = int(raw)
    query = request.query

    def parse(meta: ImageMeta) -> TileRequest:
        return thumbnail_tile(meta, size, fmt, parse_render(meta, query))

    return await serve(request, request.match_info["id"], parse)


def _associated(store: Store, key: str, fmt: str) -> Tile:
    try:
        data = store.get(key)
    except ObjectMissing:
        raise NotFound("associated image not found") from None
    except OSError as e:
        raise StorageError("associated image is unreadable") from e
    if fmt == "png":
        return Tile(data, CONTENT_TYPES[fmt])
    try:
        pixels = imagecodecs.png_decode(data)
    except Exception as e:  # codec errors share no base class
        raise StorageError("associated image is damaged") from e
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[..., :3]
    return Tile(encode(pixels, fmt), CONTENT_TYPES[fmt])


@instrumented("associated")
async def associated_handler(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICE]
    fmt = _fmt(request.match_info["fmt"])
    name = request.match_info["name"]
    if not _NAME.fullmatch(name):
        raise NotFound("associated image not found")
    ref = await request.app[RESOLVER].resolve(request, request.match_info["id"])
    pyr = await svc.open(ref)
    if name not in pyr.meta.associated:
        raise NotFound("associated image not found")
    etag = etag_for(ref, f"assoc/{name}.{fmt}")
    cache = cache_control(request, ref, svc.settings.max_age)
    if not_modified(request, etag):
        return not_modified_response(etag, cache)
    key = (ref.path, ref.version, "assoc", name, fmt)
    tile = await svc.produce(key, _associated, pyr.store, f"associated/{name}.png", fmt)
    return tile_response(request, tile, etag, cache)


def metadata_document(meta: ImageMeta, original: Any, version: str) -> dict[str, Any]:
    """``version`` is the served version: add ``?v=<version>`` to tile URLs (and to a
    .dzi URL, whose query OpenSeadragon repeats on its tiles) for immutable caching."""
    return {
        "name": meta.name, "width": meta.width, "height": meta.height,
        "kind": meta.kind, "dtype": meta.dtype, "tile_size": meta.tile_size,
        "levels": [{"width": lv.width, "height": lv.height, "downsample": lv.downsample}
                   for lv in meta.levels],
        "pixel_size_um": list(meta.pixel_size_um) if meta.pixel_size_um else None,
        "z_spacing_um": meta.z_spacing_um,
        "size": {"t": meta.size_t, "c": meta.size_c, "z": meta.size_z},
        "channels": [{"label": c.label, "color": c.color, "active": c.active,
                      "inverted": c.inverted,
                      "window": {"start": c.window_start, "end": c.window_end,
                                 "min": c.window_min, "max": c.window_max}}
                     for c in meta.channels],
        "associated": list(meta.associated), "version": version,
        "stored_version": meta.version,
        "source": meta.source, "original": original,
    }


def _original(store: Store) -> Any:
    try:
        raw = store.get_ranges("metadata/original.json", [(0, MAX_ORIGINAL + 1)])[0]
    except (ObjectMissing, MicrotomeError, OSError):
        return None
    if len(raw) > MAX_ORIGINAL:
        return {"truncated": True}
    try:
        return json.loads(raw)
    except ValueError:
        return None


@instrumented("metadata")
async def metadata_handler(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICE]
    ref = await request.app[RESOLVER].resolve(request, request.match_info["id"])
    pyr = await svc.open(ref)
    original = await svc.run(_original, pyr.store, io=True)
    headers = {CORS: "*", "Cache-Control": cache_control(request, ref, svc.settings.max_age)}
    return json_response(metadata_document(pyr.meta, original, ref.version), headers=headers)


def metrics_response(app: web.Application) -> web.Response:
    """The Prometheus text of `app`'s tile service (also served on a local listener)."""
    svc = app[SERVICE]
    extra = {"microtome_tile_cache_bytes": float(svc.tiles.nbytes),
             "microtome_tile_cache_entries": float(len(svc.tiles)),
             "microtome_open_images": float(len(svc.images))}
    remote = REMOTE.snapshot()
    extra["microtome_store_remote_requests_total"] = float(remote.gets)
    extra["microtome_store_remote_bytes_total"] = float(remote.bytes)
    text = app[METRICS].render(extra)
    return web.Response(text=text, content_type="text/plain",
                        headers={"Cache-Control": "no-store"})


async def metrics_handler(request: web.Request) -> web.Response:
    return metrics_response(request.app)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/images/{id}/thumbnail.{fmt}", thumbnail_handler)
    app.router.add_get("/images/{id}/associated/{name}.{fmt}", associated_handler)
    app.router.add_get("/images/{id}/metadata", metadata_handler)
    app.router.add_get("/metrics", metrics_handler)
