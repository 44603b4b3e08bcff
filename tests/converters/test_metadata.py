"""Normalised metadata (acquired, scanner, objective, pixel size, channels with
wavelengths) from each vendor's own fields, kept in the output beside the
vendor's raw metadata, and shown by `microtome info`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from microtome.converters import convert, open_source
from microtome.converters.cli import main as cli_main
from microtome.converters.formats.vendor_meta import iso_date


def test_aperio_date_and_scanner(testdata: Path, tmp_path: Path) -> None:
    with open_source(testdata / "CMU-1-Small-Region.svs") as r:
        assert r.info.acquired == "2009-12-29T09:59:15"
        assert r.info.scanner == "Aperio ScanScope CPAPERIOCS"
        assert r.info.objective_power == 20
    out = tmp_path / "cmu.ome.zarr"
    convert(testdata / "CMU-1-Small-Region.svs", out)
    attrs = json.loads((out / "zarr.json").read_text())["attributes"]["microtome"]["source"]
    assert attrs["acquired"] == "2009-12-29T09:59:15" and attrs["objective_power"] == 20
    original = json.loads((out / "metadata" / "original.json").read_text())
    assert original["metadata"]  # the vendor's raw properties are kept


def test_dicom_equipment(testdata: Path) -> None:
    with open_source([testdata / "boxes_0.dcm", testdata / "boxes_1.dcm"]) as r:
        assert r.info.acquired and r.info.acquired.startswith("2009-12-29")
        assert r.info.scanner and "Aperio" in r.info.scanner


def test_exif_make_model_date(tmp_path: Path) -> None:
    src = tmp_path / "cam.jpg"
    exif = Image.Exif()
    exif[271], exif[272], exif[306] = "Zeiss", "Axiocam 705", "2024:03:05 14:22:01"
    Image.new("RGB", (40, 30), (9, 9, 9)).save(src, exif=exif)
    with open_source(src) as r:
        assert r.info.acquired == "2024-03-05T14:22:01"
        assert r.info.scanner == "Zeiss Axiocam 705"


def test_ome_wavelengths_and_microscope(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    data = np.zeros((2, 32, 48), np.uint16)
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
        '<Instrument ID="Instrument:0"><Microscope Manufacturer="Nikon" Model="Ti2"/>'
        '</Instrument><Image ID="Image:0"><AcquisitionDate>2023-01-02T03:04:05'
        '</AcquisitionDate><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" '
        'SizeX="48" SizeY="32" SizeC="2" SizeZ="1" SizeT="1" PhysicalSizeX="0.1" '
        'PhysicalSizeY="0.1"><Channel ID="Channel:0:0" Name="DAPI" SamplesPerPixel="1" '
        'ExcitationWavelength="405" EmissionWavelength="450"/><Channel ID="Channel:0:1" '
        'Name="GFP" SamplesPerPixel="1" ExcitationWavelength="488" '
        'EmissionWavelength="520"/><TiffData/></Pixels></Image></OME>')
    src = tmp_path / "w.ome.tif"
    tifffile.imwrite(src, data, description=xml, metadata=None)
    with open_source(src) as r:
        assert r.info.acquired == "2023-01-02T03:04:05" and r.info.scanner == "Nikon Ti2"
        assert [(c.excitation_nm, c.emission_nm) for c in r.info.channels] == \
            [(405.0, 450.0), (488.0, 520.0)]
    assert cli_main(["info", str(src)]) == 0
    shown = capsys.readouterr().out
    assert "ex 405 nm" in shown and "Nikon Ti2" in shown and "2023-01-02T03:04:05" in shown


@pytest.mark.parametrize("raw,iso", [("12/29/09 09:59:15", "2009-12-29T09:59:15"),
                                     ("2009:12:29 09:59:15", "2009-12-29T09:59:15"),
                                     ("20091229095915.000", "2009-12-29T09:59:15"),
                                     ("sometime", "sometime"), ("", None)])
def test_iso_date(raw: str, iso: str | None) -> None:
    assert iso_date(raw) == iso
