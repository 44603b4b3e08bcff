"""Giant plain pictures convert in bounded memory (libvips bands); headers
claiming absurd sizes are refused with the reason, under a configurable limit."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from microtome.converters import ConvertOptions, convert, open_source
from microtome.pyramid.errors import SourceError

from .conftest import psnr, read_level

REPO = Path(__file__).resolve().parents[2]

# Converts a picture in a fresh process with the banded path forced (a low
# threshold, so the test image can stay small) and reports the peak RSS.
_CHILD = """
import json, resource, sys
from pathlib import Path
from microtome.converters.formats import vips_picture as vp
vp.BANDED_ABOVE_BYTES = vp.BANDED_ABOVE_PIXELS = int(sys.argv[3])
from PIL import Image
Image.MAX_IMAGE_PIXELS = None  # the yardstick run decodes whole through Pillow
from microtome.converters import ConvertOptions, convert
from microtome.converters.sources import open_source
with open_source(Path(sys.argv[1])) as r:
    notes = r.info.notes
convert(Path(sys.argv[1]), Path(sys.argv[2]), ConvertOptions(workers=2))
def peak_mb():  # VmHWM: ru_maxrss survives fork/exec and would show the parent
    with open("/proc/self/status") as f:
        return int(next(x for x in f if x.startswith("VmHWM")).split()[1]) / 1024
print(json.dumps({"peak_mb": peak_mb(),
                  "notes": notes}))
"""


def _gradient_jpeg(path: Path, w: int, h: int) -> None:
    import pyvips

    xyz = pyvips.Image.xyz(w, h)
    img = (xyz[0] % 256).bandjoin([xyz[1] % 256, (xyz[0] + xyz[1]) % 256]).cast("uchar")
    img.jpegsave(str(path), Q=90)


def _child(src: Path, out: Path, threshold: int) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(src), str(out), str(threshold)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_large_jpeg_converts_in_bands_with_bounded_memory(tmp_path: Path) -> None:
    """9000 x 7000 RGB: 180 MB decoded.  The same conversion through Pillow's
    whole-image decode is the yardstick: the banded path must save at least
    half the decoded size, and stay under 512 MB."""
    w, h = 9000, 7000
    decoded_mb = w * h * 3 / 2**20
    src = tmp_path / "big.jpg"
    _gradient_jpeg(src, w, h)
    whole = _child(src, tmp_path / "whole.ome.zarr", 1 << 40)
    assert not any("bands" in str(n) for n in whole["notes"])  # type: ignore[attr-defined]
    out = tmp_path / "big.ome.zarr"
    report = _child(src, out, 1)
    assert any("bands" in str(n) for n in report["notes"]), report  # type: ignore[attr-defined]
    peak, yardstick = float(report["peak_mb"]), float(whole["peak_mb"])  # type: ignore[arg-type]
    assert peak < yardstick - decoded_mb / 2 and peak < 512, (peak, yardstick)
    # Pixels against Pillow's decode of the same file (a corner and the middle).
    with Image.open(src) as im:
        ref = np.asarray(im.crop((4096, 2048, 4096 + 512, 2048 + 512)).convert("RGB"))
    import zarr
    got = np.asarray(zarr.open_array(str(out / "0"), mode="r")[:, 2048:2560, 4096:4608])
    assert psnr(got.transpose(1, 2, 0), ref) > 38


def test_banded_reader_matches_pillow_with_exif_orientation(tmp_path: Path) -> None:
    from microtome.converters.formats.vips_picture import VipsPicture

    yy, xx = np.mgrid[0:90, 0:130]
    img = np.stack([xx * 2, yy * 2, (xx + yy)], -1).astype(np.uint8)
    src = tmp_path / "o.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(img).save(src, quality=95, exif=exif)
    reader = VipsPicture(src, "jpeg")
    try:
        got = reader.read_region(0, 0, reader.info.width, reader.info.height)
    finally:
        reader.close()
    from PIL import ImageOps
    with Image.open(src) as im:
        ref = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert got.shape == ref.shape == (130, 90, 3)
    assert np.abs(got.astype(int) - ref).max() <= 2


def test_banded_png_keeps_16_bit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from microtome.converters.formats import vips_picture as vp
    monkeypatch.setattr(vp, "BANDED_ABOVE_BYTES", 1)
    data = np.random.default_rng(0).integers(0, 65535, (70, 90, 3)).astype(np.uint16)
    import imagecodecs
    src = tmp_path / "deep.png"
    src.write_bytes(imagecodecs.png_encode(data))
    out = tmp_path / "deep.ome.zarr"
    convert(src, out, ConvertOptions())
    got = read_level(out, 0)[0, :, 0].transpose(1, 2, 0)
    assert got.dtype == np.uint16 and np.array_equal(got, data)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def _jpeg_claiming(path: Path, w: int, h: int) -> None:
    """A real small JPEG whose SOF says w x h."""
    from io import BytesIO
    buf = BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", h, w)
    path.write_bytes(bytes(data))


def test_headers_claiming_gigapixels_are_refused_with_the_reason(tmp_path: Path) -> None:
    png = tmp_path / "huge.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n"
                    + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
                    + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 100))
                    + _png_chunk(b"IEND", b""))
    jpg = tmp_path / "huge.jpg"  # JPEG sizes stop at 65535
    _jpeg_claiming(jpg, 65000, 65000)
    for src, dims in ((png, "100000x100000"), (jpg, "65000x65000")):
        with pytest.raises(SourceError) as err:
            open_source(src)
        msg = str(err.value)
        assert dims in msg and "decompression bomb limit" in msg, msg
        assert "MICROTOME_MAX_IMAGE_PIXELS" in msg


def test_bomb_limit_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "p.jpg"
    Image.new("RGB", (300, 200), (1, 2, 3)).save(src)
    monkeypatch.setenv("MICROTOME_MAX_IMAGE_PIXELS", "50000")
    with pytest.raises(SourceError, match="300x200"):
        open_source(src)
    monkeypatch.setenv("MICROTOME_MAX_IMAGE_PIXELS", "60000")
    with open_source(src) as r:
        assert (r.info.width, r.info.height) == (300, 200)
