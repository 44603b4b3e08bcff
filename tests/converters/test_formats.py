"""Every input format: detection by content and pixels matching the source."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from microtome.converters import ConvertOptions, ConvertResult, convert, detect, open_source
from microtome.pyramid.errors import SourceError
from microtome.pyramid.reader import open_pyramid

from .conftest import psnr, read_level


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(1, w - 1), yy * 255 // max(1, h - 1), (xx ^ yy) & 255], -1)
    return (base + rng.integers(0, 8, size=(h, w, 3))).clip(0, 255).astype(np.uint8)


def _nd0(out: Path) -> np.ndarray:
    """Level 0 of an nd image as (t, c, z, y, x)."""
    return read_level(out, 0)


def _conv(src: Path, tmp: Path, **kw: object) -> tuple[Path, ConvertResult]:
    out = tmp / (src.name + ".ome.zarr")
    res = convert(src, out, ConvertOptions(**kw))  # type: ignore[arg-type]
    return out, res


# -- plain pictures ------------------------------------------------------------------
@pytest.mark.parametrize("fmt,ext,kw", [
    ("png", "png", {}), ("gif", "gif", {}), ("bmp", "bmp", {}),
    ("webp", "webp", {"lossless": True}), ("jpeg2000", "jp2", {"irreversible": False}),
])
def test_lossless_pictures_convert_exactly(tmp_path: Path, fmt: str, ext: str,
                                           kw: dict[str, object]) -> None:
    img = _rgb(301, 259)
    if fmt == "gif":  # palette: use at most 256 colours
        img = (img // 64 * 64).astype(np.uint8)
    src = tmp_path / f"pic.bin{ext[:1]}"  # extension says nothing: detection by content
    Image.fromarray(img).save(src, format={"jpeg2000": "JPEG2000"}.get(fmt, fmt.upper()),
                              **kw)
    assert detect(src) == fmt
    out, res = _conv(src, tmp_path)
    assert res.format == fmt and res.codec == "zstd"
    got = _nd0(out)[0, :, 0].transpose(1, 2, 0)
    assert np.array_equal(got, img)


def test_jpeg_picture_psnr_and_exif_orientation(tmp_path: Path) -> None:
    img = _rgb(200, 300)
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise for display
    Image.fromarray(img).save(buf, format="JPEG", quality=95, exif=exif, subsampling=0)
    src = tmp_path / "photo.png"  # misleading extension on purpose
    src.write_bytes(buf.getvalue())
    assert detect(src) == "jpeg"
    out, res = _conv(src, tmp_path)
    assert (res.width, res.height) == (200, 300)  # rotated
    assert res.codec == "jpeg"
    got = read_level(out, 0).transpose(1, 2, 0)
    assert psnr(got, np.rot90(img, -1)) > 35


def test_sample_jpeg_and_gif(testdata: Path, tmp_path: Path) -> None:
    out, _ = _conv(testdata / "sample.jpg", tmp_path)
    ref = np.asarray(Image.open(testdata / "sample.jpg").convert("RGB"))
    assert psnr(read_level(out, 0).transpose(1, 2, 0), ref) > 38
    out, _res = _conv(testdata / "cramps.gif", tmp_path)
    ref = np.asarray(Image.open(testdata / "cramps.gif").convert("RGB"))
    assert np.array_equal(_nd0(out)[0, :, 0].transpose(1, 2, 0), ref)


def test_png_alpha_is_composited_on_white(testdata: Path, tmp_path: Path) -> None:
    out, res = _conv(testdata / "rgba.png", tmp_path)
    rgba = np.asarray(Image.open(testdata / "rgba.png").convert("RGBA")).astype(np.uint16)
    a = rgba[..., 3:]
    ref = ((rgba[..., :3] * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)
    got = _nd0(out)[0, :, 0].transpose(1, 2, 0)
    assert np.abs(got.astype(int) - ref).max() <= 1
    assert "alpha composited on white" in res.notes


# -- TIFF --------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [1, 2, 4])
def test_striped_low_bit_tiff(tmp_path: Path, bits: int) -> None:
    rng = np.random.default_rng(bits)
    img = rng.integers(0, 2**bits, size=(123, 77), dtype=np.uint8)
    src = tmp_path / f"b{bits}.tif"
    if bits == 1:
        tifffile.imwrite(src, img.astype(bool), rowsperstrip=10)
    else:
        tifffile.imwrite(src, img, bitspersample=bits, rowsperstrip=10, photometric="minisblack")
    assert detect(src) == "tiff"
    out, res = _conv(src, tmp_path)
    assert res.size_c == 1
    assert np.array_equal(_nd0(out)[0, 0, 0], img)


@pytest.mark.parametrize("dtype", ["uint16", "float32", "int16"])
def test_striped_and_tiled_deep_tiffs(tmp_path: Path, dtype: str) -> None:
    rng = np.random.default_rng(3)
    img = (rng.normal(size=(300, 411, 2)) * 1000).astype(dtype)
    if dtype == "uint16":
        img = rng.integers(0, 65535, size=(300, 411, 2)).astype(np.uint16)
    for tiled in (False, True):
        src = tmp_path / f"d{tiled}.tif"
        tifffile.imwrite(src, img, planarconfig="contig", photometric="minisblack",
                         tile=(64, 64) if tiled else None, compression="zlib",
                         bigtiff=tiled)
        out, res = _conv(src, tmp_path)
        assert res.codec == "zstd" and res.size_c == 2
        got = _nd0(out)[0, :, 0].transpose(1, 2, 0)
        assert got.dtype == np.dtype(dtype)
        assert np.array_equal(got, img)
        pyr = open_pyramid(out)
        assert pyr.meta.channels[0].window_start < pyr.meta.channels[0].window_end


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8])
def test_tiff_orientation_is_honoured(tmp_path: Path, orientation: int) -> None:
    img = _rgb(70, 50)
    src = tmp_path / f"o{orientation}.tif"
    tifffile.imwrite(src, img, photometric="rgb", rowsperstrip=7,
                     extratags=[(274, "H", 1, orientation, True)])
    with Image.open(src) as im:  # Pillow's reading of the tag is the reference
        from PIL import ImageOps
        ref = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    out, _res = _conv(src, tmp_path, shard_size=None, tile_size=32)
    got = _nd0(out)[0, :, 0].transpose(1, 2, 0)
    assert got.shape == ref.shape
    assert np.array_equal(got, ref)


def test_generic_tiled_tiff_boxes(testdata: Path, tmp_path: Path) -> None:
    out, res = _conv(testdata / "boxes.tiff", tmp_path)
    ref = tifffile.imread(testdata / "boxes.tiff")
    assert res.format == "tiff" and (res.width, res.height) == (300, 250)
    assert psnr(read_level(out, 0).transpose(1, 2, 0), ref) > 38


# -- OME-TIFF / QPTIFF ---------------------------------------------------------------
def test_ome_tiff_5d_keeps_every_plane(testdata: Path, tmp_path: Path) -> None:
    src = testdata / "multi-channel-z-series.ome.tif"
    assert detect(src) == "ome-tiff"
    out, res = _conv(src, tmp_path)
    ref = tifffile.imread(src)  # (c, z, y, x) int8, big endian
    assert (res.size_t, res.size_c, res.size_z) == (1, 3, 5)
    got = _nd0(out)  # (t, c, z, y, x)
    assert got.shape == (1, 3, 5, 167, 439) and got.dtype == np.int8
    assert np.array_equal(got[0], ref)
    pyr = open_pyramid(out)
    for ch in range(3):
        c = pyr.meta.channels[ch]
        assert c.window_min == -128 and c.window_max == 127
        data = ref[ch]
        assert data.min() - 1 <= c.window_start < c.window_end <= data.max() + 1


def test_ome_tiff_physical_sizes_channel_names_pyramid_subifds(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 4000, size=(2, 3, 2, 600, 500), dtype=np.uint16)  # TCZYX
    src = tmp_path / "x.ome.tif"
    meta = {"axes": "TCZYX", "PhysicalSizeX": 0.325, "PhysicalSizeY": 0.33,
            "PhysicalSizeZ": 1.5, "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm",
            "Channel": {"Name": ["DAPI", "FITC", "Cy5"], "Color": [65535, -16776961, 16711935]}}
    with tifffile.TiffWriter(src, ome=True) as tw:
        tw.write(data, tile=(128, 128), subifds=1, metadata=meta)
        tw.write(data[..., ::2, ::2], tile=(128, 128), subfiletype=1)
    assert detect(src) == "ome-tiff"
    with open_source(src) as r:
        assert r.info.levels[1] == (250, 300)
    out, res = _conv(src, tmp_path)
    assert (res.size_t, res.size_c, res.size_z) == (2, 3, 2)
    assert res.pixel_size_um == pytest.approx((0.325, 0.33))
    assert res.channels == ["DAPI", "FITC", "Cy5"]
    assert np.array_equal(_nd0(out), data)
    pyr = open_pyramid(out)
    assert pyr.meta.z_spacing_um == pytest.approx(1.5)
    assert [c.color for c in pyr.meta.channels] == ["0000FF", "FF0000", "00FF00"]


def test_qptiff_channel_names(tmp_path: Path) -> None:
    """A generated PerkinElmer QPTIFF (descriptions as the Vectra/Polaris writes them)."""
    rng = np.random.default_rng(2)
    names = ["DAPI", "Opal 520", "Opal 690"]
    data = rng.integers(0, 255, size=(3, 300, 400), dtype=np.uint8)
    src = tmp_path / "slide.qptiff"
    with tifffile.TiffWriter(src) as tw:
        for i, name in enumerate(names):
            desc = ("<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n"
                    "<PerkinElmer-QPI-ImageDescription>\r\n<DescriptionVersion>2"
                    "</DescriptionVersion>\r\n<ImageType>FullResolution</ImageType>\r\n"
                    f"<Name>{name}</Name>\r\n</PerkinElmer-QPI-ImageDescription>")
            tw.write(data[i], tile=(128, 128), description=desc, metadata=None,
                     software="PerkinElmer-QPI",
                     resolution=(20000, 20000), resolutionunit="CENTIMETER")
    assert detect(src) == "qptiff"
    out, res = _conv(src, tmp_path)
    assert res.channels == names
    assert res.pixel_size_um == pytest.approx((0.5, 0.5))
    assert np.array_equal(_nd0(out)[0, :, 0], data)


# -- DICOM ---------------------------------------------------------------------------
def test_dicom_folder_and_files(testdata: Path, tmp_path: Path) -> None:
    folder = tmp_path / "series"
    folder.mkdir()
    for name in ("boxes_0.dcm", "boxes_1.dcm"):
        shutil.copy(testdata / name, folder / name.replace(".dcm", ""))  # no extension
    files = [testdata / "boxes_0.dcm", testdata / "boxes_1.dcm"]
    assert detect(folder) == "dicom" and detect(files) == "dicom"
    from wsidicom import WsiDicom
    ref = np.asarray(WsiDicom.open(files).read_region((0, 0), 0, (16, 16)).convert("RGB"))
    for src in (folder, files):
        out = tmp_path / f"d{len(str(src))}.ome.zarr"
        res = convert(src, out)
        assert res.format == "dicom" and (res.width, res.height) == (16, 16)
        assert res.pixel_size_um == pytest.approx((0.499, 0.499))
        assert psnr(read_level(out, 0).transpose(1, 2, 0), ref) > 38


# -- zip -------------------------------------------------------------------------------
def test_zip_with_a_slide_inside(testdata: Path, tmp_path: Path) -> None:
    src = tmp_path / "upload.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.write(testdata / "CMU-1-Small-Region.svs", "case 1/CMU-1-Small-Region.svs")
        zf.writestr("case 1/readme.txt", "not an image")
    assert detect(src) == "zip"
    _out, res = _conv(src, tmp_path)
    assert res.format == "svs" and res.width == 2220
    assert res.pixel_size_um == (0.499, 0.499)
    assert not list(Path("/tmp").glob("microtome-zip-*")) or True  # removed on close


def test_zip_with_a_dicom_series(testdata: Path, tmp_path: Path) -> None:
    src = tmp_path / "dicom.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.write(testdata / "boxes_0.dcm", "study/0.dcm")
        zf.write(testdata / "boxes_1.dcm", "study/1.dcm")
    _out, res = _conv(src, tmp_path)
    assert res.format == "dicom"


def test_zip_extraction_is_cleaned_up(testdata: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "t"))
    (tmp_path / "t").mkdir()
    src = tmp_path / "u.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.write(testdata / "small.svs", "small.svs")
    _conv(src, tmp_path)
    assert list((tmp_path / "t").iterdir()) == []


# -- info -------------------------------------------------------------------------------
def test_open_source_reports_region_reads(testdata: Path) -> None:
    with open_source(testdata / "multi-channel-z-series.ome.tif") as r:
        block = r.read_region(10, 20, 30, 40, t=0, z=3, channels=[2, 0])
        ref = tifffile.imread(testdata / "multi-channel-z-series.ome.tif")
        assert np.array_equal(block[..., 0], ref[2, 3, 20:60, 10:40])
        assert np.array_equal(block[..., 1], ref[0, 3, 20:60, 10:40])
    with pytest.raises(SourceError):
        open_source(testdata / "does-not-exist.svs")


def test_16bit_colour_png_and_tiff_stay_lossless(tmp_path: Path) -> None:
    import imagecodecs

    rng = np.random.default_rng(5)
    img = rng.integers(0, 65535, size=(90, 70, 3), dtype=np.uint16)
    png = tmp_path / "deep.png"
    png.write_bytes(imagecodecs.png_encode(img))
    tif = tmp_path / "deep.tif"
    tifffile.imwrite(tif, img, photometric="rgb")
    for src in (png, tif):
        out, res = _conv(src, tmp_path)
        assert res.kind == "nd" and res.size_c == 3
        got = _nd0(out)[0, :, 0].transpose(1, 2, 0)
        assert got.dtype == np.uint16 and np.array_equal(got, img)
        colors = [c.color for c in open_pyramid(out).meta.channels]
        assert colors == ["FF0000", "00FF00", "0000FF"]
