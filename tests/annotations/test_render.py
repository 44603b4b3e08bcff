"""Viewport GeoJSON rendering: the numpy/orjson path writes what GEOS would."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import shapely

from microtome.annotations import render


def _mixed() -> list[shapely.Geometry]:
    rng = np.random.default_rng(1)
    out: list[shapely.Geometry] = []
    for _ in range(60):
        cx, cy = rng.uniform(100, 900, 2)
        k = int(rng.integers(8, 40))
        t = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = rng.uniform(5, 30) * (1 + 0.1 * rng.standard_normal(k))
        out.append(shapely.Polygon(np.c_[cx + r * np.cos(t), cy + r * np.sin(t)]))
    out.append(shapely.Polygon([(0, 0), (50, 0), (50, 50), (0, 50)],
                               [[(10, 10), (20, 10), (20, 20), (10, 20)],
                                [(30, 30), (40, 30), (40, 40), (30, 40)]]))
    out.append(shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(2, 2, 3, 3)]))
    out.append(shapely.Point(3.14159, 2.71828))
    out.append(shapely.LineString([(0, 0), (0.2, 0.1), (10, 10)]))
    out.append(shapely.box(0.1, 0.1, 0.3, 0.3))  # collapses at low zoom: drawn as it is
    return out


def _reference(geoms: list[shapely.Geometry], scale: float, precision: int | None
               ) -> list[dict[str, Any]]:
    """What the viewport answered before: GEOS simplify on each ring, rounding, GEOS writer."""
    out = []
    for g in geoms:
        if g.geom_type == "Polygon" and scale > 1:
            rings = [shapely.simplify(r, scale * 0.5, preserve_topology=False)
                     for r in [g.exterior, *g.interiors]]
            rings = [s if not s.is_empty and len(s.coords) >= 4 else r
                     for s, r in zip(rings, [g.exterior, *g.interiors], strict=True)]
            g = shapely.Polygon(rings[0], rings[1:])
        elif scale > 1:
            s = shapely.simplify(g, scale * 0.5, preserve_topology=False)
            g = g if s.is_empty else s
        if precision is not None:
            g = shapely.transform(g, lambda c: np.round(c, precision))
        out.append(orjson.loads(shapely.to_geojson(g)))
    return out


def test_geometry_values_match_geos() -> None:
    geoms = np.array(_mixed(), dtype=object)
    for scale, precision in ((1.0, None), (1.0, 2), (2.0, 2), (8.0, 1), (50.0, None)):
        got = orjson.loads(orjson.dumps(render.geometry_values(geoms, precision, scale),
                                        option=orjson.OPT_SERIALIZE_NUMPY))
        want = _reference(list(geoms), scale, precision)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g["type"] == w["type"]
            coords = [shapely.get_coordinates(shapely.from_geojson(orjson.dumps(x)))
                      for x in (g, w)]
            assert coords[0].shape == coords[1].shape
            np.testing.assert_array_equal(coords[0], coords[1])


def test_light_collection_document() -> None:
    rows = [{"id": i + 1, "geom": shapely.to_wkb(g), "kind": "polygon", "term_ids": [3],
             "user_id": None} for i, g in enumerate(_mixed())]
    doc = orjson.loads(render.light_collection(rows, scale=2.0, precision=2, next_after=9,
                                               extra={"bbox": [0, 0, 10, 10]}))
    assert doc["type"] == "FeatureCollection" and doc["lod"] == "features"
    assert doc["count"] == len(rows) and doc["next_after"] == 9 and doc["bbox"] == [0, 0, 10, 10]
    assert [f["id"] for f in doc["features"]] == [r["id"] for r in rows]
    assert doc["features"][60]["geometry"]["coordinates"][2][0] == [30.0, 30.0]  # 2nd hole
    # Drawn shapes carry no analysis_id (only an analysis' results do): the
    # viewport answer stays as small as before.
    assert doc["features"][0]["properties"] == {"kind": "polygon", "terms": [3], "user_id": None}
    rows[0]["analysis_id"] = 7
    doc = orjson.loads(render.light_collection(rows[:1], scale=2.0, precision=2, next_after=None,
                                               extra={}))
    assert doc["features"][0]["properties"]["analysis_id"] == 7
    empty = orjson.loads(render.light_collection([], scale=1, precision=None, next_after=None,
                                                 extra={}))
    assert empty["features"] == [] and empty["count"] == 0
