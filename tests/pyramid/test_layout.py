"""The storage contract: what we write is what stock zarr reads, and our reader agrees."""

from __future__ import annotations

import itertools
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import zarr
from hypothesis import given
from hypothesis import strategies as st

from microtome.pyramid.layout import ImageMeta, Level, level_sizes, pack_shard, unpack_index
from microtome.pyramid.reader import open_pyramid
from microtome.pyramid.writer import PyramidWriter


@given(st.integers(1, 10**6), st.integers(1, 10**6), st.sampled_from([256, 512]))
def test_level_sizes_halve_down_to_one_chunk(w: int, h: int, tile: int) -> None:
    sizes = level_sizes(w, h, tile)
    assert sizes[0] == (w, h)
    assert max(sizes[-1]) <= tile
    for (w0, h0), (w1, h1) in itertools.pairwise(sizes):
        assert (w1, h1) == ((w0 + 1) // 2, (h0 + 1) // 2)
    assert len(sizes) == 1 or max(sizes[-2]) > tile


def test_shard_index_round_trip_and_checksum() -> None:
    chunks = {(0, 0): b"abc", (1, 1): b"defgh"}
    shard = pack_shard(chunks, 2)
    index = unpack_index(shard[-(4 * 16 + 4):], 2)
    assert index[0] == (0, 3) and index[3] == (3, 5)
    assert index[1] == (2**64 - 1, 2**64 - 1)
    damaged = bytearray(shard)
    damaged[-10] ^= 0xFF
    with pytest.raises(ValueError):
        unpack_index(bytes(damaged[-(4 * 16 + 4):]), 2)


def _rgb_image(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([(xx * 255 // max(1, w - 1)), (yy * 255 // max(1, h - 1)),
                     ((xx + yy) % 256)], axis=-1).astype(np.uint8)


def write_rgb(root: Path, img: np.ndarray, tile: int = 256, shard: int = 512) -> ImageMeta:
    h, w, _ = img.shape
    meta = ImageMeta(width=w, height=h, kind="rgb", dtype="uint8", tile_size=tile,
                     shard_size=shard, codec="jpeg",
                     levels=(Level("0", w, h, 1),), pixel_size_um=(0.5, 0.5))
    writer = PyramidWriter(root, meta)
    writer.write_metadata()
    per = shard // tile
    lv = meta.levels[0]
    for sy in range(-(-h // shard)):
        for sx in range(-(-w // shard)):
            chunks = {}
            for r in range(per):
                for c in range(per):
                    y0, x0 = sy * shard + r * tile, sx * shard + c * tile
                    if y0 >= h or x0 >= w:
                        continue
                    block = np.zeros((tile, tile, 3), np.uint8)
                    part = img[y0:y0 + tile, x0:x0 + tile]
                    block[:part.shape[0], :part.shape[1]] = part
                    chunks[(r, c)] = imagecodecs.jpeg8_encode(block, level=95)
            writer.write_shard(lv, sy, sx, chunks)
    return meta


def test_stock_zarr_reads_our_jpeg_shards(tmp_path: Path) -> None:
    img = _rgb_image(600, 700)
    write_rgb(tmp_path / "a.ome.zarr", img)
    arr = zarr.open_array(str(tmp_path / "a.ome.zarr" / "0"), mode="r")
    back = np.asarray(arr[:]).transpose(1, 2, 0)
    assert back.shape == img.shape
    assert np.abs(back.astype(int) - img).mean() < 3


def test_reader_direct_matches_zarr(tmp_path: Path) -> None:
    img = _rgb_image(600, 700)
    write_rgb(tmp_path / "a.ome.zarr", img)
    pyr = open_pyramid(tmp_path / "a.ome.zarr")
    assert pyr.direct and pyr.meta.width == 700 and pyr.meta.height == 600
    assert pyr.meta.pixel_size_um == (0.5, 0.5)
    region = pyr.read_region(0, 250, 100, 300, 400)
    ref = np.asarray(zarr.open_array(str(tmp_path / "a.ome.zarr" / "0"))[:, 100:500, 250:550])
    assert np.array_equal(region, ref.transpose(1, 2, 0))
    raw = pyr.chunk_bytes(0, 0, 0)
    assert raw is not None and raw[:2] == b"\xff\xd8"
