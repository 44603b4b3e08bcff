"""Older and unusual TIFF encodings: old-style JPEG, YCbCr with chroma
subsampling under every compression, JPEG CMYK, planar configuration 2,
12-bit samples — real files from other projects' test suites and files laid
out byte by byte after the TIFF 6.0 specification (tiff_craft)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from microtome.converters import ConvertOptions, convert, open_source
from microtome.converters.cli import main as cli_main
from microtome.pyramid.errors import SourceError
from microtome.pyramid.reader import open_pyramid

from .conftest import psnr, read_level
from .tiff_craft import (
    LONG,
    SHORT,
    TiffBuilder,
    blocky_rgb,
    write_ojpeg_tiled,
    write_ycbcr_subsampled,
)


def _level0_rgb(src: Path, tmp: Path) -> np.ndarray:
    """Convert losslessly and read level 0 back through stock zarr as (h, w, 3)."""
    out = tmp / (src.name + ".ome.zarr")
    convert(src, out, ConvertOptions(codec="zstd", tile_size=64, shard_size=None))
    return read_level(out, 0)[0, :, 0].transpose(1, 2, 0)


def _pillow_rgb(src: Path) -> np.ndarray:
    with Image.open(src) as im:
        im.load()
        return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize("name", ["old-style-jpeg-compression.tif", "tiff_strip_cmyk_jpeg.tif",
                                  "tiff_tiled_ycbcr_jpeg_2x2_sampling.tif"])
def test_real_older_tiffs_match_pillow(testdata: Path, tmp_path: Path, name: str) -> None:
    got = _level0_rgb(testdata / name, tmp_path)
    ref = _pillow_rgb(testdata / name)
    assert got.shape == ref.shape
    assert np.array_equal(got, ref)


def test_old_style_jpeg_is_read_strip_by_strip(testdata: Path) -> None:
    with open_source(testdata / "old-style-jpeg-compression.tif") as r:
        assert any("libtiff" in n for n in r.info.notes)
        block = r.read_region(1000, 300, 57, 41)
        rgba = r._rgba  # type: ignore[attr-defined]
        # Only the strips under the rectangle were decoded, not the image.
        assert 0 < len(rgba._cache) <= 2
    ref = _pillow_rgb(testdata / "old-style-jpeg-compression.tif")
    assert np.array_equal(block, ref[300:341, 1000:1057])


@pytest.mark.parametrize("sub", [(2, 1), (2, 2), (4, 2)])
@pytest.mark.parametrize("compression", [1, 5, 8], ids=["none", "lzw", "deflate"])
@pytest.mark.parametrize("tile", [None, 64], ids=["strips", "tiles"])
def test_subsampled_ycbcr_under_every_compression(tmp_path: Path, sub: tuple[int, int],
                                                  compression: int, tile: int | None) -> None:
    # Constant over the subsampling blocks: the only loss is YCbCr rounding.
    rgb = blocky_rgb(150, 203, 4, 4, seed=compression)
    src = tmp_path / "ycc.tif"
    write_ycbcr_subsampled(src, rgb, sub, compression, tile=tile)
    with pytest.raises(Exception, match="subsampling"):
        tifffile.imread(src)  # the fast path's decoder refuses it: the fallback is real
    got = _level0_rgb(src, tmp_path)
    assert got.shape == rgb.shape
    assert np.abs(got.astype(int) - rgb).max() <= 1


@pytest.mark.parametrize("sub", [(2, 1), (2, 2)])
def test_subsampled_ycbcr_jpeg_tiles(tmp_path: Path, sub: tuple[int, int]) -> None:
    yy, xx = np.mgrid[0:90, 0:130]
    rgb = np.stack([xx * 2, yy * 2, (xx + yy)], -1).astype(np.uint8)
    src = tmp_path / "yj.tif"
    tifffile.imwrite(src, rgb, photometric="rgb", compression="jpeg",
                     compressionargs={"level": 95}, subsampling=sub, tile=(32, 32))
    assert tifffile.TiffFile(src).pages[0].photometric == 6  # stored as YCbCr
    got = _level0_rgb(src, tmp_path)
    assert np.abs(got.astype(int) - _pillow_rgb(src)).max() <= 1
    assert psnr(got, rgb) > 35


@pytest.mark.parametrize("compression", [None, "lzw"])
@pytest.mark.parametrize("tile", [None, (32, 32)])
def test_planar_configuration_2(tmp_path: Path, compression: str | None,
                                tile: tuple[int, int] | None) -> None:
    rgb = blocky_rgb(70, 90, 1, 1, seed=5)
    src = tmp_path / "planar.tif"
    tifffile.imwrite(src, rgb.transpose(2, 0, 1), planarconfig="separate", photometric="rgb",
                     compression=compression, rowsperstrip=8, tile=tile)
    assert np.array_equal(_level0_rgb(src, tmp_path), rgb)
    assert np.array_equal(_pillow_rgb(src), rgb)


def test_logluv_is_read_through_libtiff(tmp_path: Path) -> None:
    """LogLuv stores CIE XYZ as log luminance + chromaticity; libtiff renders it
    to 8-bit RGB (its XYZ->RGB matrix, then a 2.0 gamma: 256 * sqrt).  Written
    from known linear RGB, read back within the encoding's quantisation."""
    from .tiff_craft import write_logluv

    to_rgb = np.array([[2.690, -1.276, -0.414], [-1.022, 1.978, 0.044],
                       [0.061, -0.224, 1.163]])  # libtiff's tif_luv.c matrix
    h, w = 40, 60
    yy, xx = np.mgrid[0:h, 0:w]
    linear = np.stack([0.05 + 0.8 * xx / w, 0.05 + 0.8 * yy / h, np.full((h, w), 0.3)], -1)
    src = tmp_path / "logluv.tif"
    write_logluv(src, linear @ np.linalg.inv(to_rgb).T)
    with pytest.raises(Exception, match="SGILOG"):
        tifffile.imread(src)
    got = _level0_rgb(src, tmp_path).astype(int)
    want = np.clip(np.floor(256 * np.sqrt(linear)), 0, 255)
    assert got.shape == (h, w, 3)
    assert np.abs(got - want).max() <= 5


def test_4_bit_palette_with_its_16_colours(tmp_path: Path) -> None:
    """Two indices per byte and a 16-entry colour map (16-bit intensities)."""
    h, w = 30, 41  # odd width: each row ends on a half-used byte
    idx = (np.arange(h * w).reshape(h, w) % 16).astype(np.uint8)
    padded = np.pad(idx, ((0, 0), (0, w % 2)))
    packed = (padded[:, 0::2] << 4 | padded[:, 1::2]).astype(np.uint8)
    cmap = np.stack([np.arange(16) * 4369, 65535 - np.arange(16) * 4369,
                     np.full(16, 30000)]).astype(np.uint16)
    tb = TiffBuilder()
    off = tb.add(packed.tobytes())
    src = tmp_path / "p4.tif"
    src.write_bytes(tb.finish({
        256: (LONG, [w]), 257: (LONG, [h]), 258: (SHORT, [4]), 259: (SHORT, [1]),
        262: (SHORT, [3]), 273: (LONG, [off]), 277: (SHORT, [1]), 278: (LONG, [h]),
        279: (LONG, [packed.size]), 320: (SHORT, cmap.ravel().tolist())}))
    want = (cmap[:, idx].transpose(1, 2, 0) >> 8).astype(np.uint8)
    assert np.array_equal(_pillow_rgb(src), want)
    assert np.array_equal(_level0_rgb(src, tmp_path), want)


def test_12_bit_samples_keep_their_values(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 4096, (40, 50)).astype(np.uint16)
    src = tmp_path / "b12.tif"
    tifffile.imwrite(src, data, bitspersample=12)
    out = tmp_path / "b12.ome.zarr"
    convert(src, out)
    got = read_level(out, 0)[0, 0, 0]
    assert got.dtype == np.uint16 and np.array_equal(got, data)


def test_tiled_old_style_jpeg_with_tables_in_the_ifd(tmp_path: Path) -> None:
    """Tiles of entropy-coded data only, tables in JPEGQTables/DC/ACTables:
    tifffile says 'Not a JPEG file'; libtiff reads them (here 3 tiles down)."""
    yy, xx = np.mgrid[0:150, 0:64]
    rgb = np.stack([xx * 3, yy, (xx + yy)], -1).astype(np.uint8)
    src = tmp_path / "ojpeg.tif"
    write_ojpeg_tiled(src, rgb, tile=64)
    with pytest.raises(Exception, match="JPEG"):
        tifffile.imread(src)
    got = _level0_rgb(src, tmp_path)
    for ty in range(0, 150, 64):  # every tile, not just the first
        assert psnr(got[ty:ty + 64], rgb[ty:ty + 64]) > 30, ty


@pytest.mark.parametrize("size", [(150, 203), (64, 128), (200, 64)],
                         ids=["grid-with-edges", "one-row", "one-column"])
def test_tiled_old_style_jpeg_several_tiles_across(tmp_path: Path,
                                                   size: tuple[int, int]) -> None:
    """libtiff returns the first tile of a row for the others there; each tile
    is decoded from the IFD's tables instead.  Every tile is compared with
    the image it was encoded from (distinct content per tile, so a repeated
    tile would fail), and with libtiff where libtiff is right (one across)."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([(xx * 255) // w, (yy * 255) // h, ((xx // 64) * 80 + (yy // 64) * 40) % 256],
                   -1).astype(np.uint8)
    src = tmp_path / "ojpeg.tif"
    write_ojpeg_tiled(src, rgb, tile=64)
    with open_source(src) as r:
        assert any("IFD's JPEG tables" in n for n in r.info.notes), r.info.notes
    got = _level0_rgb(src, tmp_path)
    assert got.shape == rgb.shape
    for ty in range(0, h, 64):
        for tx in range(0, w, 64):
            tile, want = got[ty:ty + 64, tx:tx + 64], rgb[ty:ty + 64, tx:tx + 64]
            assert psnr(tile, want) > 30, (ty, tx, psnr(tile, want))
    if w <= 64:
        from microtome.converters.formats.libtiff_rgba import RgbaPage

        page = RgbaPage(src, 0)
        try:
            ref = page.read(0, 0, w, h)[..., :3]
        finally:
            page.close()
        # libtiff upsamples chroma by replication, libjpeg-turbo smoothly
        assert psnr(got, ref) > 35


def test_tiled_old_style_jpeg_with_restart_markers_numbered_on(tmp_path: Path) -> None:
    """Tiles cut from one long stream: a restart marker after every MCU row,
    numbered on from the previous tile (a lone tile would start at RST0)."""
    h, w = 128, 192
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([(xx * 255) // w, (yy * 255) // h, ((xx // 64) * 80) % 256],
                   -1).astype(np.uint8)
    src = tmp_path / "rst.tif"
    write_ojpeg_tiled(src, rgb, tile=64, restarts=True)
    got = _level0_rgb(src, tmp_path)
    for ty in range(0, h, 64):
        for tx in range(0, w, 64):
            tile, want = got[ty:ty + 64, tx:tx + 64], rgb[ty:ty + 64, tx:tx + 64]
            assert psnr(tile, want) > 30, (ty, tx, psnr(tile, want))


def test_tiled_old_style_jpeg_without_ifd_tables_several_across_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without tables in the IFD only libtiff could read the tiles, and it
    repeats a row's first tile: refused with the reason, nothing written."""
    yy, xx = np.mgrid[0:64, 0:128]
    rgb = np.stack([xx, yy, (xx + yy)], -1).astype(np.uint8)
    src = tmp_path / "wide.tif"
    write_ojpeg_tiled(src, rgb, tile=64, tables_in_ifd=False)
    rc = cli_main(["convert", str(src), "-o", str(tmp_path / "out"), "--json"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 1 and len(err) == 1, err
    assert "without JPEG tables in the IFD and with several tiles across" in err[0], err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_ojpeg_with_broken_tables_fails_with_one_line(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:64, 0:64]
    rgb = np.stack([xx * 3, yy * 3, (xx + yy)], -1).astype(np.uint8)
    src = tmp_path / "broken.tif"
    write_ojpeg_tiled(src, rgb, tile=64)
    data = bytearray(src.read_bytes())
    tags = tifffile.TiffFile(src).pages[0].tags
    for code in (519, 520, 521):  # point every table at garbage past the end
        entry = tags[code]
        for i in range(entry.count):
            off = entry.valueoffset + 4 * i
            data[off:off + 4] = (len(data) + 1000).to_bytes(4, "little")
    src.write_bytes(bytes(data))
    with pytest.raises(SourceError) as err:
        with open_source(src) as r:
            r.read_region(0, 0, 64, 64)
    assert "\n" not in str(err.value) and "self." not in str(err.value)


def _rows_per_strip_zero(dst: Path) -> None:
    img = np.arange(64 * 48, dtype=np.uint8).reshape(48, 64)
    tb = TiffBuilder()
    off = tb.add(img.tobytes())
    dst.write_bytes(tb.finish({
        256: (LONG, [64]), 257: (LONG, [48]), 258: (SHORT, [8]), 259: (SHORT, [1]),
        262: (SHORT, [1]), 273: (LONG, [off]), 277: (SHORT, [1]), 278: (LONG, [0]),
        279: (LONG, [img.size])}))


def test_rows_per_strip_zero_says_so_without_internal_names(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "rps0.tif"
    _rows_per_strip_zero(src)
    rc = cli_main(["convert", str(src), "-o", str(tmp_path / "out"), "--json"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert "RowsPerStrip is 0" in err[0]
    assert "self." not in err[0] and "rowsperstrip=" not in err[0]


def test_8_bit_grey_is_shown_as_stored(tmp_path: Path) -> None:
    """A dim 8-bit scan keeps window 0-255; 16-bit data is still stretched."""
    grey = (np.random.default_rng(1).integers(40, 90, (60, 80))).astype(np.uint8)
    for name, data in (("g8.tif", grey), ("g16.tif", grey.astype(np.uint16) * 10)):
        src = tmp_path / name
        tifffile.imwrite(src, data)
        out = tmp_path / (name + ".ome.zarr")
        convert(src, out)
        ch = open_pyramid(out).meta.channels[0]
        if data.dtype == np.uint8:
            assert (ch.window_start, ch.window_end) == (0, 255)
        else:
            assert 400 <= ch.window_start < ch.window_end <= 900
    jpg = tmp_path / "g.jpg"
    Image.fromarray(grey).save(jpg, quality=95)
    out = tmp_path / "g.jpg.ome.zarr"
    convert(jpg, out)
    ch = open_pyramid(out).meta.channels[0]
    assert (ch.window_start, ch.window_end) == (0, 255)


def test_bilevel_window_is_its_own_range(tmp_path: Path) -> None:
    src = tmp_path / "bw.tif"
    tifffile.imwrite(src, np.random.default_rng(2).integers(0, 2, (30, 40)).astype(bool))
    out = tmp_path / "bw.ome.zarr"
    convert(src, out)
    ch = open_pyramid(out).meta.channels[0]
    assert (ch.window_start, ch.window_end) == (0, 1)
