"""Aperio SVS through the whole path: pixels, pyramid, metadata, associated images."""

from __future__ import annotations

import json
from pathlib import Path

import imagecodecs
import numpy as np
import openslide
import pytest
import zarr

from microtome.converters import (
    ConvertOptions,
    ConvertResult,
    Progress,
    convert,
    detect,
    open_source,
)
from microtome.pyramid.reader import open_pyramid

from .conftest import psnr, read_level

#: JPEG chunks at quality 90 over the source's own JPEG tiles: measured
#: 43 dB on CMU-1-Small-Region (4:4:4 chroma); we require 38 dB on every level-0 region.
PSNR_BOUND = 38.0
#: Lower levels hold more detail per pixel, so the same quality loses more:
#: measured 35.5-36 dB on CMU-1 levels 1-4; required 34 dB.
LEVEL_PSNR_BOUND = 34.0


@pytest.fixture(scope="module")
def cmu(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ConvertResult]:
    out = tmp_path_factory.mktemp("svs") / "CMU-1-Small-Region.ome.zarr"
    seen: list[Progress] = []
    res = convert(testdata / "CMU-1-Small-Region.svs", out, progress=seen.append)
    assert seen[-1].fraction == 1.0 and seen[-1].stage == "done"
    assert all(0 <= p.fraction <= 1 for p in seen)
    assert [p.fraction for p in seen] == sorted(p.fraction for p in seen)
    return out, res


def test_detect_svs(testdata: Path) -> None:
    assert detect(testdata / "CMU-1-Small-Region.svs") == "svs"
    with open_source(testdata / "CMU-1-Small-Region.svs") as r:
        assert r.info.pixel_size_um == (0.499, 0.499)
        assert r.info.objective_power == 20
        assert set(r.info.associated) == {"label", "macro", "thumbnail"}


def test_svs_result_and_metadata(cmu: tuple[Path, ConvertResult]) -> None:
    out, res = cmu
    assert res.path == out and res.format == "svs"
    assert (res.width, res.height) == (2220, 2967)
    assert res.pixel_size_um == (0.499, 0.499)
    assert res.levels == 5 and res.codec == "jpeg" and res.kind == "rgb"
    assert res.bytes_written > 100_000 and res.seconds > 0 and res.version
    assert not out.with_name(out.name + ".partial").exists()
    pyr = open_pyramid(out)
    assert pyr.direct
    m = pyr.meta
    assert m.pixel_size_um == (0.499, 0.499)
    assert [lv.width for lv in m.levels] == [2220, 1110, 555, 278, 139]
    assert m.source["format"] == "svs" and m.source["vendor"] == "aperio"
    assert m.source["filename"] == "CMU-1-Small-Region.svs"
    assert m.source["objective_power"] == 20
    assert m.version == res.version
    group = json.loads((out / "zarr.json").read_text())
    scale0 = group["attributes"]["ome"]["multiscales"][0]["datasets"][0]
    assert scale0["coordinateTransformations"][0]["scale"] == [1.0, 0.499, 0.499]


def test_svs_pixels_match_openslide(testdata: Path, cmu: tuple[Path, ConvertResult]) -> None:
    out, _ = cmu
    slide = openslide.OpenSlide(str(testdata / "CMU-1-Small-Region.svs"))
    ref = np.asarray(slide.read_region((0, 0), 0, slide.dimensions))[..., :3]
    level0 = read_level(out, 0).transpose(1, 2, 0)
    assert level0.shape == ref.shape
    assert psnr(level0, ref) >= PSNR_BOUND
    # also tile by tile, so no region is much worse than the average
    for y in range(0, 2967, 512):
        for x in range(0, 2220, 512):
            assert psnr(level0[y:y + 512, x:x + 512], ref[y:y + 512, x:x + 512]) >= 34
    pyr = open_pyramid(out)
    region = pyr.read_region(0, 1000, 1500, 300, 200)
    assert np.array_equal(region, level0[1500:1700, 1000:1300])


def test_svs_levels_are_area_averages(testdata: Path, cmu: tuple[Path, ConvertResult]) -> None:
    """Level n == 2x2 area average of level n-1 computed from the source pixels
    (exact arithmetic checked in test_pyramid_math), then JPEG-coded once."""
    from microtome.converters.build import downsample2

    out, _ = cmu
    slide = openslide.OpenSlide(str(testdata / "CMU-1-Small-Region.svs"))
    ref = np.asarray(slide.read_region((0, 0), 0, slide.dimensions))[..., :3]
    for lv in range(1, 5):
        ref = downsample2(ref)
        cur = read_level(out, lv).transpose(1, 2, 0)
        assert cur.shape == ref.shape
        assert psnr(cur, ref) >= LEVEL_PSNR_BOUND, lv


def test_svs_associated_images(testdata: Path, cmu: tuple[Path, ConvertResult]) -> None:
    out, _ = cmu
    slide = openslide.OpenSlide(str(testdata / "CMU-1-Small-Region.svs"))
    pyr = open_pyramid(out)
    assert set(pyr.meta.associated) == {"label", "macro", "thumbnail"}
    for name in ("label", "macro", "thumbnail"):
        img = imagecodecs.png_decode((out / "associated" / f"{name}.png").read_bytes())
        ref = np.asarray(slide.associated_images[name].convert("RGB"))
        assert np.array_equal(img, ref)  # PNG: lossless
    original = json.loads((out / "metadata" / "original.json").read_text())
    assert float(original["metadata"]["aperio.MPP"]) == 0.499
    assert original["source"]["format"] == "svs"


def test_svs_valid_ngff_and_readable_by_ome_zarr(cmu: tuple[Path, ConvertResult]) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v05.image import Image

    out, _ = cmu
    image = Image.from_zarr(zarr.open_group(str(out), mode="r"))
    ms = image.attributes.ome.multiscales[0]
    assert [a.name for a in ms.axes] == ["c", "y", "x"]
    assert len(ms.datasets) == 5
    node = next(iter(Reader(parse_url(str(out)))()))
    assert node.data[0].shape == (3, 2967, 2220)
    assert node.data[4].shape == (3, 186, 139)


def test_inner_chunks_are_standalone_jpegs(cmu: tuple[Path, ConvertResult]) -> None:
    out, _ = cmu
    pyr = open_pyramid(out)
    for level in range(5):
        raw = pyr.chunk_bytes(level, 0, 0)
        assert raw is not None and raw[:2] == b"\xff\xd8"
        assert imagecodecs.jpeg8_decode(raw).shape == (256, 256, 3)


def test_refuses_existing_output_unless_overwrite(testdata: Path, tmp_path: Path) -> None:
    from microtome.pyramid.errors import Conflict

    dst = tmp_path / "s.ome.zarr"
    first = convert(testdata / "small.svs", dst)
    with pytest.raises(Conflict):
        convert(testdata / "small.svs", dst)
    assert open_pyramid(dst).meta.version == first.version
    second = convert(testdata / "small.svs", dst, ConvertOptions(overwrite=True))
    assert second.version != first.version
    assert open_pyramid(dst).meta.version == second.version
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.ome.zarr"]
