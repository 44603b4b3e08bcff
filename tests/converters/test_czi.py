"""Zeiss CZI written by Zeiss's own library (pylibCZIrw's writer): scenes,
mosaic tiles placed by their stage positions, channels, z, brightfield RGB;
pixels compared with the arrays written, metadata with what was declared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pylibCZIrw import czi as pyczi

from microtome.converters import ConvertOptions, convert, detect, open_source
from microtome.converters.cli import main as cli_main
from microtome.pyramid.errors import SourceError
from microtome.pyramid.reader import open_pyramid

from .conftest import read_level

#: Two mosaic tiles per plane, the second overlapping nothing, offset in y.
TILE = (90, 130)
OFFSETS = [(0, 0), (130, 25)]
SCENES = [(0, 0), (2000, 700)]


def _fluorescence(path: Path) -> dict[tuple[int, int, int], np.ndarray]:
    """2 scenes x 2 channels x 3 z, uint16; returns the stitched expected planes."""
    rng = np.random.default_rng(4)
    expected = {}
    display = {c: pyczi.ChannelDisplaySettingsDataClass(
        True, pyczi.TintingMode.Color, pyczi.Rgb8Color(np.uint8(r), np.uint8(g), np.uint8(b)),
        0.0, 1.0) for c, (r, g, b) in enumerate([(0, 0, 255), (0, 255, 0)])}
    with pyczi.create_czi(str(path), exist_ok=True) as w:
        for s, (sx, sy) in enumerate(SCENES):
            for c in range(2):
                for z in range(3):
                    plane = np.zeros((TILE[0] + 25, TILE[1] * 2), np.uint16)
                    for ox, oy in OFFSETS:
                        tile = rng.integers(1, 60000, TILE, dtype=np.uint16)
                        w.write(tile, plane={"C": c, "Z": z, "T": 0}, scene=s,
                                location=(sx + ox, sy + oy))
                        plane[oy:oy + TILE[0], ox:ox + TILE[1]] = tile
                    expected[(s, c, z)] = plane
        w.write_metadata(document_name="cells", channel_names={0: "DAPI", 1: "GFP"},
                         scale_x=0.325e-6, scale_y=0.325e-6, scale_z=1.5e-6,
                         display_settings=display)
    return expected


@pytest.mark.parametrize("scene", [None, 1])
def test_multi_scene_mosaic_channels_z(tmp_path: Path, scene: int | None) -> None:
    src = tmp_path / "cells.czi"
    expected = _fluorescence(src)
    assert detect(src) == "czi"
    out = tmp_path / "cells.ome.zarr"
    res = convert(src, out, ConvertOptions(scene=scene))
    s = scene or 0
    assert (res.width, res.height) == (TILE[1] * 2, TILE[0] + 25)
    assert (res.size_c, res.size_z, res.size_t) == (2, 3, 1)
    assert res.channels == ["DAPI", "GFP"]
    got = read_level(out, 0)  # (t, c, z, y, x)
    for c in range(2):
        for z in range(3):
            assert np.array_equal(got[0, c, z], expected[(s, c, z)]), (c, z)
    meta = open_pyramid(out).meta
    assert meta.pixel_size_um == pytest.approx((0.325, 0.325))
    assert meta.z_spacing_um == pytest.approx(1.5)
    assert [ch.color for ch in meta.channels] == ["0000FF", "00FF00"]
    assert any(f"scene {s} of 2" in n for n in res.notes)


def test_every_scene_to_its_own_image(tmp_path: Path) -> None:
    src = tmp_path / "cells.czi"
    expected = _fluorescence(src)
    out = tmp_path / "out"
    assert cli_main(["convert", str(src), "-o", str(out), "--scene", "all", "--json"]) == 0
    for s in (0, 1):
        got = read_level(out / f"cells-scene{s}.ome.zarr", 0)
        assert np.array_equal(got[0, 1, 2], expected[(s, 1, 2)])


def test_brightfield_rgb(tmp_path: Path) -> None:
    src = tmp_path / "bf.czi"
    rng = np.random.default_rng(5)
    bgr = rng.integers(0, 256, (120, 170, 3), dtype=np.uint8)
    with pyczi.create_czi(str(src), exist_ok=True) as w:
        w.write(bgr, plane={"C": 0, "Z": 0, "T": 0}, location=(0, 0))
    with open_source(src) as r:
        assert r.info.rgb and r.info.dtype == "uint8"
        got = r.read_region(10, 20, 100, 50)
    assert np.array_equal(got, bgr[20:70, 10:110, ::-1])  # CZI stores BGR


def test_info_shows_the_normalised_metadata(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "cells.czi"
    _fluorescence(src)
    assert cli_main(["info", str(src), "--json"]) == 0
    import json
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "czi" and doc["vendor"] == "zeiss"
    assert doc["pixel_size_um"] == pytest.approx([0.325, 0.325])
    assert [c["name"] for c in doc["channels"]] == ["DAPI", "GFP"]
    assert "acquired" in doc and "scanner" in doc


def test_czi_cut_in_half_fails_with_one_line(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "cells.czi"
    _fluorescence(src)
    data = src.read_bytes()
    cut = tmp_path / "cut.czi"
    cut.write_bytes(data[:len(data) // 2])
    rc = cli_main(["convert", str(cut), "-o", str(tmp_path / "out"), "--json"])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 1 and len(lines) == 1 and "CZI" in lines[0], lines
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    with pytest.raises(SourceError, match="no scene 7"):
        convert(src, tmp_path / "x.ome.zarr", ConvertOptions(scene=7))
