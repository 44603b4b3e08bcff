"""Every file in the project's test data folder: each image converts through
`microtome convert` with level-0 pixels compared against an independent
reader (Pillow, tifffile, OpenSlide, pyimzML); each non-image or damaged file
fails with one clear line.  A file added to the folder and not listed here
fails the test, so nothing there goes unchecked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from microtome.cli import main
from microtome.pyramid.reader import open_pyramid

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata"


def _pillow(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        if im.mode in ("RGBA", "LA", "P", "PA"):
            rgba = np.asarray(im.convert("RGBA")).astype(np.float64)
            a = rgba[..., 3:] / 255
            return np.round(rgba[..., :3] * a + 255 * (1 - a)).astype(np.uint8)
        return np.asarray(im.convert("RGB"))


def _openslide(path: Path) -> np.ndarray:
    import openslide

    with openslide.OpenSlide(str(path)) as s:
        w, h = s.dimensions
        return np.asarray(s.read_region((0, 0), 0, (w, h)).convert("RGB"))


def _tifffile(path: Path) -> np.ndarray:
    return np.asarray(tifffile.imread(path))


def _tic(path: Path) -> np.ndarray:
    from pyimzml.ImzMLParser import ImzMLParser

    p = ImzMLParser(str(path))
    w = max(x for x, _y, _z in p.coordinates)
    h = max(y for _x, y, _z in p.coordinates)
    out = np.zeros((h, w), np.float64)
    for i, (x, y, _z) in enumerate(p.coordinates):
        out[y - 1, x - 1] = np.asarray(p.getspectrum(i)[1], np.float64).sum()
    return out


#: name -> (extra files converted with it, reference reader, minimum PSNR or None = exact)
CONVERTS: dict[str, tuple[list[str], Callable[[Path], np.ndarray], float | None]] = {
    "CMU-1-Small-Region.svs": ([], _openslide, 38.0),
    "small.svs": ([], _openslide, 38.0),
    "boxes.tiff": ([], _tifffile, 38.0),
    "boxes_0.dcm": (["boxes_1.dcm"], _openslide, 38.0),
    "multi-channel-z-series.ome.tif": ([], _tifffile, None),
    "sample.jpg": ([], _pillow, 38.0),
    "cramps.gif": ([], _pillow, None),
    "rgba.png": ([], _pillow, None),
    "old-style-jpeg-compression.tif": ([], _pillow, 38.0),
    "tiff_strip_cmyk_jpeg.tif": ([], _pillow, 35.0),  # 100 px of saturated inks
    "tiff_tiled_ycbcr_jpeg_2x2_sampling.tif": ([], _pillow, 38.0),
    "Example_Continuous.imzML": ([], _tic, None),
}
#: name -> words the one error line must contain
REFUSED = {
    "truncated.jpg": "truncated",
    "unreadable.svs": "JPEG",
    "unopenable.tiff": "unsupported TIFF compression",
    "notanimage.txt": "not a recognised image format",
    "SOURCES.md": "not a recognised image format",
    "Example_Continuous.ibd": "only the data half",
}
PART_OF_ANOTHER = {"boxes_1.dcm"}


def test_every_sample_is_classified() -> None:
    names = {p.name for p in TESTDATA.iterdir() if p.is_file()}
    assert names, f"no test data in {TESTDATA}"
    unknown = names - set(CONVERTS) - set(REFUSED) - PART_OF_ANOTHER
    assert not unknown, f"new sample files not covered by this test: {sorted(unknown)}"


def test_every_file_sources_md_lists_is_there_and_classified() -> None:
    """SOURCES.md's tables name the samples (``a, b`` for a pair): each must be
    in the folder and covered here, so a sample cannot go missing unnoticed."""
    import re

    listed: set[str] = set()
    for line in (TESTDATA / "SOURCES.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and line.lstrip().startswith("|") and not set(cells[0]) <= {"-", " "}:
            listed |= {n.strip() for n in cells[0].split(",") if re.search(r"\.\w+$", n.strip())}
    assert len(listed) >= 18, sorted(listed)  # the parse found the tables
    present = {p.name for p in TESTDATA.iterdir() if p.is_file()}
    assert not listed - present, f"listed in SOURCES.md but missing: {sorted(listed - present)}"
    covered = set(CONVERTS) | set(REFUSED) | PART_OF_ANOTHER
    assert not listed - covered, f"not covered by this test: {sorted(listed - covered)}"


def _level0(root: Path) -> np.ndarray:
    pyr = open_pyramid(root)
    m = pyr.meta
    planes = [pyr.read_region(0, 0, 0, m.width, m.height, t=0, z=z) for z in range(m.size_z)]
    return planes[0] if m.size_z == 1 else np.stack(planes)


@pytest.mark.parametrize("name", sorted(CONVERTS))
def test_sample_converts_like_an_independent_reader(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra, reference, min_psnr = CONVERTS[name]
    srcs = [str(TESTDATA / n) for n in [name, *extra]]
    rc = main(["convert", *srcs, "-o", str(tmp_path), "--json"])
    assert rc == 0, capsys.readouterr().err
    (out,) = list(tmp_path.glob("*.ome.zarr"))
    ref = reference(TESTDATA / name)
    got = _level0(out)
    if name.endswith(".ome.tif"):  # (c, z, y, x) source; ours per z: (y, x, c)
        got = got.transpose(3, 0, 1, 2)
    elif got.ndim == 3 and ref.ndim == 2:
        got = got[..., 0]
    assert got.shape == ref.shape, (got.shape, ref.shape)
    if min_psnr is None:
        assert np.allclose(got, ref, rtol=1e-6) if got.dtype.kind == "f" else \
            np.array_equal(got, ref)
    else:
        mse = np.mean((got.astype(np.float64) - ref) ** 2)
        assert mse == 0 or 10 * np.log10(255**2 / mse) >= min_psnr, mse


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_sample_is_refused_with_one_line(name: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["convert", str(TESTDATA / name), "-o", str(tmp_path / "out"), "--json"])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 1 and len(lines) == 1, lines
    assert REFUSED[name] in lines[0], lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
