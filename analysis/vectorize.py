"""Binary masks and label images to polygons (with holes) in level-0 pixels."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from shapely.geometry import Polygon
from shapely.validation import make_valid


def _rings(mask: np.ndarray) -> list[np.ndarray]:
    """Closed contours of a padded binary mask, as (x, y) arrays in mask pixels.

    find_contours traces the 0.5 iso-line between pixel centres; +0.5 moves it
    from centre coordinates (pixel i at i) to edge coordinates (pixel i spans
    [i, i+1]), the convention of the tiles and annotations; -1 undoes the pad.
    """
    from skimage.measure import find_contours

    padded = np.pad(mask.astype(np.uint8), 1)
    return [np.column_stack([c[:, 1] - 0.5, c[:, 0] - 0.5])
            for c in find_contours(padded, 0.5) if len(c) >= 4]


def component_polygon(mask: np.ndarray, simplify: float = 0.0) -> Polygon | None:
    """The polygon (outer ring and holes) of ONE connected component, in mask pixels."""
    rings = [Polygon(r) for r in _rings(mask)]
    rings = [r for r in rings if r.is_valid and r.area > 0] or [
        make_valid(r) for r in rings if r.area > 0]  # type: ignore[misc]
    if not rings:
        return None
    outer = max(rings, key=lambda p: p.area)
    holes = [r.exterior.coords for r in rings
             if r is not outer and outer.contains(r.representative_point())]
    poly = Polygon(outer.exterior.coords, holes)
    if simplify > 0:
        poly = poly.simplify(simplify, preserve_topology=True)  # type: ignore[assignment]
    if not poly.is_valid:
        fixed = make_valid(poly)
        if fixed.geom_type != "Polygon":
            parts = getattr(fixed, "geoms", [fixed])
            polys = [g for g in parts if g.geom_type == "Polygon"]
            if not polys:
                return None
            fixed = max(polys, key=lambda p: p.area)
        poly = fixed  # type: ignore[assignment]
    return poly if not poly.is_empty else None


def label_polygons(labels: np.ndarray, simplify: float = 0.0
                   ) -> Iterator[tuple[int, Polygon]]:
    """(label, polygon) for each labelled object, in label-image pixels.

    Works on each object's bounding box only, so a tile with thousands of
    nuclei costs the sum of their sizes, not thousands of full-tile passes.
    """
    from scipy import ndimage as ndi

    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        poly = component_polygon(labels[sl] == i, simplify)
        if poly is None:
            continue
        yield i, _shift(poly, sl[1].start, sl[0].start)


def _shift(poly: Polygon, dx: float, dy: float) -> Polygon:
    from shapely import affinity

    return affinity.translate(poly, dx, dy)  # type: ignore[return-value]


def to_level0(poly: Polygon, downsample: float, x0: float, y0: float) -> Polygon:
    """Level pixels → level-0 pixels: scale by the level's downsample, then offset."""
    from shapely import affinity

    if downsample != 1:
        poly = affinity.scale(poly, downsample, downsample, origin=(0, 0))  # type: ignore[assignment]
    return affinity.translate(poly, x0, y0)  # type: ignore[return-value]


def clip_to(poly: Polygon, region: Any) -> list[Polygon]:
    """The polygon cut to a level-0 rectangle (a coarse level's last pixel can
    reach past the image edge); empty when it lies outside."""
    from shapely import clip_by_rect

    x0, y0, x1, y1 = poly.bounds
    if x0 >= region.x and y0 >= region.y and x1 <= region.x + region.w \
            and y1 <= region.y + region.h:
        return [poly]
    cut = clip_by_rect(poly, region.x, region.y, region.x + region.w, region.y + region.h)
    parts = getattr(cut, "geoms", [cut])
    return [g for g in parts if g.geom_type == "Polygon" and not g.is_empty and g.area > 0]
