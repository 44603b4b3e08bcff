"""Rows → GeoJSON bytes.  CPU work: run these in an executor, not on the event loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import shapely

from .geometry import simplify_for_scale


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


def light_collection(rows: Sequence[Any], *, scale: float, precision: int | None,
                     next_after: int | None, extra: dict[str, Any]) -> bytes:
    """A FeatureCollection of viewport rows (id, geom, kind, term_ids, user_id)."""
    geoms = geometries_json([r["geom"] for r in rows], scale=scale, precision=precision)
    feats = [orjson.dumps({"type": "Feature", "id": r["id"], "geometry": orjson.Fragment(g),
                           "properties": {"kind": r["kind"], "terms": list(r["term_ids"]),
                                          "user_id": r["user_id"]}})
             for r, g in zip(rows, geoms, strict=True)]
    head = orjson.dumps({"type": "FeatureCollection", "lod": "features",
                         "count": len(rows), "next_after": next_after, **extra})
    return head[:-1] + b',"features":[' + b",".join(feats) + b"]}"


def cluster_collection(cells: Sequence[Any], *, grid: int, extra: dict[str, Any]) -> bytes:
    """Centroids with counts: what a low zoom gets instead of millions of shapes."""
    feats = [{"type": "Feature",
              "geometry": {"type": "Point", "coordinates": [round(c["x"], 2), round(c["y"], 2)]},
              "properties": {"cluster": True, "count": c["n"],
                             "bbox": [round(c["bx0"], 2), round(c["by0"], 2),
                                      round(c["bx1"], 2), round(c["by1"], 2)]}}
             for c in cells]
    total = sum(c["n"] for c in cells)
    return orjson.dumps({"type": "FeatureCollection", "lod": "clusters", "grid": grid,
                         "count": total, **extra,
                         "features": feats})
