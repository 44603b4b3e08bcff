"""Files that are not from our sample set, through `microtome convert` / `info`.

Pictures shipped inside scikit-image (a dependency of ome-zarr), non-images
shipped beside them, and TIFFs generated with the layouts other software
writes (planar separate, YCbCr JPEG tiles, BigTIFF with one-row strips,
LZW + predictor, CMYK, palette, 12-bit, 1x1, sparse tiled) or that a
damaged or hostile file has (lying sizes, cut-off data, no IFD).

Each must convert with the right pixels (compared with Pillow's or
tifffile's own decode) or fail with exactly one `error: <file>: <reason>`
line, exit 1, and nothing left in the output folder.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skimage
import tifffile
from PIL import Image, ImageOps

from microtome.cli import main
from microtome.pyramid.reader import open_pyramid

SKIMAGE_DATA = Path(skimage.__file__).parent / "data"
YY, XX = np.mgrid[0:300, 0:400]
RGB = np.stack([XX % 256, YY % 256, (XX + YY) % 256], axis=-1).astype(np.uint8)
G12 = ((XX * 7 + YY * 3) % 4096).astype(np.uint16)


def _pil(path: Path) -> np.ndarray:
    im = ImageOps.exif_transpose(Image.open(path))
    grey = im.mode == "LA"
    if im.mode in ("LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
    if im.mode == "RGBA":  # the converter composites alpha on white
        a = np.asarray(im).astype(np.float64)
        al = a[..., 3:] / 255
        out = np.round(a[..., :3] * al + 255 * (1 - al)).astype(np.uint8)
        return out[..., :1] if grey else out
    arr = np.asarray(im if im.mode in ("L", "I;16") else im.convert("RGB"))
    return arr[..., None] if arr.ndim == 2 else arr


def _tiff(path: Path) -> np.ndarray:
    arr = tifffile.imread(path)
    return arr[..., None] if arr.ndim == 2 else arr


def _known(arr: np.ndarray) -> Callable[[Path], np.ndarray]:
    return lambda _: arr[..., None] if arr.ndim == 2 else arr


def _skimage(name: str) -> Callable[[Path], Any]:
    return lambda dst: shutil.copyfile(SKIMAGE_DATA / name, dst)


def _exif_rotated(dst: Path, orientation: int) -> None:
    im = Image.fromarray(RGB)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(dst, exif=exif, quality=95)


def _sparse(dst: Path) -> None:
    """8192 x 8192 tiled, only the first tile written (the rest have no bytes)."""
    n = 32 * 32

    def tiles():  # type: ignore[no-untyped-def]
        for i in range(n):
            yield np.full((256, 256, 3), 200, np.uint8) if i == 0 else None

    with tifffile.TiffWriter(dst, bigtiff=True) as tw:
        tw.write(tiles(), shape=(8192, 8192, 3), dtype=np.uint8, photometric="rgb",
                 tile=(256, 256), compression="zlib")


def _palette(dst: Path) -> None:
    cmap = np.zeros((3, 256), np.uint16)
    cmap[:, :4] = np.array([[65535, 0, 0, 65535], [0, 65535, 0, 65535], [0, 0, 65535, 0]])
    idx = ((XX // 50 + YY // 50) % 4).astype(np.uint8)
    tifffile.imwrite(dst, idx, photometric="palette", colormap=cmap)


def _cmyk(dst: Path) -> None:
    k = (XX % 7 * 20).astype(np.uint8)[..., None]
    tifffile.imwrite(dst, np.concatenate([255 - RGB, k], axis=-1), photometric="separated")


def _ome(dst: Path, size_c: int, extra: str = "", name: str = "x") -> None:
    """A one-plane TIFF whose OME-XML says what we want it to say."""
    xml = (f'{extra}<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
           f'<Image ID="Image:0" Name="{name}"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" '
           f'Type="uint8" SizeX="400" SizeY="300" SizeC="{size_c}" SizeZ="1" SizeT="1">'
           '<TiffData/></Pixels></Image></OME>')
    tifffile.imwrite(dst, RGB[..., 0], description=xml, metadata=None)


_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
           + "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">'
                     for p, c in zip("abcdefgh", "bcdefghi", strict=True)) + "]>")

# name, file suffix, writer, reference pixels, exact (else PSNR >= 35 dB)
CONVERTS: list[tuple[str, str, Callable[[Path], Any], Callable[[Path], np.ndarray], bool]] = [
    ("skimage-astronaut", ".png", _skimage("astronaut.png"), _pil, True),
    ("skimage-camera", ".png", _skimage("camera.png"), _pil, True),
    ("skimage-logo-rgba", ".png", _skimage("logo.png"), _pil, True),
    ("skimage-tiny-gif", ".gif", _skimage("no_time_for_that_tiny.gif"), _pil, True),
    ("skimage-retina-jpeg", ".jpg", _skimage("retina.jpg"), _pil, False),
    ("planar-separate-strips", ".tif",
     lambda d: tifffile.imwrite(d, np.moveaxis(RGB, -1, 0), photometric="rgb",
                                planarconfig="separate"), _known(RGB), True),
    ("planar-separate-tiled", ".tif",
     lambda d: tifffile.imwrite(d, np.moveaxis(RGB, -1, 0), photometric="rgb",
                                planarconfig="separate", tile=(64, 64)), _known(RGB), True),
    # tifffile stores RGB + JPEG as YCbCr 4:2:0 JPEG tiles (what most slides are).
    ("ycbcr-jpeg-tiles", ".tif",
     lambda d: tifffile.imwrite(d, RGB, photometric="rgb", compression="jpeg", tile=(128, 128)),
     _tiff, False),
    ("bigtiff-one-row-strips", ".tif",
     lambda d: tifffile.imwrite(d, RGB, photometric="rgb", bigtiff=True, rowsperstrip=1),
     _known(RGB), True),
    ("lzw-predictor-rgb", ".tif",
     lambda d: tifffile.imwrite(d, RGB, photometric="rgb", compression="lzw", predictor=True),
     _known(RGB), True),
    ("lzw-predictor-uint16", ".tif",
     lambda d: tifffile.imwrite(d, G12, compression="lzw", predictor=True), _known(G12), True),
    ("12-bit-in-uint16", ".tif", lambda d: tifffile.imwrite(d, G12), _known(G12), True),
    ("12-bit-jpeg", ".tif",
     lambda d: tifffile.imwrite(d, G12, compression="jpeg", bitspersample=12), _tiff, True),
    ("cmyk", ".tif", _cmyk, _pil, True),
    ("palette", ".tif", _palette, _pil, True),
    ("cmyk-jpeg", ".jpg",
     lambda d: Image.fromarray(RGB).convert("CMYK").save(d, quality=95), _pil, False),
    ("exif-rotated-jpeg", ".jpg", lambda d: _exif_rotated(d, 6), _pil, False),
    ("palette-png-transparency", ".png",
     lambda d: Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
     .save(d, transparency=0), _pil, True),
    ("grey-alpha-png", ".png", lambda d: Image.fromarray(RGB).convert("LA").save(d), _pil, True),
    # Entity expansion in OME-XML must neither hang nor blow up memory.
    ("ome-billion-laughs", ".ome.tif", lambda d: _ome(d, 1, _LAUGHS, "&i;"),
     _known(RGB[..., 0]), True),
    ("one-pixel-rgb", ".tif",
     lambda d: tifffile.imwrite(d, RGB[:1, :1], photometric="rgb"), _known(RGB[:1, :1]), True),
    ("one-pixel-gray", ".tif",
     lambda d: tifffile.imwrite(d, np.array([[7]], np.uint8)),
     _known(np.array([[7]], np.uint8)), True),
]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("name,suffix,write,reference,exact", CONVERTS,
                         ids=[c[0] for c in CONVERTS])
def test_foreign_file_converts_with_correct_pixels(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, suffix: str,
        write: Callable[[Path], Any], reference: Callable[[Path], np.ndarray],
        exact: bool) -> None:
    src = tmp_path / f"{name}{suffix}"
    write(src)
    expected = reference(src)
    rc, out, err = _run(capsys, "info", str(src), "--json")
    assert rc == 0, err
    info = json.loads(out)
    info = info[0] if isinstance(info, list) else info
    assert (info["width"], info["height"]) == (expected.shape[1], expected.shape[0])

    rc, out, err = _run(capsys, "convert", str(src), "-o", str(tmp_path / "out"), "--json")
    assert rc == 0, err
    pyr = open_pyramid(tmp_path / "out" / f"{name}.ome.zarr")
    got = pyr.read_region(0, 0, 0, pyr.meta.width, pyr.meta.height)
    assert got.shape == expected.shape
    if exact:
        assert np.array_equal(got, expected)
    else:
        mse = np.mean((got.astype(np.float64) - expected) ** 2)
        assert mse == 0 or 10 * np.log10(255**2 / mse) >= 35, mse


def test_sparse_tiled_tiff_converts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "sparse.tif"
    _sparse(src)
    rc, _, err = _run(capsys, "convert", str(src), "-o", str(tmp_path / "out"))
    assert rc == 0, err
    pyr = open_pyramid(tmp_path / "out" / "sparse.ome.zarr")
    assert (pyr.meta.width, pyr.meta.height) == (8192, 8192)
    assert np.all(pyr.read_region(0, 0, 0, 256, 256) == 200)
    assert np.all(pyr.read_region(0, 8000, 8000, 192, 192) == 0)  # empty tiles: fill value


def test_animated_gif_says_only_its_first_frame_is_kept(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "anim.gif"
    frames = [Image.fromarray(np.roll(RGB, 40 * i, axis=1)) for i in range(3)]
    frames[0].save(src, save_all=True, append_images=frames[1:])
    rc, out, err = _run(capsys, "convert", str(src), "-o", str(tmp_path / "out"), "--json")
    assert rc == 0, err
    row = json.loads(out)
    row = row[0] if isinstance(row, list) else row
    assert "animated image: first of 3 frames converted" in row["notes"]
    pyr = open_pyramid(tmp_path / "out" / "anim.ome.zarr")
    got = pyr.read_region(0, 0, 0, 400, 300)
    assert np.array_equal(got, np.asarray(Image.open(src).convert("RGB")))


def _lying_dims(dst: Path, tile: bool) -> None:
    """A valid small TIFF whose header then claims 60000 x 60000 pixels."""
    if tile:
        tifffile.imwrite(dst, RGB, photometric="rgb", tile=(64, 64), compression="zlib")
    else:
        tifffile.imwrite(dst, RGB, photometric="rgb", compression="zlib", rowsperstrip=300)
    with tifffile.TiffFile(dst) as tif:
        tags = tif.pages[0].tags  # type: ignore[union-attr]
        places = [(tif.byteorder + {3: "H", 4: "I", 16: "Q"}[tags[n].dtype], tags[n].valueoffset)
                  for n in ("ImageWidth", "ImageLength")]
    data = bytearray(dst.read_bytes())
    for fmt, offset in places:
        struct.pack_into(fmt, data, offset, 60000)
    dst.write_bytes(bytes(data))


def _truncated_tiles(dst: Path) -> None:
    tifffile.imwrite(dst, RGB, photometric="rgb", tile=(64, 64), compression="zlib")
    data = dst.read_bytes()
    dst.write_bytes(data[: len(data) // 2])


def _no_ifd(dst: Path) -> None:
    """A BigTIFF header whose first IFD lies past the end of the file."""
    dst.write_bytes(b"II+\x00\x08\x00\x00\x00" + struct.pack("<Q", 1 << 40) + b"\x00" * 64)


REFUSED: list[tuple[str, Callable[[Path], Any]]] = [
    # OME-XML promises 1000 channels, the file holds one plane: tifffile would
    # zero the other 999 and the converter used to publish them as data.
    ("ome-missing-planes.ome.tif", lambda d: _ome(d, 1000)),
    ("skimage-cascade.xml", _skimage("lbpcascade_frontalface_opencv.xml")),
    ("skimage-lfw.npy", _skimage("lfw_subset.npy")),
    ("skimage-disparity.npz", _skimage("motorcycle_disp.npz")),
    ("lying-dims-tiled.tif", lambda d: _lying_dims(d, tile=True)),
    ("lying-dims-strips.tif", lambda d: _lying_dims(d, tile=False)),
    ("truncated-tiles.tif", _truncated_tiles),
    ("no-ifd.tif", _no_ifd),
]


@pytest.mark.parametrize("name,write", REFUSED, ids=[r[0] for r in REFUSED])
def test_bad_file_fails_with_one_clear_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str,
        write: Callable[[Path], Any]) -> None:
    src = tmp_path / name
    write(src)
    out_dir = tmp_path / "out"
    rc, _, err = _run(capsys, "convert", str(src), "-o", str(out_dir), "--json")
    assert rc == 1, err
    errors = [line for line in err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith(f"error: {src}: "), err
    reason = errors[0].split(": ", 2)[2]
    assert "Error:" not in reason and "index out of range" not in reason, reason
    # Nothing that could pass for an image (no .ome.zarr, no leftover .partial).
    assert not out_dir.exists() or not any(out_dir.iterdir())
    # `info` reads headers only: it may describe a file whose data is cut off.
    rc, _, err = _run(capsys, "info", str(src))
    if name != "truncated-tiles.tif":
        assert rc == 1, err
    if rc:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: {src}: "), err


def test_concurrent_conversions_to_one_output(tmp_path: Path, testdata: Path) -> None:
    """Three at once used to delete each other's partial directory: all three
    failed 'verification'.  Now one wins and the others are told why."""
    import fcntl
    import os
    from concurrent.futures import ThreadPoolExecutor

    from microtome.converters import convert
    from microtome.pyramid.errors import Conflict

    src = testdata / "CMU-1-Small-Region.svs"
    dst = tmp_path / "out" / "cmu.ome.zarr"
    dst.parent.mkdir()
    # Another process holds the output: refused at once, nothing written.
    fd = os.open(dst.with_name(dst.name + ".lock"), os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    with pytest.raises(Conflict, match="another conversion"):
        convert(src, dst)
    os.close(fd)
    assert sorted(p.name for p in dst.parent.iterdir()) == ["cmu.ome.zarr.lock"]

    def attempt(_: int) -> str:
        try:
            convert(src, dst)
            return "ok"
        except Conflict as e:
            return e.message

    with ThreadPoolExecutor(3) as pool:
        outcomes = list(pool.map(attempt, range(3)))
    assert outcomes.count("ok") == 1, outcomes
    assert all(o == "ok" or "another conversion" in o or "already exists" in o
               for o in outcomes), outcomes
    assert [p.name for p in dst.parent.iterdir()] == ["cmu.ome.zarr"]  # no lock, no partial
    pyr = open_pyramid(dst)
    assert (pyr.meta.width, pyr.meta.height) == (2220, 2967)


@pytest.mark.parametrize("command", ["info", "convert"])
def test_fifo_is_refused_not_waited_on(tmp_path: Path, command: str) -> None:
    """A named pipe called .tif: open() would block until a writer comes (it hung)."""
    import os
    import subprocess
    import sys

    fifo = tmp_path / "pipe.tif"
    os.mkfifo(fifo)
    argv = [sys.executable, "-m", "microtome", command, str(fifo)]
    if command == "convert":
        argv += ["-o", str(tmp_path / "out")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert f"error: {fifo}: not a regular file" in done.stderr
