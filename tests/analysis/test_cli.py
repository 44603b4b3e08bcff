"""`microtome analyse`: local runs on OME-Zarr and convertible files, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from microtome.cli import main

from .conftest import TESTDATA


def test_tissue_on_ome_zarr_writes_qupath_geojson(cmu_zarr: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tissue.geojson"
    assert main(["analyse", "tissue_detection", str(cmu_zarr), "-o", str(out),
                 "--param", "min_area=20000", "--param", "method=optical_density"]) == 0
    doc = json.loads(out.read_text())
    assert doc["type"] == "FeatureCollection" and doc["features"]
    prov = doc["microtome"]["analysis"]
    assert prov["app"] == "tissue_detection" and prov["params"]["min_area"] == 20000
    assert prov["params"]["method"] == "optical_density"
    f = doc["features"][0]
    assert f["geometry"]["type"] == "Polygon"
    assert f["properties"]["classification"]["name"] == "Tissue"
    assert f["properties"]["measurements"]["Area µm^2"] > 20000
    assert f"{len(doc['features'])} objects" in capsys.readouterr().out


def test_nuclei_on_a_convertible_file_with_region(cmu_svs: Path, tmp_path: Path) -> None:
    out = tmp_path / "nuclei.geojson"
    assert main(["analyse", "nucleus_detection", str(cmu_svs), "-o", str(out), "--quiet",
                 "--region", "700,1300,300,300"]) == 0
    feats = json.loads(out.read_text())["features"]
    assert len(feats) > 20
    for f in feats:
        x, y = (f["properties"]["measurements"][k] for k in ("Centroid X px", "Centroid Y px"))
        assert 700 <= x < 1000 and 1300 <= y < 1600
        assert f["properties"]["objectType"] == "detection"


@pytest.mark.parametrize("argv,message", [
    (["nope", "X"], "unknown app"),
    (["tissue_detection", "X", "--param", "smoothing=99"], "parameter smoothing"),
    (["tissue_detection", "X", "--param", "method=magic"], "parameter method"),
    (["tissue_detection", "X", "--param", "bogus=1"], "parameter bogus: unknown parameter"),
    (["tissue_detection", "X", "--param", "novalue"], "KEY=VALUE"),
    (["tissue_detection", "/no/such/file.svs"], "no such file"),
    (["tissue_detection"], "required"),
])
def test_usage_errors_exit_2(argv: list[str], message: str, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    argv = [str(tmp_path / "in.svs") if a == "X" else a for a in argv]
    (tmp_path / "in.svs").write_bytes(b"x")
    assert main(["analyse", *argv, "-o", str(tmp_path / "o.geojson")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.geojson").exists()


def test_failures_exit_1_and_write_nothing(cmu_zarr: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.geojson"
    assert main(["analyse", "tissue_detection", str(TESTDATA / "notanimage.txt"),
                 "-o", str(out), "--quiet"]) == 1
    assert "notanimage.txt" in capsys.readouterr().err
    assert main(["analyse", "tissue_detection", str(cmu_zarr), "-o", str(out),
                 "--region", "90000,0,10,10"]) == 1
    assert "outside the image" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_list_shows_apps_and_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyse", "--list"]) == 0
    text = capsys.readouterr().out
    assert "tissue_detection 1.0.0" in text and "nucleus_detection 1.0.0" in text
    assert "min_area" in text and "split_distance" in text
