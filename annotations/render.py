"""Rows → GeoJSON bytes.  CPU work: run these in an executor, not on the event loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import shapely

from .geometry import simplify_for_scale

#: The zoom band whose viewport geometry imports precompute (column `lod2`, migration
#: 0130): answers for scale in [LOD_SCALE, 2 * LOD_SCALE) at LOD_PRECISION decimals
#: use it; the simplification is the band's finest (never coarser than asked).
LOD_SCALE = 2.0
LOD_PRECISION = 2


def lod_band(scale: float, precision: int | None) -> bool:
    """Whether a viewport answer at `scale` and `precision` can use the stored texts."""
    return precision == LOD_PRECISION and LOD_SCALE <= scale < 2 * LOD_SCALE


def lod_texts(geoms: np.ndarray) -> list[bytes]:
    """The `lod2` values of validated geometries: their viewport GeoJSON at LOD_SCALE."""
    values = geometry_values(geoms, LOD_PRECISION, LOD_SCALE)
    if not values:
        return []
    # One orjson call for the batch, cut between the geometries: each is an object
    # beginning with "type" and holding only numbers besides (a call per geometry
    # cost as much as the simplification).
    whole = orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)
    parts = whole[1:-1].split(b',{"type":')
    if len(parts) != len(values):  # not expected; the safe way
        return [orjson.dumps(v, option=orjson.OPT_SERIALIZE_NUMPY) for v in values]
    return [parts[0], *(b'{"type":' + p for p in parts[1:])]


def geometries_json(wkbs: Sequence[bytes], *, scale: float = 1.0,
                    precision: int | None = None) -> list[str]:
    """GeoJSON geometry texts for WKB values.

    `scale` (image px per screen px) > 1 simplifies away sub-pixel detail;
    `precision` rounds coordinates to that many decimals (viewport answers
    need 1/100 px at most; exports keep full precision for exact round trips).
    """
    if not wkbs:
        return []
    geoms = shapely.from_wkb(np.asarray(wkbs, dtype=object))
    geoms = simplify_for_scale(geoms, scale)
    if precision is not None:
        geoms = shapely.transform(geoms, lambda c: np.round(c, precision))
    return list(shapely.to_geojson(geoms))


def simplify_rings(rings: np.ndarray, scale: float) -> np.ndarray:
    """Rings without detail finer than half a screen pixel (`scale` = image px per
    screen px).  Douglas-Peucker on the rings themselves, not on their polygons:
    the same vertices, without GEOS' repair of each simplified polygon (3x the
    cost, and for drawing a ring that self-touches at sub-pixel scale is
    harmless).  Rings that collapse are drawn as they are."""
    out = shapely.simplify(rings, scale * 0.5, preserve_topology=False)
    gone = shapely.is_empty(out) | (shapely.get_num_coordinates(out) < 4)
    if gone.any():
        out = np.where(gone, rings, out)
    return out


def geometry_values(geoms: np.ndarray, precision: int | None, scale: float = 1.0
                    ) -> list[Any]:
    """GeoJSON geometries for orjson (OPT_SERIALIZE_NUMPY), simplified for `scale`
    (image px per screen px; > 1 drops detail finer than half a screen pixel) and
    rounded to `precision` decimals.

    Why not `shapely.to_geojson`: for a viewport of ~1,600 cells GEOS' polygon
    simplifier and writer plus rounding through `shapely.transform` were most of
    the answer's CPU.  Plain polygons (nearly every annotation) go as dicts whose rings are
    views of one coordinate array, which orjson writes without a Python float per
    number; other types take the GEOS path (`simplify_for_scale`, `to_geojson`).
    """
    out: list[Any] = [None] * len(geoms)
    types = shapely.get_type_id(geoms)
    fast = (types == shapely.GeometryType.POLYGON) & ~shapely.is_empty(geoms)
    idx = np.flatnonzero(fast)
    if len(idx):
        polys = geoms[idx]
        rings = shapely.get_rings(polys)  # per polygon: exterior, then its holes
        per_poly = (shapely.get_num_interior_rings(polys) + 1).tolist()
        if scale > 1.0:
            rings = simplify_rings(rings, scale)
        coords = shapely.get_coordinates(rings)
        counts = shapely.get_num_coordinates(rings)
        if precision is not None:
            coords = np.round(coords, precision)
        ends = np.cumsum(counts).tolist()
        starts = [0, *ends[:-1]]
        arrays = [coords[a:b] for a, b in zip(starts, ends, strict=True)]
        k = 0
        for i, m in zip(idx.tolist(), per_poly, strict=True):
            out[i] = {"type": "Polygon", "coordinates": arrays[k:k + m]}
            k += m
    rest = np.flatnonzero(~fast)
    if len(rest):
        others = simplify_for_scale(geoms[rest], scale)
        if precision is not None:
            others = shapely.transform(others, lambda c: np.round(c, precision))
        for i, g in zip(rest.tolist(), shapely.to_geojson(others).tolist(), strict=True):
            out[i] = orjson.Fragment(g)
    return out


def _light_props(r: Any) -> dict[str, Any]:
    props = {"kind": r["kind"], "terms": r["term_ids"], "user_id": r["user_id"]}
    analysis = r.get("analysis_id")
    if analysis is not None:  # only results carry it: drawn shapes stay as small as before
        props["analysis_id"] = analysis
    return props


def light_collection(rows: Sequence[Any], *, scale: float, precision: int | None,
                     next_after: int | None, extra: dict[str, Any]) -> bytes:
    """A FeatureCollection of viewport rows (id, geom, kind, term_ids, user_id and,
    for an analysis' results, analysis_id).  Rows may carry `lod2` (the stored
    text, see `lod_band`): then it is written as it is and `geom` may be NULL."""
    values: list[Any] = [None] * len(rows)
    todo = list(range(len(rows)))
    if rows and lod_band(scale, precision) and "lod2" in rows[0].keys():
        for i, r in enumerate(rows):
            if r["lod2"] is not None:
                values[i] = orjson.Fragment(r["lod2"])
        todo = [i for i in todo if values[i] is None]
    if todo:
        geoms = shapely.from_wkb(np.asarray([rows[i]["geom"] for i in todo], dtype=object))
        for i, v in zip(todo, geometry_values(geoms, precision, scale), strict=True):
            values[i] = v
    feats = [{"type": "Feature", "id": r["id"], "geometry": g,
              "properties": _light_props(r)}
             for r, g in zip(rows, values, strict=True)]
    head = orjson.dumps({"type": "FeatureCollection", "lod": "features",
                         "count": len(rows), "next_after": next_after, **extra})
    return (head[:-1] + b',"features":' + orjson.dumps(feats, option=orjson.OPT_SERIALIZE_NUMPY)
            + b"}")


def cluster_collection(cells: Sequence[Any], *, grid: int, extra: dict[str, Any]) -> bytes:
    """Centroids with counts: what a low zoom gets instead of millions of shapes.

    `cells` are rows (gx, gy, n, x, y, bx0, by0, bx1, by1); positions are rounded
    to 1/100 px with numpy and written by orjson from the arrays (a Python
    `round` per number was half of an overview's CPU).
    """
    counts = [c["n"] for c in cells]
    num = np.array([tuple(c)[3:9] for c in cells], dtype=np.float64).reshape(len(cells), 6)
    num = np.round(num, 2)
    feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": row[:2]},
              "properties": {"cluster": True, "count": n, "bbox": row[2:]}}
             for row, n in zip(num, counts, strict=True)]
    return orjson.dumps({"type": "FeatureCollection", "lod": "clusters", "grid": grid,
                         "count": sum(counts), **extra, "features": feats},
                        option=orjson.OPT_SERIALIZE_NUMPY)
