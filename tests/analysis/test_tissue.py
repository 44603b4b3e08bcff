"""Tissue detection on synthetic slides with a known tissue mask, and on the CMU-1 sample."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import Polygon, box

from microtome.analysis import get_app, run_app, validate_params
from microtome.analysis.errors import AnalysisError
from microtome.analysis.raster import ArrayRaster, Raster
from microtome.analysis.runner import Region

from .synth import disc_mask, he_image


def rasterize(features: list, shape: tuple[int, int]) -> np.ndarray:
    from skimage.draw import polygon as fill

    out = np.zeros(shape, bool)
    for f in features:
        ext = np.asarray(f.geometry.exterior.coords)
        rr, cc = fill(ext[:, 1] - 0.5, ext[:, 0] - 0.5, shape)
        out[rr, cc] = True
        for hole in f.geometry.interiors:
            h = np.asarray(hole.coords)
            rr, cc = fill(h[:, 1] - 0.5, h[:, 0] - 0.5, shape)
            out[rr, cc] = False
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.fixture(scope="module")
def slide() -> tuple[np.ndarray, np.ndarray]:
    shape = (1600, 2400)
    big = disc_mask(shape, 700, 800, 520) & ~disc_mask(shape, 700, 800, 160)  # ring: a hole
    square = np.zeros(shape, bool)
    square[300:1300, 1500:2200] = True
    speck = disc_mask(shape, 2300, 1500, 12)  # below min_area: dropped
    truth = big | square
    return he_image(shape, [], tissue=truth | speck, seed=3), truth


def run(raster: Raster, region: Region | None = None, **params: object) -> list:
    app = get_app("tissue_detection")
    features, prov = run_app(app, raster, validate_params(app.descriptor, params), region)
    assert prov["count"] == len(features)
    return features


@pytest.mark.parametrize("method", ["saturation", "optical_density"])
def test_pieces_holes_and_iou(slide: tuple[np.ndarray, np.ndarray], method: str) -> None:
    rgb, truth = slide
    raster = ArrayRaster(rgb, mpp=1.0)
    features = run(raster, method=method, min_area=5000, min_hole_area=1000)
    assert len(features) == 2
    holes = sorted(len(f.geometry.interiors) for f in features)
    assert holes == [0, 1]
    assert iou(rasterize(features, truth.shape), truth) >= 0.97
    for f in features:
        assert f.geometry.is_valid and f.classification == "Tissue"
        assert f.measurements["Area µm^2"] == pytest.approx(f.geometry.area)


def test_min_area_keeps_small_pieces_when_lowered(slide: tuple[np.ndarray, np.ndarray]) -> None:
    rgb, _ = slide
    assert len(run(ArrayRaster(rgb, mpp=1.0), min_area=100)) == 3


def test_region_restricts_and_clips(slide: tuple[np.ndarray, np.ndarray]) -> None:
    rgb, _ = slide
    raster = ArrayRaster(rgb, mpp=1.0)
    features = run(raster, Region(1400, 200, 1000, 1200), min_area=5000)
    assert len(features) == 1
    g = features[0].geometry
    assert box(1400, 200, 2400, 1400).buffer(1e-6).contains(g)
    assert g.area == pytest.approx(700 * 1000, rel=0.03)
    with pytest.raises(AnalysisError, match="outside"):
        run(raster, Region(5000, 0, 10, 10))


def test_blank_slide_has_no_tissue() -> None:
    rgb = np.full((512, 512, 3), 240, np.uint8)
    assert run(ArrayRaster(rgb)) == []


def test_real_sample(cmu_zarr: object) -> None:
    from microtome.analysis.raster import PyramidRaster

    raster = PyramidRaster(cmu_zarr)  # type: ignore[arg-type]
    features = run(raster)
    # CMU-1-Small-Region: one strip of skin tissue over about a third of the field.
    assert len(features) >= 1
    total = sum(f.geometry.area for f in features)
    assert 0.2 < total / (raster.width * raster.height) < 0.6
    frame = box(0, 0, raster.width, raster.height)
    assert all(isinstance(f.geometry, Polygon) and frame.covers(f.geometry) for f in features)
    # Glass (top-left corner) is not tissue; the strip's middle is.
    assert not any(f.geometry.intersects(box(0, 0, 300, 300)) for f in features)
    assert any(f.geometry.contains(box(1100, 2000, 1200, 2100)) for f in features)
