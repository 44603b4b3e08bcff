"""Annotation geometries: parse GeoJSON, validate, measure, simplify.  No I/O.

Coordinate space: image pixels at level 0, origin at the top-left corner of
the image, x to the right, y *down* (the convention of every tile URL; not
Cytomine's bottom-left).  A pixel (i, j) covers [i, i+1) x [j, j+1).

Decisions (documented in the API description too):
- Coordinates must be finite numbers; z values are dropped.
- Self-intersecting / otherwise invalid polygons are repaired with
  shapely's `make_valid` (only the polygonal part is kept) unless the caller
  asks for `repair=False`, in which case they are rejected with GEOS' reason.
- Geometries reaching outside the image [0, width] x [0, height] are
  rejected, or clipped to the image when the caller asks for `clip=True`.
- At most MAX_VERTICES vertices per geometry (an outline traced at full
  resolution around a whole slide has ~10^5); more is refused, not stored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import shapely

from microtome.pyramid.errors import Unprocessable

#: x offset per image id in the stored index box (see migration 0100).
SHIFT = float(2**26)
MAX_VERTICES = 200_000
MAX_PARTS = 10_000
#: Vertices of an ellipse made from its parameters.
ELLIPSE_VERTICES = 64

KINDS = ("point", "multipoint", "line", "multiline", "polygon", "multipolygon",
         "rectangle", "ellipse")
_GEOJSON_KIND = {"Point": "point", "MultiPoint": "multipoint", "LineString": "line",
                 "MultiLineString": "multiline", "Polygon": "polygon",
                 "MultiPolygon": "multipolygon"}


@dataclass(frozen=True)
class ImageFrame:
    """What validation needs to know about the image an annotation is on."""

    image_id: int
    width: int
    height: int
    #: Micrometres per pixel at level 0 (isotropic); None when unknown.
    pixel_size_um: float | None = None


@dataclass(frozen=True)
class Prepared:
    """A validated geometry and everything stored beside it."""

    kind: str
    geom: shapely.Geometry
    wkb: bytes
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels
    n_vertices: int
    area_px: float
    perimeter_px: float
    area_um2: float | None
    perimeter_um: float | None
    shape: dict[str, Any] | None = None


# -- parsing -----------------------------------------------------------------

def _coords(raw: Any, what: str) -> np.ndarray:
    """An (n, 2) float64 array from a GeoJSON position list, strictly checked."""
    if not isinstance(raw, list) or not raw:
        raise Unprocessable(f"{what}: coordinates must be a non-empty list of positions")
    try:
        arr: np.ndarray = np.asarray(raw, dtype=np.float64)
    except (ValueError, TypeError):
        raise Unprocessable(f"{what}: positions must be lists of 2 or 3 numbers") from None
    if arr.ndim != 2 or arr.shape[1] not in (2, 3):
        raise Unprocessable(f"{what}: positions must be lists of 2 or 3 numbers")
    if len(arr) > MAX_VERTICES:
        raise Unprocessable(f"too many vertices (more than {MAX_VERTICES} in one geometry)")
    if not np.isfinite(arr).all():
        raise Unprocessable(f"{what}: coordinates must be finite numbers (no NaN or Infinity)")
    return arr[:, :2]


def _position(raw: Any) -> np.ndarray:
    if not isinstance(raw, list):
        raise Unprocessable("Point: coordinates must be a position [x, y]")
    return _coords([raw], "Point")[0]


def _ring(raw: Any) -> np.ndarray:
    arr = _coords(raw, "Polygon ring")
    if len(arr) >= 2 and not np.array_equal(arr[0], arr[-1]):
        arr = np.vstack([arr, arr[:1]])  # GeoJSON wants closed rings; be lenient
    if len(arr) < 4:
        raise Unprocessable("Polygon ring: needs at least 3 distinct positions")
    return arr


def _polygon(raw: Any) -> shapely.Polygon:
    if not isinstance(raw, list) or not raw:
        raise Unprocessable("Polygon: coordinates must be a non-empty list of rings")
    if len(raw) > MAX_PARTS:
        raise Unprocessable(f"Polygon: more than {MAX_PARTS} holes")
    rings = [_ring(r) for r in raw]
    return shapely.Polygon(rings[0], rings[1:])


def _list(raw: Any, what: str) -> list[Any]:
    if not isinstance(raw, list) or not raw:
        raise Unprocessable(f"{what}: coordinates must be a non-empty list")
    if len(raw) > MAX_PARTS:
        raise Unprocessable(f"{what}: more than {MAX_PARTS} parts")
    return raw


def parse_geojson_geometry(obj: Any) -> tuple[shapely.Geometry, str]:
    """A shapely geometry and our kind from a decoded GeoJSON geometry object.

    Raises Unprocessable with a reason meant for the person who sent it.
    """
    if not isinstance(obj, dict):
        raise Unprocessable("geometry must be a GeoJSON geometry object")
    gtype = obj.get("type")
    coords = obj.get("coordinates")
    if gtype not in _GEOJSON_KIND:
        raise Unprocessable(f"unsupported geometry type {str(gtype)[:40]!r}",
                            {"supported": sorted(_GEOJSON_KIND)})
    geom: shapely.Geometry
    if gtype == "Point":
        geom = shapely.Point(_position(coords))
    elif gtype == "MultiPoint":
        geom = shapely.MultiPoint(_coords(coords, "MultiPoint"))
    elif gtype == "LineString":
        line = _coords(coords, "LineString")
        if len(line) < 2:
            raise Unprocessable("LineString: needs at least 2 positions")
        geom = shapely.LineString(line)
    elif gtype == "MultiLineString":
        lines = [_coords(c, "MultiLineString") for c in _list(coords, "MultiLineString")]
        if any(len(c) < 2 for c in lines):
            raise Unprocessable("MultiLineString: every line needs at least 2 positions")
        geom = shapely.MultiLineString(lines)
    elif gtype == "Polygon":
        geom = _polygon(coords)
    else:
        geom = shapely.MultiPolygon([_polygon(p) for p in _list(coords, "MultiPolygon")])
    if shapely.get_num_coordinates(geom) > MAX_VERTICES:
        raise Unprocessable(f"too many vertices (more than {MAX_VERTICES} in one geometry)")
    return geom, _GEOJSON_KIND[gtype]


def _num(shape: dict[str, Any], key: str, positive: bool = False) -> float:
    v = shape.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise Unprocessable(f"shape.{key} must be a finite number")
    if positive and v <= 0:
        raise Unprocessable(f"shape.{key} must be > 0")
    return float(v)


def geometry_from_shape(shape: Any) -> tuple[shapely.Geometry, str, dict[str, Any]]:
    """A polygon for a rectangle or ellipse given by its parameters.

    rectangle: {"type": "rectangle", "x", "y", "width", "height"} (top-left corner);
    ellipse: {"type": "ellipse", "cx", "cy", "rx", "ry", "angle"?} (angle in degrees,
    clockwise on screen because y points down).  A circle is an ellipse with rx == ry.
    """
    if not isinstance(shape, dict):
        raise Unprocessable("shape must be an object")
    kind = shape.get("type")
    if kind == "rectangle":
        x, y = _num(shape, "x"), _num(shape, "y")
        w, h = _num(shape, "width", True), _num(shape, "height", True)
        return (shapely.box(x, y, x + w, y + h, ccw=False), "rectangle",
                {"type": "rectangle", "x": x, "y": y, "width": w, "height": h})
    if kind in ("ellipse", "circle"):
        cx, cy = _num(shape, "cx"), _num(shape, "cy")
        if kind == "circle":
            rx = ry = _num(shape, "r", True)
        else:
            rx, ry = _num(shape, "rx", True), _num(shape, "ry", True)
        angle = _num(shape, "angle") if "angle" in shape else 0.0
        t = np.linspace(0.0, 2 * np.pi, ELLIPSE_VERTICES, endpoint=False)
        a = math.radians(angle)
        px, py = rx * np.cos(t), ry * np.sin(t)
        xs = cx + px * math.cos(a) - py * math.sin(a)
        ys = cy + px * math.sin(a) + py * math.cos(a)
        return (shapely.Polygon(np.c_[xs, ys]), "ellipse",
                {"type": "ellipse", "cx": cx, "cy": cy, "rx": rx, "ry": ry, "angle": angle})
    raise Unprocessable("shape.type must be 'rectangle', 'ellipse' or 'circle'")


# -- validation ----------------------------------------------------------------

def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """Only the polygons of a repaired geometry (make_valid may add lines/points)."""
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    polys = [q for p in parts for q in shapely.get_parts(p)]
    polys = [p for p in polys if not p.is_empty and p.area > 0]
    if not polys:
        return shapely.Polygon()
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def _kind_of(geom: shapely.Geometry, kind: str) -> str:
    if kind in ("rectangle", "ellipse") and geom.geom_type == "Polygon":
        return kind
    return _GEOJSON_KIND[geom.geom_type]


def validate(geom: shapely.Geometry, kind: str, frame: ImageFrame, *,
             repair: bool = True, clip: bool = False) -> tuple[shapely.Geometry, str]:
    """The geometry as it will be stored, or Unprocessable with the reason."""
    if geom.is_empty:
        raise Unprocessable("geometry is empty")
    polygonal = geom.geom_type in ("Polygon", "MultiPolygon")
    if polygonal and not shapely.is_valid(geom):
        reason = shapely.is_valid_reason(geom)
        if not repair:
            raise Unprocessable(f"invalid polygon: {reason}", {"reason": reason})
        geom = _polygonal(shapely.make_valid(geom))
        if geom.is_empty:
            raise Unprocessable(f"invalid polygon cannot be repaired: {reason}",
                                {"reason": reason})
        if kind in ("rectangle", "ellipse"):
            kind = "polygon"
    if polygonal and geom.area <= 0:
        raise Unprocessable("polygon has no area")
    if geom.geom_type in ("LineString", "MultiLineString") and geom.length <= 0:
        raise Unprocessable("line has no length")
    x0, y0, x1, y1 = geom.bounds
    if x0 < 0 or y0 < 0 or x1 > frame.width or y1 > frame.height:
        if not clip:
            raise Unprocessable(
                "coordinates outside the image", {
                    "bounds": [x0, y0, x1, y1], "image": [frame.width, frame.height],
                    "hint": "coordinates are level-0 pixels, origin top-left, y down; "
                            "pass clip=true to clip to the image"})
        geom = geom.intersection(shapely.box(0, 0, frame.width, frame.height))
        if polygonal:
            geom = _polygonal(geom)
        if geom.is_empty:
            raise Unprocessable("geometry lies outside the image")
        if geom.geom_type == "GeometryCollection":
            raise Unprocessable("geometry clipped to the image is of mixed type")
        kind = "polygon" if kind == "rectangle" and polygonal else kind
    return geom, _kind_of(geom, kind)


def measure(geom: shapely.Geometry, kind: str, frame: ImageFrame,
            shape: dict[str, Any] | None = None) -> Prepared:
    """WKB, bbox, vertex count, area and perimeter (px and, if known, µm)."""
    area = float(geom.area)
    perim = float(geom.length)
    ps = frame.pixel_size_um
    x0, y0, x1, y1 = (float(v) for v in geom.bounds)
    return Prepared(
        kind=kind, geom=geom, wkb=shapely.to_wkb(geom), bbox=(x0, y0, x1, y1),
        n_vertices=int(shapely.get_num_coordinates(geom)), area_px=area, perimeter_px=perim,
        area_um2=area * ps * ps if ps else None, perimeter_um=perim * ps if ps else None,
        shape=shape if kind in ("rectangle", "ellipse") else None)


def prepare(geometry: Any, frame: ImageFrame, *, shape: Any = None, repair: bool = True,
            clip: bool = False) -> Prepared:
    """Parse + validate + measure one geometry (GeoJSON dict) or shape (parameters)."""
    if shape is not None:
        geom, kind, params = geometry_from_shape(shape)
    elif geometry is not None:
        geom, kind = parse_geojson_geometry(geometry)
        params = None
    else:
        raise Unprocessable("geometry (GeoJSON) or shape is required")
    geom, kind = validate(geom, kind, frame, repair=repair, clip=clip)
    return measure(geom, kind, frame, params)


# -- index boxes -----------------------------------------------------------------

def index_box(image_id: int, x0: float, y0: float, x1: float, y1: float
              ) -> tuple[tuple[float, float], tuple[float, float]]:
    """The stored/queried `sbox` (as asyncpg's box: (high corner, low corner))."""
    off = image_id * SHIFT
    return ((x1 + off, y1), (x0 + off, y0))


def check_frame(frame: ImageFrame) -> None:
    if frame.width <= 0 or frame.height <= 0:
        raise Unprocessable("the image has no known size yet (still converting?)")
    if frame.width >= SHIFT:
        raise Unprocessable("image too wide for annotations")


# -- level of detail -------------------------------------------------------------

def simplify_for_scale(geoms: np.ndarray, scale: float) -> np.ndarray:
    """Drop detail finer than ~half a screen pixel; `scale` = image px per screen px."""
    if scale <= 1.0:
        return geoms
    # Without topology preservation: 8x cheaper, and for drawing a shape that
    # self-touches at sub-pixel scale is harmless.  Shapes that collapse
    # entirely (smaller than the tolerance) are drawn as they are.
    out = shapely.simplify(geoms, scale * 0.5, preserve_topology=False)
    gone = shapely.is_empty(out)
    if gone.any():
        out = np.where(gone, geoms, out)
    return out


# -- batches (imports): the same rules, vectorised ----------------------------------

def simple_polygons(rings: list[list[Any]]) -> np.ndarray | None:
    """Hole-free polygons from closed GeoJSON rings in one go, or None when any ring
    is unusual (3-D, ragged, non-numeric, non-finite): the caller then takes the
    one-by-one path, which names the problem."""
    try:
        lens = np.fromiter(map(len, rings), dtype=np.int64, count=len(rings))
        nv = int(lens.sum())
        # Every position must be a list of exactly two numbers: check before
        # flattening (fromiter stops at `count` and would not notice a 3-D one,
        # and would take a string "12" for two digits).
        if (set(map(type, chain.from_iterable(rings))) != {list}
                or sum(map(len, chain.from_iterable(rings))) != 2 * nv):
            return None
        flat = np.fromiter(chain.from_iterable(chain.from_iterable(rings)),
                           dtype=np.float64, count=2 * nv)
    except (ValueError, TypeError):
        return None
    if not np.isfinite(flat).all():
        return None
    offsets = np.zeros(len(rings) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    return shapely.from_ragged_array(shapely.GeometryType.POLYGON, flat.reshape(nv, 2),
                                     (offsets, np.arange(len(rings) + 1, dtype=np.int64)))


def validate_many(geoms: np.ndarray, kinds: list[str], frame: ImageFrame, *, repair: bool,
                  clip: bool, on_error: Any = None) -> None:
    """`validate` for an array, in place: the vectorised checks pass the usual case,
    the rest goes through `validate` one by one.  `on_error(i, exc)` re-raises with
    the position."""
    b = shapely.bounds(geoms)
    ok = (shapely.is_valid(geoms) & (b[:, 0] >= 0) & (b[:, 1] >= 0)
          & (b[:, 2] <= frame.width) & (b[:, 3] <= frame.height))
    types = shapely.get_type_id(geoms)
    polygonal = (types == 3) | (types == 6)
    ok &= ~polygonal | (shapely.area(geoms) > 0)
    lines = (types == 1) | (types == 5)
    ok &= ~lines | (shapely.length(geoms) > 0)
    ok &= ~shapely.is_empty(geoms)
    for i in np.flatnonzero(~ok):
        try:
            geoms[i], kinds[i] = validate(geoms[i], kinds[i], frame, repair=repair, clip=clip)
        except Unprocessable as e:
            if on_error is None:
                raise
            on_error(int(i), e)


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """Bits of 16-bit integers moved to the even positions of 32-bit ones."""
    v = v.astype(np.uint32) & 0xFFFF
    v = (v | (v << 8)) & 0x00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F
    v = (v | (v << 2)) & 0x33333333
    return (v | (v << 1)) & 0x55555555


def morton_order(xs: np.ndarray, ys: np.ndarray, width: float, height: float) -> np.ndarray:
    """Indices that sort points along a Z-order curve over the image.

    Rows stored in this order keep neighbours in the same heap pages (a viewport
    then reads tens of pages instead of one page per annotation) and make GiST
    inserts touch the same index pages one after another.
    """
    qx = np.clip(np.asarray(xs) / max(width, 1.0) * 65535.0, 0, 65535).astype(np.uint32)
    qy = np.clip(np.asarray(ys) / max(height, 1.0) * 65535.0, 0, 65535).astype(np.uint32)
    return np.argsort(_spread_bits(qx) | (_spread_bits(qy) << 1), kind="stable")
