"""Raw pixels in their stored dtype: ``/images/{id}/region.npy`` and ``region.tif``.

The IIIF and Deep Zoom routes render 8-bit colour; analysis code wants the
stored values (uint16 fluorescence, all channels, any z/t plane).  This route
answers one stored level, no resampling, as an ``.npy`` array (numpy's own
format: shape and dtype in the header) or a TIFF, shaped (height, width,
channels).

Query: ``x, y, w, h`` — the region in level-0 pixels (origin top-left, as in
IIIF and annotations); ``level`` — stored level (0 = full resolution); the
answer covers that region on the level: columns ``x // d`` to
``ceil((x + w) / d)`` with ``d`` the level's downsample.  ``channels``, ``z``,
``t`` as on every image URL (`tileserver.render`).  The region must lie inside
the image (400 otherwise); the answer is limited to the IIIF output area
(``maxArea`` of info.json) and 256 MiB (413).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import numpy as np
from aiohttp import web

from microtome.pyramid.errors import InvalidRequest, TooLarge
from microtome.pyramid.layout import ImageMeta
from microtome.pyramid.reader import Pyramid

from .keys import RESOLVER, SERVICE
from .metrics import instrumented
from .renderparams import parse_render
from .responses import CORS, cache_control

#: Largest answer in bytes, whatever the area limit says (64 channels of float64...).
MAX_BYTES = 256 * 1024**2
CONTENT_TYPES = {"npy": "application/octet-stream", "tif": "image/tiff"}
_MAX_DIGITS = 12


def _int(q: Mapping[str, str], name: str, default: int | None = None) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        if default is None:
            raise InvalidRequest(f"{name} is required (an integer)")
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > _MAX_DIGITS:
        raise InvalidRequest(f"{name} must be a non-negative integer")
    return int(raw)


def level_window(meta: ImageMeta, level: int, x: int, y: int, w: int, h: int
                 ) -> tuple[int, int, int, int]:
    """The (x, y, w, h) on ``level`` that covers the level-0 region (pure)."""
    if not 0 <= level < len(meta.levels):
        raise InvalidRequest(f"level must be in 0..{len(meta.levels) - 1}")
    if w < 1 or h < 1:
        raise InvalidRequest("w and h must be at least 1")
    if x + w > meta.width or y + h > meta.height:
        raise InvalidRequest("region outside the image",
                             {"width": meta.width, "height": meta.height})
    lv = meta.levels[level]
    d = lv.downsample
    lx, ly = x // d, y // d
    lx1 = min(lv.width, math.ceil((x + w) / d))
    ly1 = min(lv.height, math.ceil((y + h) / d))
    return lx, ly, max(1, lx1 - lx), max(1, ly1 - ly)


def _encode(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "npy":
        np.save(buf, pixels, allow_pickle=False)
    else:
        import tifffile

        photometric = "rgb" if pixels.shape[2] == 3 and pixels.dtype == np.uint8 else None
        tifffile.imwrite(buf, pixels, photometric=photometric,
                         planarconfig="contig" if photometric else None)
    return buf.getvalue()


def _read(pyr: Pyramid, window: tuple[int, int, int, int], level: int, t: int, z: int,
          channels: list[int] | None, fmt: str) -> bytes:
    lx, ly, lw, lh = window
    pixels = pyr.read_region(level, lx, ly, lw, lh, t=t, z=z, channels=channels)
    return _encode(np.ascontiguousarray(pixels), fmt)


@instrumented("raw_region")
async def region_handler(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICE]
    fmt = request.match_info["fmt"]
    if fmt not in CONTENT_TYPES:
        raise InvalidRequest("format must be npy or tif")
    q = request.query
    x, y, w, h = _int(q, "x"), _int(q, "y"), _int(q, "w"), _int(q, "h")
    level = _int(q, "level", 0)
    ref = await request.app[RESOLVER].resolve(request, request.match_info["id"])
    pyr = await svc.open(ref)
    meta = pyr.meta
    window = level_window(meta, level, x, y, w, h)
    params = parse_render(meta, q)  # validates t, z and channels like every image URL
    # Raw data defaults to every channel, not only those the viewer shows.
    channels = (None if meta.kind == "rgb" else list(params.channels) if "channels" in q
                else list(range(meta.size_c)))
    n = 3 if channels is None else len(channels)
    area = window[2] * window[3]
    nbytes = area * n * np.dtype(meta.dtype).itemsize
    if area > svc.limits.max_area or nbytes > MAX_BYTES:
        raise TooLarge("region too large: ask for it in tiles",
                       {"max_area": svc.limits.max_area, "max_bytes": MAX_BYTES,
                        "area": area, "bytes": nbytes})
    body = await svc.run(_read, pyr, window, level, params.t, params.z, channels, fmt)
    lx, ly, lw, lh = window
    headers = {CORS: "*", "Cache-Control": cache_control(request, ref, svc.settings.max_age),
               "Content-Type": CONTENT_TYPES[fmt],
               "X-Region": f"{level},{lx},{ly},{lw},{lh}",
               "Access-Control-Expose-Headers": "X-Region"}
    return web.Response(body=body, headers=headers)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/images/{id}/region.{fmt}", region_handler)
