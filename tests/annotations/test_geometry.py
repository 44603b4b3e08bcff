"""Pure geometry rules: parsing, validation, repair, clipping, measures."""

from __future__ import annotations

import math

import pytest
import shapely

from microtome.annotations.geometry import (
    MAX_VERTICES,
    ImageFrame,
    geometry_from_shape,
    parse_geojson_geometry,
    prepare,
)
from microtome.pyramid.errors import Unprocessable

FRAME = ImageFrame(image_id=1, width=1000, height=800, pixel_size_um=0.5)
SQUARE = {"type": "Polygon", "coordinates": [[[10, 10], [110, 10], [110, 60], [10, 60], [10, 10]]]}


def test_polygon_measures_in_pixels_and_micrometres() -> None:
    p = prepare(SQUARE, FRAME)
    assert p.kind == "polygon"
    assert p.bbox == (10, 10, 110, 60)
    assert p.area_px == 5000 and p.perimeter_px == 300
    assert p.area_um2 == pytest.approx(5000 * 0.25) and p.perimeter_um == pytest.approx(150)
    assert p.n_vertices == 5
    assert shapely.from_wkb(p.wkb).equals(shapely.box(10, 10, 110, 60))


def test_unknown_pixel_size_gives_no_micrometres() -> None:
    p = prepare(SQUARE, ImageFrame(1, 1000, 800, None))
    assert p.area_um2 is None and p.perimeter_um is None and p.area_px == 5000


def test_polygon_with_hole_and_other_types() -> None:
    poly = {"type": "Polygon", "coordinates": [
        [[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]],
        [[10, 10], [20, 10], [20, 20], [10, 20], [10, 10]]]}
    assert prepare(poly, FRAME).area_px == 10000 - 100
    assert prepare({"type": "Point", "coordinates": [5, 6]}, FRAME).kind == "point"
    line = prepare({"type": "LineString", "coordinates": [[0, 0], [3, 4]]}, FRAME)
    assert line.kind == "line" and line.perimeter_px == 5 and line.area_px == 0
    mp = prepare({"type": "MultiPolygon", "coordinates": [SQUARE["coordinates"]]}, FRAME)
    assert mp.kind == "multipolygon"
    assert prepare({"type": "MultiPoint", "coordinates": [[1, 2], [3, 4]]}, FRAME).n_vertices == 2


def test_rectangle_and_ellipse_keep_their_parameters() -> None:
    r = prepare(None, FRAME, shape={"type": "rectangle", "x": 5, "y": 6, "width": 10,
                                    "height": 20})
    assert r.kind == "rectangle" and r.area_px == 200 and r.shape is not None
    assert r.shape["width"] == 10
    e = prepare(None, FRAME, shape={"type": "ellipse", "cx": 100, "cy": 100, "rx": 50,
                                    "ry": 20, "angle": 30})
    assert e.kind == "ellipse" and e.area_px == pytest.approx(math.pi * 50 * 20, rel=0.01)
    _c, kind, params = geometry_from_shape({"type": "circle", "cx": 50, "cy": 50, "r": 10})
    assert kind == "ellipse" and params["rx"] == params["ry"] == 10


def test_self_intersecting_polygon_is_repaired_or_rejected() -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]]}
    p = prepare(bowtie, FRAME)
    assert p.kind == "multipolygon" and p.area_px == pytest.approx(50)
    assert shapely.is_valid(p.geom)
    with pytest.raises(Unprocessable, match="Self-intersection"):
        prepare(bowtie, FRAME, repair=False)


@pytest.mark.parametrize("geometry, reason", [
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]}, "repaired|area"),
    ({"type": "Polygon", "coordinates": []}, "non-empty"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}, "3 distinct"),
    ({"type": "Point", "coordinates": [float("nan"), 1]}, "finite"),
    ({"type": "Point", "coordinates": [float("inf"), 1]}, "finite"),
    ({"type": "Point", "coordinates": ["a", 1]}, "numbers"),
    ({"type": "Point", "coordinates": [1]}, "2 or 3"),
    ({"type": "LineString", "coordinates": [[1, 1]]}, "2 positions"),
    ({"type": "GeometryCollection", "geometries": []}, "unsupported"),
    ({"type": "Polygon"}, "non-empty"),
    ("POLYGON((0 0, 1 0, 1 1, 0 0))", "GeoJSON geometry object"),
    ({"type": "Point", "coordinates": [2000, 10]}, "outside the image"),
    ({"type": "Point", "coordinates": [-1, 10]}, "outside the image"),
])
def test_bad_geometries_are_rejected_with_a_reason(geometry: object, reason: str) -> None:
    with pytest.raises(Unprocessable, match=reason):
        prepare(geometry, FRAME)


def test_too_many_vertices_rejected() -> None:
    n = MAX_VERTICES + 10
    ring = [[500 + 400 * math.cos(2 * math.pi * i / n), 400 + 300 * math.sin(2 * math.pi * i / n)]
            for i in range(n)]
    with pytest.raises(Unprocessable, match="too many vertices"):
        parse_geojson_geometry({"type": "Polygon", "coordinates": [ring]})


def test_outside_image_can_be_clipped() -> None:
    over = {"type": "Polygon", "coordinates": [[[900, 700], [1100, 700], [1100, 900],
                                                [900, 900], [900, 700]]]}
    p = prepare(over, FRAME, clip=True)
    assert p.bbox == (900, 700, 1000, 800) and p.area_px == 100 * 100
    with pytest.raises(Unprocessable, match="outside the image"):
        prepare({"type": "Point", "coordinates": [2000, 10]}, FRAME, clip=True)


def test_unclosed_ring_is_closed_and_z_dropped() -> None:
    p = prepare({"type": "Polygon", "coordinates": [[[0, 0, 5], [10, 0, 5], [10, 10, 5]]]}, FRAME)
    assert p.area_px == 50 and not shapely.has_z(p.geom)


def test_morton_order_keeps_neighbours_together() -> None:
    import numpy as np

    from microtome.annotations.geometry import morton_order

    xs = np.array([900.0, 10, 910, 20, 500])
    ys = np.array([900.0, 10, 905, 15, 500])
    order = morton_order(xs, ys, 1000, 1000).tolist()
    assert order == [1, 3, 4, 0, 2]


def test_imports_relax_the_collector_without_stopping_it() -> None:
    import gc

    from microtome.annotations.geojson_io import IMPORT_GC_THRESHOLDS, gc_relaxed

    before = gc.get_threshold()
    with gc_relaxed():
        with gc_relaxed():  # a concurrent import shares the setting
            assert gc.isenabled() and gc.get_threshold() == IMPORT_GC_THRESHOLDS
        assert gc.get_threshold() == IMPORT_GC_THRESHOLDS
    assert gc.isenabled() and gc.get_threshold() == before
