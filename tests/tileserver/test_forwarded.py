"""`microtome tiles` believes X-Forwarded-* only from configured proxies (as `serve` does)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from microtome.pyramid.layout import ImageMeta
from microtome.tileserver.app import TileSettings, create_tiles_app

FORWARDED = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}


async def _info_id(aiohttp_client: Callable[..., Any], root: Path,
                   trusted: tuple[str, ...]) -> tuple[str, str]:
    client = await aiohttp_client(create_tiles_app(root, TileSettings(threads=2), trusted))
    resp = await client.get("/iiif/3/slide/info.json", headers=FORWARDED)
    assert resp.status == 200
    return (await resp.json())["id"], resp.headers.get("Vary", "")


async def test_forwarded_headers_from_anyone_are_ignored(
        aiohttp_client: Callable[..., Any], tiles_root: Path,
        rgb_image: tuple[np.ndarray, ImageMeta]) -> None:
    image_id, vary = await _info_id(aiohttp_client, tiles_root, ())
    assert "evil.example" not in image_id and image_id.startswith("http://127.0.0.1")
    assert "Host" in vary


async def test_forwarded_headers_from_a_trusted_proxy_are_used(
        aiohttp_client: Callable[..., Any], tiles_root: Path,
        rgb_image: tuple[np.ndarray, ImageMeta]) -> None:
    image_id, vary = await _info_id(aiohttp_client, tiles_root, ("127.0.0.0/8", "::1"))
    assert image_id.startswith("https://evil.example/iiif/3/")
    assert "X-Forwarded-Host" in vary
