"""Nucleus detection on synthetic H&E with known nuclei: exact counts, touching
pairs split, tile borders cut through nuclei without duplicates."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import Point

from microtome.analysis import get_app, run_app, validate_params
from microtome.analysis.raster import ArrayRaster, Raster
from microtome.analysis.runner import Region
from microtome.analysis.tiles import tile_grid

from .synth import he_image


def detect(raster: Raster, region: Region | None = None, workers: int = 1,
           **params: object) -> list:
    app = get_app("nucleus_detection")
    return run_app(app, raster, validate_params(app.descriptor, params), region,
                   workers=workers)[0]


def f1_at_iou(features: list, truth: list[tuple[float, float, float]], cut: float = 0.5
              ) -> float:
    """F1 of one-to-one matches with IoU >= cut (discs vs detected polygons)."""
    discs = [Point(cx, cy).buffer(r, 64) for cx, cy, r in truth]
    used: set[int] = set()
    tp = 0
    for f in features:
        for i, d in enumerate(discs):
            if i in used or not d.intersects(f.geometry):
                continue
            inter = d.intersection(f.geometry).area
            if inter / (d.area + f.geometry.area - inter) >= cut:
                used.add(i)
                tp += 1
                break
    return 2 * tp / (len(features) + len(truth))


def centres(features: list) -> np.ndarray:
    return np.array(sorted((round(f.geometry.centroid.x), round(f.geometry.centroid.y))
                           for f in features))


def test_separate_and_touching_nuclei_counted_exactly() -> None:
    shape = (600, 800)
    rng = np.random.default_rng(5)
    truth: list[tuple[float, float, float]] = []
    for cy in range(60, 560, 80):
        for cx in range(60, 760, 100):
            if (cx // 100 + cy // 80) % 3 == 0:
                # A touching pair: centres 1.6 radii apart (overlapping discs).
                truth += [(cx - 6.5, cy, 8.0), (cx + 6.5, cy, 8.0)]
            else:
                truth.append((cx + rng.uniform(-8, 8), cy + rng.uniform(-8, 8),
                              rng.uniform(6, 10)))
    raster = ArrayRaster(he_image(shape, truth, seed=7), mpp=0.5)
    features = detect(raster)
    assert len(features) == len(truth)
    assert f1_at_iou(features, truth) >= 0.9
    for f in features:
        assert f.classification == "Nucleus" and f.object_type == "detection"
        m = f.measurements
        assert m["Area µm^2"] == pytest.approx(f.geometry.area * 0.25)
        assert m["Hematoxylin OD mean"] > m["Eosin OD mean"]
        assert 0.5 < m["Circularity"] <= 1.05


def test_tile_borders_cut_through_nuclei_found_once() -> None:
    shape = (700, 900)
    truth = []
    # Nuclei straddling the 256-pixel tile lines and the corners where four tiles meet.
    for b in (256, 512):
        for t in range(40, 880, 60):
            if abs(t - 256) < 20 or abs(t - 512) < 20:
                continue  # the corners get their own nucleus below
            if t < shape[0] - 20:
                truth.append((b + (t % 7) - 3.0, float(t), 8.0))
            truth.append((float(t), b + (t % 5) - 2.0, 8.0))
    truth += [(256.0, 256.0, 9.0), (512.5, 511.5, 9.0)]
    raster = ArrayRaster(he_image(shape, truth, seed=11), mpp=0.5)
    small = detect(raster, tile_size=256)
    whole = detect(raster, tile_size=1024)
    assert len(whole) == len(truth)
    assert len(small) == len(truth)
    assert np.array_equal(centres(small), centres(whole))
    assert f1_at_iou(small, truth) >= 0.95
    # Tiles on threads: the same nuclei in the same order.
    threaded = detect(raster, tile_size=256, workers=3)
    assert [f.geometry.wkb for f in threaded] == [f.geometry.wkb for f in small]


def test_cancel_stops_between_tiles() -> None:
    from microtome.analysis.runner import Cancelled

    raster = ArrayRaster(he_image((1024, 1024), [(100.0, 100.0, 8.0)], seed=1), mpp=0.5)
    app = get_app("nucleus_detection")
    params = validate_params(app.descriptor, {"tile_size": 256})
    seen: list[float] = []
    for workers in (1, 2):
        seen.clear()
        with pytest.raises(Cancelled):
            run_app(app, raster, params, on_progress=seen.append, workers=workers,
                    should_stop=lambda: len(seen) >= 3)
        assert 3 <= len(seen) < 16


def test_region_and_empty_tissue() -> None:
    truth = [(100.0, 100.0, 8.0), (300.0, 100.0, 8.0), (500.0, 300.0, 8.0)]
    raster = ArrayRaster(he_image((400, 600), truth, seed=2), mpp=0.5)
    got = detect(raster, Region(0, 0, 400, 200))
    assert len(got) == 2
    assert detect(ArrayRaster(he_image((300, 300), [], seed=1), mpp=0.5)) == []


def test_explicit_threshold_and_area_limits() -> None:
    truth = [(100.0, 100.0, 8.0), (200.0, 100.0, 3.0), (300.0, 100.0, 20.0)]
    raster = ArrayRaster(he_image((200, 400), truth, seed=4), mpp=0.5)
    # r=3 px: 7 µm² < min_area 10; r=20 px: 314 µm² kept only under max_area 400.
    assert len(detect(raster, threshold=0.05)) == 2
    assert len(detect(raster, threshold=0.05, max_area=200)) == 1


@pytest.mark.parametrize("region,tile", [(Region(0, 0, 1000, 700), 256),
                                         (Region(13, 7, 300, 1), 256)])
def test_tile_grid_partitions_the_region(region: Region, tile: int) -> None:
    cover = np.zeros((region.y + region.h + 1, region.x + region.w + 1), int)
    for t in tile_grid(region, tile):
        cover[t.y:t.y + t.h, t.x:t.x + t.w] += 1
    assert (cover[region.y:region.y + region.h, region.x:region.x + region.w] == 1).all()
    assert cover.sum() == region.w * region.h


def test_real_sample_nuclei(cmu_zarr: object) -> None:
    from microtome.analysis.raster import PyramidRaster

    raster = PyramidRaster(cmu_zarr)  # type: ignore[arg-type]
    features = detect(raster, Region(600, 1200, 600, 600))
    # A dense dermis field at 0.5 µm/px: many nuclei of plausible sizes.
    assert 80 < len(features) < 600
    areas = np.array([f.measurements["Area µm^2"] for f in features])
    assert 10 <= areas.min() and areas.max() <= 400
    assert 15 < float(np.median(areas)) < 100
