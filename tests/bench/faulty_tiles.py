"""Microtome's real tile app with one injected fault, for testing the quick guard:
``errors`` answers every 10th tile request with 500, ``pixels`` brightens every
tile by 40 grey levels (re-encoded JPEG).

    python tests/bench/faulty_tiles.py ROOT --port P --mode errors|pixels
"""

from __future__ import annotations

import argparse
import io
import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
from aiohttp import web
from PIL import Image

from microtome.tileserver.app import create_tiles_app

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def faulty(mode: str) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    count = itertools.count(1)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resp = await handler(request)
        if "_files/" not in request.path:
            return resp
        if mode == "errors" and next(count) % 10 == 0:
            return web.json_response({"error": "injected"}, status=500)
        if mode == "pixels" and isinstance(resp, web.Response) and resp.body:
            px = np.asarray(Image.open(io.BytesIO(bytes(resp.body))).convert("RGB"))
            out = io.BytesIO()
            Image.fromarray(np.clip(px.astype(np.int16) + 40, 0, 255).astype(np.uint8)).save(
                out, "jpeg", quality=90)
            return web.Response(body=out.getvalue(), content_type="image/jpeg")
        return resp

    return middleware


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=("errors", "pixels"), required=True)
    args = ap.parse_args()
    app = create_tiles_app(args.root)
    app.middlewares.append(faulty(args.mode))
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
