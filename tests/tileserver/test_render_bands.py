"""Big renders are composed in bands: bounded memory, the same pixels as one piece."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from microtome.pyramid import reader
from microtome.pyramid.layout import Channel, ImageMeta, Level
from microtome.pyramid.reader import open_pyramid
from microtome.pyramid.writer import PyramidWriter
from microtome.tileserver import render
from microtome.tileserver.bands import resample_banded
from microtome.tileserver.encode import resample
from microtome.tileserver.render import render_region
from microtome.tileserver.renderparams import parse_render

from .conftest import build_rgb, gradient_rgb

# (x, y, w, h, out_w, out_h) in level-0 pixels: shrinking by non-integer factors,
# enlarging, fractional boxes, regions ending at the edge (padded last pixel),
# coarser levels.
Case = tuple[int, int, int, int, int, int]
CASES: list[Case] = [
    (0, 0, 200, 150, 200, 150),
    (0, 0, 200, 150, 77, 51),
    (0, 0, 200, 150, 131, 99),
    (3, 5, 101, 97, 300, 287),
    (7, 11, 190, 139, 19, 13),
    (128, 128, 72, 22, 18, 6),
    (0, 0, 200, 150, 25, 19),
]


@pytest.mark.parametrize("case", CASES)
def test_banded_nd_render_equals_one_piece(tiles_root: Path, nd_image: tuple,
                                           monkeypatch: pytest.MonkeyPatch,
                                           case: Case) -> None:
    pyr = open_pyramid(tiles_root / "fluo.ome.zarr")
    params = parse_render(pyr.meta, {"channels": "0,1,2", "gamma": "0.7", "t": "1"})
    whole = render_region(pyr, *case, params)
    monkeypatch.setattr(render, "BAND_PIXELS", 300)  # a few rows per band
    banded = render_region(pyr, *case, params)
    assert banded.shape == whole.shape == (case[5], case[4], 3)
    assert np.abs(banded.astype(int) - whole).max() <= 1


def test_banded_rgb_render_equals_one_piece(tiles_root: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    build_rgb(tiles_root / "g.ome.zarr", gradient_rgb(300, 457))
    pyr = open_pyramid(tiles_root / "g.ome.zarr")
    params = parse_render(pyr.meta, {})
    cases: list[Case] = [(0, 0, 457, 300, 200, 131), (9, 1, 440, 299, 457, 300),
                         (0, 0, 457, 300, 58, 38)]
    for case in cases:
        monkeypatch.setattr(render, "BAND_PIXELS", 1 << 30)
        whole = render_region(pyr, *case, params)
        monkeypatch.setattr(render, "BAND_PIXELS", 500)
        banded = render_region(pyr, *case, params)
        assert np.abs(banded.astype(int) - whole).max() <= 1, case


def test_big_nd_render_memory_follows_the_output(tiles_root: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # A 4096x4096, 3-channel uint16 image stored as one level (as shallow
    # foreign pyramids are): a 1024x1024 rendering must read the whole 16
    # Mpixel level.  Composed in one piece that costs > 100 MB (the raw
    # channels alone); in bands it is ~40 bytes per window pixel of a band plus
    # the output.
    side = 4096
    chans = tuple(Channel(f"C{i}", c, 0, 4000, 0, 65535)
                  for i, c in enumerate(("FF0000", "00FF00", "0000FF")))
    meta = ImageMeta(width=side, height=side, kind="nd", dtype="uint16", tile_size=256,
                     shard_size=1024, codec="zstd", size_c=3, channels=chans,
                     levels=(Level("0", side, side, 1),))
    root = tiles_root / "big.ome.zarr"
    PyramidWriter(root, meta).write_metadata()  # no shards: every chunk is the fill value
    pyr = open_pyramid(root)
    params = parse_render(pyr.meta, {})
    # The process-wide decoded-chunk cache has its own bound; keep it out of the figure.
    monkeypatch.setattr(reader.DECODED, "max_bytes", 0)
    tracemalloc.start()
    try:
        out = render_region(pyr, 0, 0, side, side, 1024, 1024, params)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == (1024, 1024, 3) and not out.any()
    # 64 MiB: the default band (1 Mpixel window) composed, plus the output.
    bound = 64 * 2**20 + out.nbytes
    assert peak < bound, f"peak {peak / 2**20:.0f} MiB > {bound / 2**20:.0f} MiB"


def test_resample_banded_is_pillows_resize() -> None:
    # Random windows, boxes and sizes (shrinking and enlarging, fractional and
    # tie-prone boxes), tiny bands: one Pillow resize within rounding.  (Pillow 13
    # does not always run its two passes in the order we do: +-1 in places.)
    rng = np.random.default_rng(7)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 90, 2))
        win = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        bx, by = float(rng.integers(0, 4 * w)) / 4 % w, float(rng.integers(0, 4 * h)) / 4 % h
        bw = max(0.25, (w - bx) * float(rng.choice([1.0, rng.random()])))
        bh = max(0.25, (h - by) * float(rng.choice([1.0, rng.random()])))
        out_w, out_h = (int(v) for v in rng.integers(1, 120, 2))
        want = resample(win, out_w, out_h, (bx, by, bw, bh))

        def rows(r0: int, r1: int, win: np.ndarray = win) -> np.ndarray:
            return win[r0:r1]

        got = resample_banded(rows, w, h, out_w, out_h,
                              (bx, by, bw, bh), int(rng.integers(1, 400)))
        assert np.abs(got.astype(int) - want).max() <= 1, (h, w, bx, by, bw, bh, out_w, out_h)
