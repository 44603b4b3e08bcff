"""Exact pyramid arithmetic on lossless inputs: area averaging, odd edges, shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st

from microtome.converters import ConvertOptions, convert
from microtome.converters.build import downsample2
from microtome.pyramid.layout import level_sizes
from microtome.pyramid.reader import open_pyramid

from .conftest import read_level, ref_downsample


@given(st.integers(1, 9), st.integers(1, 9), st.sampled_from(["uint8", "uint16", "int8",
                                                               "int16", "float32"]),
       st.sampled_from([1, 2, 3]))
def test_downsample2_is_mean_of_existing_pixels(h: int, w: int, dtype: str, n: int) -> None:
    rng = np.random.default_rng(h * 31 + w)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        a = rng.normal(size=(h, w, n)).astype(dt)
    else:
        info = np.iinfo(dt)
        a = rng.integers(info.min, info.max, size=(h, w, n), endpoint=True).astype(dt)
    got = downsample2(a)
    ref = ref_downsample(a)
    assert np.array_equal(downsample2(a[::-1, ::-1]), ref_downsample(a[::-1, ::-1]))
    assert got.dtype == dt and got.shape == ref.shape
    if dt.kind == "f":
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
    else:
        assert np.array_equal(got, ref)


@pytest.mark.parametrize("shape", [(1000, 777), (257, 513), (33, 1)])
def test_lossless_pyramid_is_exact_across_shards(tmp_path: Path, shape: tuple[int, int]) -> None:
    """Small shards (128 px, tiles 32) so many shard and chunk edges are crossed."""
    h, w = shape
    rng = np.random.default_rng(7)
    img = rng.integers(0, 65535, size=(h, w), dtype=np.uint16)
    src = tmp_path / "a.tif"
    tifffile.imwrite(src, img, tile=(64, 64) if min(h, w) >= 64 else None)
    out = tmp_path / "a.ome.zarr"
    res = convert(src, out, ConvertOptions(tile_size=32, shard_size=128, workers=3))
    assert res.kind == "nd" and res.codec == "zstd"
    ref = img
    pyr = open_pyramid(out)
    for lv in range(res.levels):
        got = read_level(out, lv)[0, 0, 0]
        assert np.array_equal(got, ref), lv
        lvh, lvw = ref.shape
        assert np.array_equal(pyr.read_region(lv, 0, 0, lvw, lvh)[..., 0], ref)
        ref = ref_downsample(ref[..., None])[..., 0] if lv < 3 else downsample2(
            ref[..., None])[..., 0]
    assert max(read_level(out, res.levels - 1).shape[-2:]) <= 32


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300))
def test_any_size_converts_exactly(tmp_path_factory: pytest.TempPathFactory, h: int,
                                   w: int) -> None:
    tmp = tmp_path_factory.mktemp("any")
    img = (np.arange(h * w * 3) % 251).astype(np.uint8).reshape(h, w, 3)
    src = tmp / "a.png"
    import imagecodecs
    src.write_bytes(imagecodecs.png_encode(img))
    res = convert(src, tmp / "a.ome.zarr", ConvertOptions(tile_size=64, shard_size=128))
    lvl = read_level(tmp / "a.ome.zarr", 0)[0, :, 0].transpose(1, 2, 0)
    assert np.array_equal(lvl, img)
    assert res.levels == len(level_sizes(w, h, 64))
