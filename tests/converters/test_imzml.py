"""imzML mass spectrometry images: continuous (real sample) and processed
(written with pyimzML's writer), checked against pyimzML as the independent
reader — channels, kept spectra, the spectrum and ion-image routes, bad input."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient
from pyimzml.ImzMLParser import ImzMLParser

from microtome.converters import ConvertOptions, convert, open_source
from microtome.converters.cli import main as cli_main
from microtome.pyramid import spectra
from microtome.pyramid.errors import SourceError, UnsupportedFormat
from microtome.pyramid.reader import open_pyramid
from microtome.tileserver.app import create_tiles_app

from .conftest import read_level


def _reference(path: Path) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """(x, y) 0-based -> (m/z, intensity), through pyimzML."""
    p = ImzMLParser(str(path))
    return {(x - 1, y - 1): tuple(np.asarray(a) for a in p.getspectrum(i))  # type: ignore[misc]
            for i, (x, y, _z) in enumerate(p.coordinates)}


def _window_sum(mz: np.ndarray, inten: np.ndarray, target: float, tol: float) -> float:
    sel = (mz >= target - tol) & (mz <= target + tol)
    return float(inten[sel].astype(np.float64).sum())


def _processed(dst: Path, w: int = 5, h: int = 4,
               origin: tuple[int, int] = (1, 1)) -> dict[tuple[int, int], tuple[Any, Any]]:
    from pyimzml.ImzMLWriter import ImzMLWriter

    rng = np.random.default_rng(7)
    ref = {}
    with ImzMLWriter(str(dst), mode="processed", mz_dtype=np.float64,
                     intensity_dtype=np.float32) as wr:
        for y in range(h):
            for x in range(w):
                if (x, y) == (4, 3):
                    continue  # a pixel without a spectrum
                n = int(rng.integers(20, 60))
                mz = np.sort(rng.uniform(100, 500, n))
                mz[0] = 250.0 + 0.001 * x  # a shared peak, slightly shifted
                mz.sort()
                inten = rng.uniform(0, 100, n).astype(np.float32)
                wr.addSpectrum(mz, inten, (x + origin[0], y + origin[1], 1))
                ref[(x, y)] = (mz, inten)
    return ref


def test_continuous_sample_channels_match_pyimzml(testdata: Path, tmp_path: Path) -> None:
    src = testdata / "Example_Continuous.imzML"
    ref = _reference(src)
    out = tmp_path / "ex.ome.zarr"
    res = convert(src, out, ConvertOptions(mz=(152.0, 328.9), mz_tol=0.2))
    assert res.format == "imzml" and (res.width, res.height) == (3, 3)
    assert res.channels[0] == "TIC" and len(res.channels) == 3
    got = read_level(out, 0)[0, :, 0]  # (c, y, x)
    for (x, y), (mz, inten) in ref.items():
        assert got[0, y, x] == pytest.approx(float(inten.astype(np.float64).sum()), rel=1e-6)
        assert got[1, y, x] == pytest.approx(_window_sum(mz, inten, 152.0, 0.2), rel=1e-5)
        assert got[2, y, x] == pytest.approx(_window_sum(mz, inten, 328.9, 0.2), rel=1e-5)
        kept = spectra.spectrum(out, x, y)
        assert np.allclose(kept["mz"], mz) and np.allclose(kept["intensity"], inten)
    meta = open_pyramid(out).meta
    assert meta.pixel_size_um == (100.0, 100.0)
    assert meta.source["acquired"] == "2009-08-11T15:59:44"
    assert meta.source["scanner"] == "LTQ FT Ultra"


def test_default_channels_are_the_top_peaks(testdata: Path, tmp_path: Path) -> None:
    src = testdata / "Example_Continuous.imzML"
    with open_source(src) as r:
        r.configure(top_peaks=3)
        assert r.info.size_c == 4
        mean = sum(inten.astype(np.float64) for _mz, inten in _reference(src).values())
        mz_axis = next(iter(_reference(src).values()))[0]
        # the highest point of the mean spectrum is one of the chosen peaks
        top = float(mz_axis[int(np.argmax(mean))])
        assert any(abs(m - top) < 1e-4 for m in r.mzs), (top, r.mzs)


def test_processed_mode(tmp_path: Path) -> None:
    src = tmp_path / "proc.imzML"
    ref = _processed(src)
    out = tmp_path / "proc.ome.zarr"
    convert(src, out, ConvertOptions(mz=(250.0,), mz_tol=0.01))
    got = read_level(out, 0)[0, :, 0]
    assert got.shape == (2, 4, 5)
    assert got[0, 3, 4] == 0 and spectra.spectrum(out, 4, 3)["mz"] == []
    for (x, y), (mz, inten) in ref.items():
        assert got[0, y, x] == pytest.approx(float(inten.astype(np.float64).sum()), rel=1e-6)
        assert got[1, y, x] == pytest.approx(_window_sum(mz, inten, 250.0, 0.01), rel=1e-5)
        kept = spectra.spectrum(out, x, y)
        assert np.allclose(kept["mz"], mz) and np.allclose(kept["intensity"], inten)
    ion = spectra.ion_image(out, 300.0, 5.0)
    for (x, y), (mz, inten) in ref.items():
        assert ion[y, x] == pytest.approx(_window_sum(mz, inten, 300.0, 5.0), rel=1e-5)


def test_positions_from_a_stage_origin_start_the_image(tmp_path: Path) -> None:
    src = tmp_path / "off.imzML"
    ref = _processed(src, origin=(11, 21))
    with open_source(src) as r:
        assert (r.info.width, r.info.height) == (5, 4)
        r.configure(mz=(250.0,), tol=0.01)
        got = r.read_region(0, 0, 5, 4)
        assert r.original_metadata()["params"]["first_pixel_position"] == [11, 21]
    for (x, y), (_mz, inten) in ref.items():
        assert got[y, x, 0] == pytest.approx(float(inten.astype(np.float64).sum()), rel=1e-6)


def test_pair_as_two_files_and_as_zip(testdata: Path, tmp_path: Path) -> None:
    pair = [testdata / "Example_Continuous.imzML", testdata / "Example_Continuous.ibd"]
    out = tmp_path / "pair.ome.zarr"
    convert(pair, out)
    zpath = tmp_path / "msi.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in pair:
            zf.write(p, f"run1/{p.name}")
    out2 = tmp_path / "zip.ome.zarr"
    res = convert(zpath, out2)
    assert res.format == "imzml"
    assert np.array_equal(read_level(out, 0), read_level(out2, 0))
    assert spectra.spectrum(out2, 2, 2) == spectra.spectrum(out, 2, 2)


@pytest.mark.parametrize("ibd_first", [False, True])
def test_pair_stored_without_names_is_told_apart_by_content(
        testdata: Path, tmp_path: Path, ibd_first: bool) -> None:
    """Uploaded halves are kept under random names with no extension."""
    xml, ibd = tmp_path / "Kx3f9", tmp_path / "Qm81z"
    shutil.copy(testdata / "Example_Continuous.imzML", xml)
    shutil.copy(testdata / "Example_Continuous.ibd", ibd)
    out = tmp_path / "noname.ome.zarr"
    res = convert([ibd, xml] if ibd_first else [xml, ibd], out)
    ref = tmp_path / "named.ome.zarr"
    convert([testdata / "Example_Continuous.imzML", testdata / "Example_Continuous.ibd"], ref)
    assert res.format == "imzml"
    assert np.array_equal(read_level(out, 0), read_level(ref, 0))
    # Two files neither of which is the XML are no pair.
    with pytest.raises(UnsupportedFormat):
        open_source([ibd, testdata / "Example_Continuous.ibd"])


def _cli_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    rc = cli_main(["convert", *args, "--json"])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 1 and len(lines) == 1, lines
    return lines[0]


def test_bad_pairs_fail_with_one_line(testdata: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(testdata / "Example_Continuous.imzML", lone / "a.imzML")
    assert "without its .ibd" in _cli_error(capsys, str(lone / "a.imzML"), "-o",
                                            str(tmp_path / "o1"))
    ibd_only = tmp_path / "ibd"
    ibd_only.mkdir()
    shutil.copy(testdata / "Example_Continuous.ibd", ibd_only / "a.ibd")
    assert "only the data half" in _cli_error(capsys, str(ibd_only / "a.ibd"), "-o",
                                              str(tmp_path / "o2"))
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    shutil.copy(testdata / "Example_Continuous.imzML", wrong / "a.imzML")
    data = bytearray((testdata / "Example_Continuous.ibd").read_bytes())
    data[:16] = bytes(16)
    (wrong / "a.ibd").write_bytes(bytes(data))
    assert "UUID differs" in _cli_error(capsys, str(wrong / "a.imzML"), "-o",
                                        str(tmp_path / "o3"))
    cut = tmp_path / "cut"
    cut.mkdir()
    shutil.copy(testdata / "Example_Continuous.imzML", cut / "a.imzML")
    (cut / "a.ibd").write_bytes(bytes((testdata / "Example_Continuous.ibd")
                                      .read_bytes()[:100_000]))
    assert "shorter than the imzML says" in _cli_error(capsys, str(cut / "a.imzML"), "-o",
                                                       str(tmp_path / "o4"))
    for d in ("o1", "o2", "o3", "o4"):
        assert not (tmp_path / d).exists() or not any((tmp_path / d).iterdir())
    with pytest.raises(UnsupportedFormat):
        open_source(ibd_only / "a.ibd")
    with pytest.raises(SourceError):
        open_source(lone / "a.imzML")


async def test_spectrum_and_ion_image_routes(testdata: Path, tmp_path: Path,
                                             aiohttp_client: Any) -> None:
    root = tmp_path / "root"
    root.mkdir()
    convert(testdata / "Example_Continuous.imzML", root / "msi.ome.zarr",
            ConvertOptions(mz=(152.0,), mz_tol=0.2))
    convert(testdata / "sample.jpg", root / "photo.ome.zarr")
    ref = _reference(testdata / "Example_Continuous.imzML")
    client: TestClient = await aiohttp_client(create_tiles_app(root))
    meta = await (await client.get("/images/msi/metadata")).json()
    assert meta["source"]["spectra"] == {"routes": ["spectrum", "ion-image"]}
    r = await client.get("/images/msi/spectrum?x=1&y=2")
    assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    doc = await r.json()
    mz, inten = ref[(1, 2)]
    assert np.allclose(doc["mz"], mz) and np.allclose(doc["intensity"], inten)
    r = await client.get("/images/msi/ion-image?mz=400.5&tol=0.3&format=json")
    assert r.status == 200
    values = np.asarray((await r.json())["values"])
    for (x, y), (m, i) in ref.items():
        assert values[y, x] == pytest.approx(_window_sum(m, i, 400.5, 0.3), rel=1e-5)
    r = await client.get("/images/msi/ion-image?mz=400.5&tol=0.3")
    assert r.status == 200 and r.content_type == "image/png"
    import imagecodecs
    png = imagecodecs.png_decode(await r.read())
    assert png.shape[:2] == (3, 3)
    top = float(r.headers["X-Ion-Max"])
    assert top == pytest.approx(values.max(), rel=1e-5)
    assert int(png.reshape(3, 3, -1)[..., 0].max()) == 255
    for bad in ("x=-1&y=0", "x=3&y=0", "x=a&y=1", "y=1"):
        r = await client.get(f"/images/msi/spectrum?{bad}")
        assert r.status == 400, bad
        body = await r.json()
        assert set(body) == {"error", "detail"}
    for bad in ("mz=abc", "", "mz=nan", "mz=100&tol=-1", "mz=100&format=gif"):
        r = await client.get(f"/images/msi/ion-image?{bad}")
        assert r.status == 400, bad
    r = await client.get("/images/photo/spectrum?x=0&y=0")
    assert r.status == 404 and "spectra" in json.dumps(await r.json())
    r = await client.get("/images/nothere/ion-image?mz=100")
    assert r.status == 404
