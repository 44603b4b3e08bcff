"""Pure tile math: Deep Zoom levels and tiles, level choice, level boxes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microtome.pyramid.errors import NotFound
from microtome.pyramid.layout import ImageMeta, Level, level_sizes
from microtome.tileserver.tilemath import (
    best_level,
    dzi_level_size,
    dzi_max_level,
    dzi_tile,
    fit_within,
    level_box,
)


def _meta(w: int, h: int, tile: int = 256) -> ImageMeta:
    sizes = level_sizes(w, h, tile)
    levels = tuple(Level(str(i), lw, lh, 2**i) for i, (lw, lh) in enumerate(sizes))
    return ImageMeta(width=w, height=h, levels=levels, kind="rgb", dtype="uint8",
                     tile_size=tile, shard_size=tile * 2, codec="jpeg")


@given(st.integers(1, 200_000), st.integers(1, 200_000))
def test_dzi_levels_halve_to_one_pixel(w: int, h: int) -> None:
    top = dzi_max_level(w, h)
    assert dzi_level_size(w, h, top) == (w, h)
    assert dzi_level_size(w, h, 0) == (1, 1)
    for lv in range(1, top + 1):
        bw, bh = dzi_level_size(w, h, lv)
        sw, sh = dzi_level_size(w, h, lv - 1)
        assert (sw, sh) == ((bw + 1) // 2, (bh + 1) // 2)


@given(st.integers(1, 5000), st.integers(1, 5000), st.data())
def test_dzi_tiles_cover_each_level_exactly(w: int, h: int, data: st.DataObject) -> None:
    meta = _meta(w, h)
    top = dzi_max_level(w, h)
    level = data.draw(st.integers(0, top))
    lw, lh = dzi_level_size(w, h, level)
    cols, rows = -(-lw // 256), -(-lh // 256)
    col, row = data.draw(st.integers(0, cols - 1)), data.draw(st.integers(0, rows - 1))
    t = dzi_tile(meta, level, col, row)
    assert 1 <= t.out_w <= 256 and 1 <= t.out_h <= 256
    assert (t.out_w < 256) == (col == cols - 1 and lw % 256 != 0)
    assert t.x + t.w <= w and t.y + t.h <= h and t.w >= 1 and t.h >= 1
    # Read from the stored level that is this Deep Zoom level when there is one,
    # else from the coarsest finer one.
    scale = 2 ** (top - level)
    lv = meta.levels[t.level]
    if lv.downsample == scale:
        assert (lv.width, lv.height) == (lw, lh)
    else:
        assert lv.downsample < scale and t.level == len(meta.levels) - 1
    with pytest.raises(NotFound):
        dzi_tile(meta, level, cols, row)
    with pytest.raises(NotFound):
        dzi_tile(meta, top + 1, 0, 0)


def test_best_level_never_loses_resolution() -> None:
    meta = _meta(1000, 700)  # downsamples 1, 2, 4
    assert best_level(meta, 1.0) == 0
    assert best_level(meta, 1.99) == 0
    assert best_level(meta, 2.0) == 1
    assert best_level(meta, 5.0) == 2  # a 200-px thumbnail reads the 250-px level
    assert best_level(meta, 0.25) == 0  # upscaling reads full resolution


@given(st.integers(0, 999), st.integers(0, 699), st.integers(1, 1000), st.integers(1, 700),
       st.integers(0, 2))
def test_level_box_stays_inside_the_level(x: int, y: int, w: int, h: int, level: int) -> None:
    meta = _meta(1000, 700)
    w, h = min(w, 1000 - x), min(h, 700 - y)
    b = level_box(meta, level, x, y, w, h)
    lv = meta.levels[level]
    assert 0 <= b.x and b.x + b.w <= lv.width and 0 <= b.y and b.y + b.h <= lv.height
    assert b.w >= 1 and b.h >= 1
    assert b.fx + b.fw <= b.w + 1e-9 and b.fy + b.fh <= b.h + 1e-9


def test_fit_within() -> None:
    assert fit_within(1000, 700, 200, 200) == (200, 140)
    assert fit_within(700, 1000, 256, 256) == (179, 256)
    assert fit_within(1, 100000, 10, 10) == (1, 10)


def test_level_for_accepts_ceil_rounded_edge_sizes() -> None:
    from microtome.tileserver.tilemath import level_for

    meta = _meta(1000, 700)  # downsamples 1, 2, 4
    assert level_for(meta, 0, 0, 1000, 700, 250, 175) == 2
    assert level_for(meta, 512, 512, 488, 188, 122, 47) == 2  # edge tile: ceil(188/4) = 47
    assert level_for(meta, 0, 0, 1000, 700, 251, 175) == 1  # one pixel more than level 2 has
    assert level_for(meta, 0, 0, 5, 5, 2, 2) == 1  # interior: 2 px over 5 needs scale <= 2.5
    assert level_for(meta, 995, 695, 5, 5, 2, 2) == 2  # at the edge: level 2's partial pixel
    assert level_for(meta, 0, 0, 300, 300, 256, 256) == 0
    assert level_for(meta, 0, 0, 100, 100, 400, 400) == 0  # upscaling


@given(st.integers(0, 999), st.integers(0, 699), st.integers(1, 1000), st.integers(1, 700),
       st.integers(1, 2000), st.integers(1, 2000))
def test_level_for_never_loses_more_than_the_edge_pixel(x: int, y: int, w: int, h: int,
                                                        ow: int, oh: int) -> None:
    from microtome.tileserver.tilemath import level_for

    meta = _meta(1000, 700)
    w, h = min(w, 1000 - x), min(h, 700 - y)
    d = meta.levels[level_for(meta, x, y, w, h, ow, oh)].downsample
    # Enough level pixels cover the region (counting a partial last pixel at the edge).
    assert d == 1 or (-(-w // d) >= ow and -(-h // d) >= oh)
    assert d == 1 or d <= w / ow or x + w == 1000
    assert d == 1 or d <= h / oh or y + h == 700
