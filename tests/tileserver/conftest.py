"""Fixture builders: multi-level rgb (JPEG) and nd (zstd) pyramids written to disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from microtome.pyramid.layout import Channel, ImageMeta, Level, level_sizes
from microtome.pyramid.writer import PyramidWriter
from microtome.tileserver.app import TileSettings, create_tiles_app


def downsample2(a: np.ndarray) -> np.ndarray:
    """2x2 mean over the last two... spatial axes (y, x) at positions -3,-2 for (h, w, c)."""
    h, w = a.shape[:2]
    if h % 2 or w % 2:
        a = np.pad(a, ((0, h % 2), (0, w % 2)) + ((0, 0),) * (a.ndim - 2), mode="edge")
    f = a.astype(np.float64)
    out = (f[0::2, 0::2] + f[1::2, 0::2] + f[0::2, 1::2] + f[1::2, 1::2]) / 4
    return np.round(out).astype(a.dtype)


def rgb_levels(img: np.ndarray, tile: int) -> list[np.ndarray]:
    h, w = img.shape[:2]
    levels = [img]
    for _ in level_sizes(w, h, tile)[1:]:
        levels.append(downsample2(levels[-1]))
    return levels


def gradient_rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth content (JPEG-friendly) with per-pixel structure so misplacement shows."""
    yy, xx = np.mgrid[0:h, 0:w]
    r = (xx * 255 // max(1, w - 1))
    g = (yy * 255 // max(1, h - 1))
    b = ((xx // 128 + yy // 128) % 2) * 160 + 40
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def build_rgb(root: Path, img: np.ndarray, tile: int = 256, shard: int = 512,
              quality: int = 95, associated: dict[str, np.ndarray] | None = None,
              version: str = "1") -> ImageMeta:
    """Write ``img`` (h, w, 3) uint8 as a full rgb pyramid; returns its metadata."""
    h, w, _ = img.shape
    levels_px = rgb_levels(img, tile)
    meta = ImageMeta(
        width=w, height=h, kind="rgb", dtype="uint8", tile_size=tile, shard_size=shard,
        codec="jpeg", pixel_size_um=(0.25, 0.25), version=version, name=root.name,
        levels=tuple(Level(str(i), a.shape[1], a.shape[0], 2**i) for i, a in enumerate(levels_px)),
        associated=tuple(sorted(associated or {})),
    )
    writer = PyramidWriter(root, meta, quality)
    writer.write_metadata()
    per = shard // tile
    for lv, px in zip(meta.levels, levels_px, strict=True):
        lh, lw = px.shape[:2]
        for sy in range(-(-lh // shard)):
            for sx in range(-(-lw // shard)):
                chunks = {}
                for r in range(per):
                    for c in range(per):
                        y0, x0 = sy * shard + r * tile, sx * shard + c * tile
                        if y0 >= lh or x0 >= lw:
                            continue
                        block = np.zeros((tile, tile, 3), np.uint8)
                        part = px[y0:y0 + tile, x0:x0 + tile]
                        block[:part.shape[0], :part.shape[1]] = part
                        chunks[(r, c)] = bytes(imagecodecs.jpeg8_encode(block, level=quality))
                writer.write_shard(lv, sy, sx, chunks)
    for name, pixels in (associated or {}).items():
        writer.write_file(f"associated/{name}.png", bytes(imagecodecs.png_encode(pixels)))
    writer.write_file("metadata/original.json", b'{"vendor": "test", "objective": 20}')
    return meta


def build_nd(root: Path, data: np.ndarray, tile: int = 64, shard: int = 128,
             channels: tuple[Channel, ...] = ()) -> ImageMeta:
    """Write ``data`` (t, c, z, y, x) of any dtype as an nd pyramid (zstd chunks)."""
    st, sc, sz, h, w = data.shape
    # Levels by 2x2 mean on (y, x), per plane.
    planes = [np.moveaxis(data, (3, 4), (0, 1))]  # (y, x, t, c, z)
    for _ in level_sizes(w, h, tile)[1:]:
        planes.append(downsample2(planes[-1]))
    meta = ImageMeta(
        width=w, height=h, kind="nd", dtype=str(data.dtype), tile_size=tile, shard_size=shard,
        codec="zstd", size_t=st, size_c=sc, size_z=sz, channels=channels, name=root.name,
        levels=tuple(Level(str(i), p.shape[1], p.shape[0], 2**i) for i, p in enumerate(planes)),
    )
    writer = PyramidWriter(root, meta)
    writer.write_metadata()
    per = shard // tile
    for lv, p in zip(meta.levels, planes, strict=True):
        lh, lw = p.shape[:2]
        for t in range(st):
            for c in range(sc):
                for z in range(sz):
                    plane = p[:, :, t, c, z]
                    for sy in range(-(-lh // shard)):
                        for sx in range(-(-lw // shard)):
                            chunks = {}
                            for r in range(per):
                                for cc in range(per):
                                    y0, x0 = sy * shard + r * tile, sx * shard + cc * tile
                                    if y0 >= lh or x0 >= lw:
                                        continue
                                    block = np.zeros((tile, tile), data.dtype)
                                    part = plane[y0:y0 + tile, x0:x0 + tile]
                                    block[:part.shape[0], :part.shape[1]] = part
                                    raw = block.astype(block.dtype.newbyteorder("<")).tobytes()
                                    chunks[(r, cc)] = bytes(imagecodecs.zstd_encode(raw))
                            writer.write_shard(lv, sy, sx, chunks, t=t, c=c, z=z)
    return meta


@pytest.fixture
def tiles_root(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    root.mkdir()
    return root


@pytest.fixture
def rgb_image(tiles_root: Path) -> tuple[np.ndarray, ImageMeta]:
    """1000x700 rgb slide 'slide' with tile 256: 3 levels, edge tiles on every level."""
    img = gradient_rgb(700, 1000)
    label = np.full((40, 60, 3), 200, np.uint8)
    meta = build_rgb(tiles_root / "slide.ome.zarr", img, associated={"label": label})
    return img, meta


@pytest.fixture
def nd_image(tiles_root: Path) -> tuple[np.ndarray, ImageMeta]:
    """uint16 (t=2, c=3, z=3, 150, 200) image 'fluo', tile 64."""
    rng = np.random.default_rng(1)
    data = rng.integers(0, 4000, size=(2, 3, 3, 150, 200), dtype=np.uint16)
    chans = (Channel("DAPI", "0000FF", 0, 4000, 0, 65535),
             Channel("GFP", "00FF00", 0, 4000, 0, 65535),
             Channel("RFP", "FF0000", 0, 4000, 0, 65535, active=False))
    meta = build_nd(tiles_root / "fluo.ome.zarr", data, channels=chans)
    return data, meta


MakeClient = Callable[..., "TestClient[web.Request, web.Application]"]


@pytest.fixture
async def client(aiohttp_client: Callable, tiles_root: Path,  # type: ignore[type-arg]
                 ) -> TestClient:  # type: ignore[type-arg]
    settings = TileSettings(threads=2, cache_bytes=8 * 1024**2, resolver_ttl=0.0)
    return await aiohttp_client(create_tiles_app(tiles_root, settings))
