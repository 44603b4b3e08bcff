"""Mass spectrometry images (imzML conversions): a pixel's spectrum and an ion
image at any m/z, from the spectra kept beside the pyramid (`pyramid.spectra`).

- ``GET /images/{id}/spectrum?x=&y=`` → ``{"x", "y", "mz": [...], "intensity": [...]}``
- ``GET /images/{id}/ion-image?mz=&tol=[&format=png|json]`` → the summed
  intensity within ``tol`` of ``mz`` per pixel: a grey PNG scaled to its
  maximum (the maximum in the ``X-Ion-Max`` header), or the values as JSON.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from aiohttp import web

from microtome.core.http import json_response
from microtome.pyramid import spectra
from microtome.pyramid.errors import InvalidRequest, NotImplementedFeature

from .cache import Tile
from .encode import CONTENT_TYPES, encode
from .keys import RESOLVER, SERVICE
from .metrics import instrumented
from .resolver import ImageRef
from .responses import CORS, cache_control, not_modified, not_modified_response, tile_response
from .service import etag_for


def _int(request: web.Request, name: str) -> int:
    raw = request.query.get(name, "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise InvalidRequest(f"{name} must be a non-negative integer pixel coordinate")
    return int(raw)


def _float(request: web.Request, name: str, required: bool = True) -> float | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        if required:
            raise InvalidRequest(f"{name} is required")
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be a number") from None
    if not math.isfinite(value) or len(raw) > 32:
        raise InvalidRequest(f"{name} must be a finite number")
    return value


def _local(ref: ImageRef) -> Path:
    """Spectra are read with zarr from a local folder; remote images have none served."""
    if not isinstance(ref.path, Path):
        raise NotImplementedFeature("spectra are served from local storage only")
    return ref.path


@instrumented("spectrum")
async def spectrum_handler(request: web.Request) -> web.StreamResponse:
    x, y = _int(request, "x"), _int(request, "y")
    svc = request.app[SERVICE]
    ref = await request.app[RESOLVER].resolve(request, request.match_info["id"])
    await svc.open(ref)
    doc = await svc.run(spectra.spectrum, _local(ref), x, y, io=True)
    headers = {CORS: "*", "Cache-Control": cache_control(request, ref, svc.settings.max_age)}
    return json_response(doc, headers=headers)


def _ion_png(root: Path, mz: float, tol: float | None) -> tuple[Tile, float]:
    tol = spectra.attributes(root).get("tolerance", 0.0) if tol is None else tol
    img = spectra.ion_image(root, mz, float(tol))
    top = float(img.max()) if img.size else 0.0
    grey = (np.zeros(img.shape, np.uint8) if top <= 0
            else np.round(img * (255.0 / top)).clip(0, 255).astype(np.uint8))
    return Tile(encode(grey, "png"), CONTENT_TYPES["png"]), top


@instrumented("ion-image")
async def ion_image_handler(request: web.Request) -> web.StreamResponse:
    mz = _float(request, "mz")
    assert mz is not None
    tol_arg = _float(request, "tol", required=False)
    if tol_arg is not None and tol_arg < 0:
        raise InvalidRequest("tol must not be negative")
    fmt = request.query.get("format", "png")
    if fmt not in ("png", "json"):
        raise InvalidRequest("format must be png or json")
    svc = request.app[SERVICE]
    ref = await request.app[RESOLVER].resolve(request, request.match_info["id"])
    await svc.open(ref)
    cache = cache_control(request, ref, svc.settings.max_age)
    if fmt == "json":
        img = await svc.run(spectra.ion_image_default_tol, _local(ref), mz, tol_arg, io=True)
        return json_response({"mz": mz, "width": img.shape[1], "height": img.shape[0],
                              "values": img.tolist()},
                             headers={CORS: "*", "Cache-Control": cache})
    etag = etag_for(ref, f"ion/{mz!r}/{tol_arg!r}")
    if not_modified(request, etag):
        return not_modified_response(etag, cache)
    tile, top = await svc.run(_ion_png, _local(ref), mz, tol_arg, io=True)
    return tile_response(request, tile, etag, cache, {"X-Ion-Max": repr(top),
                                                      "Access-Control-Expose-Headers":
                                                      "X-Ion-Max"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/images/{id}/spectrum", spectrum_handler)
    app.router.add_get("/images/{id}/ion-image", ion_image_handler)
