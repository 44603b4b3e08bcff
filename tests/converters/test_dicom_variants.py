"""DICOM WSI variants: TILED_SPARSE frames, several focal planes (z) and
optical paths (channels), ORIGINAL single multi-frame instances, series given
as a folder, several files or a zip; pixels compared with what was written."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

from microtome.converters import ConvertOptions, convert, open_source

from .conftest import read_level
from .dicom_craft import write_wsi

BASE = "boxes_0.dcm"


def _fluo(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (2, 3, 48, 80), dtype=np.uint8)  # (paths, z, y, x)


def _check_fluo(out: Path, planes: np.ndarray) -> None:
    got = read_level(out, 0)  # (t, c, z, y, x)
    assert got.shape == (1, 2, 3, 48, 80)
    assert np.array_equal(got[0], planes)


def test_sparse_focal_planes_and_optical_paths(testdata: Path, tmp_path: Path) -> None:
    planes = _fluo(np.random.default_rng(1))
    series = tmp_path / "series"
    series.mkdir()
    write_wsi(series / "v.dcm", testdata / BASE, planes, 32, [0.0, 1.5, 3.0], ["DAPI", "GFP"])
    with open_source(series) as r:
        assert (r.info.size_c, r.info.size_z) == (2, 3)
        assert [c.name for c in r.info.channels] == ["DAPI", "GFP"]
        assert r.info.channels[0].excitation_nm == 488.0
        assert r.info.z_spacing_um == pytest.approx(1.5)
    out = tmp_path / "fluo.ome.zarr"
    res = convert(series, out)
    assert res.channels == ["DAPI", "GFP"]
    _check_fluo(out, planes)


@pytest.mark.parametrize("given", ["files", "zip"])
def test_one_instance_per_optical_path(testdata: Path, tmp_path: Path, given: str) -> None:
    planes = _fluo(np.random.default_rng(2))
    uid = generate_uid()
    files = []
    for p, name in enumerate(["DAPI", "GFP"]):
        f = tmp_path / f"{name}.dcm"
        write_wsi(f, testdata / BASE, planes[p:p + 1], 32, [0.0, 1.5, 3.0], [name],
                  series_uid=uid)
        files.append(f)
    out = tmp_path / "two.ome.zarr"
    if given == "files":
        convert(files, out)
    else:
        z = tmp_path / "series.zip"
        with zipfile.ZipFile(z, "w") as zf:
            for f in files:
                zf.write(f, f"slide/{f.name}")
        convert(z, out)
    got = read_level(out, 0)[0]
    assert got.shape == (2, 3, 48, 80)
    with open_source(files) as r:
        order = [c.name for c in r.info.channels]
    for p, name in enumerate(["DAPI", "GFP"]):
        assert np.array_equal(got[order.index(name)], planes[p])


def test_original_rgb_multiframe_with_a_missing_sparse_tile(testdata: Path,
                                                            tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (1, 1, 64, 96, 3), dtype=np.uint8)
    src = tmp_path / "rgb.dcm"
    write_wsi(src, testdata / BASE, rgb, 32, [0.0], ["brightfield"], skip_tiles={(2, 1)})
    out = tmp_path / "rgb.ome.zarr"
    res = convert([src], out, ConvertOptions(codec="zstd"))
    assert (res.width, res.height, res.size_z) == (96, 64, 1)
    got = read_level(out, 0)[0, :, 0].transpose(1, 2, 0)
    want = rgb[0, 0].copy()
    missing = got[32:64, 64:96]
    want[32:64, 64:96] = missing  # a tile the scanner skipped: background, whatever colour
    assert np.array_equal(got, want)
    assert len(np.unique(missing.reshape(-1, 3), axis=0)) == 1  # one flat background colour
