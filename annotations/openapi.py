"""OpenAPI fragments of the annotation API, merged into /api/openapi.json by the catalog.

The building blocks come from `catalog.openapi_parts` (not `catalog.openapi`,
which imports this module).
"""

from __future__ import annotations

from typing import Any

from microtome.catalog.openapi_parts import ERRORS as _ERRORS
from microtome.catalog.openapi_parts import ID as _ID
from microtome.catalog.openapi_parts import TS as _TS
from microtome.catalog.openapi_parts import err as _err
from microtome.catalog.openapi_parts import json_content as _json
from microtome.catalog.openapi_parts import obj as _obj
from microtome.catalog.openapi_parts import operation
from microtome.catalog.openapi_parts import path_param as _p
from microtome.catalog.openapi_parts import query_param as _q
from microtome.catalog.openapi_parts import ref as _ref

COORDS = ("Coordinates are level-0 image pixels: origin at the top-left corner of the "
          "image, x to the right, y down (as in every tile URL; not Cytomine's "
          "bottom-left).")


_NID = {"type": ["integer", "null"], "minimum": 1}
_NUM_N = {"type": ["number", "null"]}
_KINDS = ["point", "multipoint", "line", "multiline", "polygon", "multipolygon", "rectangle",
          "ellipse"]
_BBOX = {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
         "description": "[x0, y0, x1, y1] in level-0 pixels. " + COORDS}


SCHEMAS: dict[str, Any] = {
    "Term": _obj({"id": _ID, "project_id": _ID, "name": {"type": "string"},
                  "color": {"type": "string", "pattern": "^#[0-9a-f]{6}$"},
                  "parent_id": _NID, "created_at": _TS, "updated_at": _TS}),
    "TermCreate": _obj({"name": {"type": "string", "minLength": 1, "maxLength": 200},
                        "color": {"description": "'#rrggbb' or [r, g, b]"},
                        "parent_id": _NID}, required=["name"]),
    "TermUpdate": _obj({"name": {"type": "string", "minLength": 1, "maxLength": 200},
                        "color": {"description": "'#rrggbb' or [r, g, b]"},
                        "parent_id": _NID}, required=[], minProperties=1),
    "GeoJSONGeometry": _obj({
        "type": {"type": "string", "enum": ["Point", "MultiPoint", "LineString",
                                            "MultiLineString", "Polygon", "MultiPolygon"]},
        "coordinates": {"type": "array"}}, closed=False,
        description="A GeoJSON geometry in level-0 image pixels. " + COORDS),
    "Shape": _obj({"type": {"type": "string", "enum": ["rectangle", "ellipse", "circle"]}},
                  closed=False, description=(
                      "Parameters of a rectangle {x, y, width, height} (top-left corner) or an "
                      "ellipse {cx, cy, rx, ry, angle?} / circle {cx, cy, r}; stored as a "
                      "polygon with the parameters kept.")),
    "Annotation": _obj({
        "type": {"const": "Feature"}, "id": _ID, "geometry": _ref("GeoJSONGeometry"),
        "bbox": _BBOX,
        "properties": _obj({
            "image_id": _ID, "project_id": _NID, "user_id": _NID,
            "producer": {"type": ["string", "null"]}, "kind": {"enum": _KINDS},
            "analysis_id": {"type": ["integer", "null"],
                            "description": "the analysis that produced it (a result)"},
            "shape": {"type": ["object", "null"]},
            "terms": {"type": "array", "items": _ID},
            "n_vertices": {"type": "integer"}, "area_px": {"type": "number"},
            "perimeter_px": {"type": "number"}, "area_um2": _NUM_N, "perimeter_um": _NUM_N,
            "data": {"type": "object"}, "created_at": _TS, "updated_at": _TS,
            "review_status": {"enum": ["pending", "accepted", "rejected"]},
            "reviewed_by": _NID, "reviewed_at": {"type": ["string", "null"],
                                                 "format": "date-time"},
            "review_reason": {"type": ["string", "null"]}})},
        description="One annotation as a GeoJSON Feature. " + COORDS),
    "AnnotationCreate": _obj({
        "geometry": _ref("GeoJSONGeometry"), "shape": _ref("Shape"),
        "terms": {"type": "array", "items": _ID}, "data": {"type": "object"},
        "producer": {"type": ["string", "null"], "maxLength": 200},
        "project_id": _ID}, required=[],
        description="geometry or shape is required. " + COORDS),
    "AnnotationUpdate": _obj({
        "geometry": _ref("GeoJSONGeometry"), "shape": _ref("Shape"),
        "terms": {"type": "array", "items": _ID}, "data": {"type": "object"}},
        required=[], minProperties=1),
    "AnnotationBatch": _obj({"annotations": {"type": "array", "minItems": 1,
                                             "maxItems": 10000,
                                             "items": _ref("AnnotationCreate")},
                             "project_id": _ID}, required=["annotations"]),
    "AnnotationIds": _obj({"ids": {"type": "array", "items": _ID}}),
    "Deleted": _obj({"deleted": {"type": "integer", "minimum": 0},
                     "trash_id": {"type": "integer", "minimum": 1,
                                  "description": "the trash item holding them"}},
                    required=["deleted"]),
    "AnnotationSearch": _obj({
        "geometry": _ref("GeoJSONGeometry"),
        "predicate": {"enum": ["intersects", "within", "contains"],
                      "description": "the annotation intersects / lies within / contains "
                                     "the given geometry"},
        "term": {"type": "array", "items": _ID}, "user": {"type": "array", "items": _ID},
        "kind": {"type": "array", "items": {"enum": _KINDS}},
        "producer": {"type": "string"}, "project": _ID, "untermed": {"type": "boolean"},
        "limit": {"type": "integer", "minimum": 1, "maximum": 10000},
        "after": _ID}, required=["geometry"]),
    "AnnotationCounts": _obj({"total": {"type": "integer"}, "untermed": {"type": "integer"},
                              "terms": {"type": "object",
                                        "additionalProperties": {"type": "integer"},
                                        "description": "term id → count"}}),
    "AnnotationStats": _obj({
        "image_id": _ID, "pixel_size_um": _NUM_N,
        "terms": {"type": "array", "items": _obj({
            "term_id": _NID, "count": {"type": "integer"}, "area_px_sum": _NUM_N,
            "area_px_mean": _NUM_N, "area_um2_sum": _NUM_N, "area_um2_mean": _NUM_N,
            "perimeter_um_mean": _NUM_N, "perimeter_px_mean": _NUM_N})}}),
    "ImportResult": _obj({"imported": {"type": "integer"},
                          "terms_created": {"type": "array", "items": {"type": "string"}},
                          "project_id": _NID}),
}


_WRITE = {"409": _err("conflicts with the current state"), "413": _err("too large"),
          "415": _err("the body must be JSON (Content-Type: application/json)"),
          "422": _err("invalid geometry, unknown term, or a bad feature (named by index)")}


def _op(summary: str, ok: str | None, status: str = "200", body: str | None = None,
        params: list[dict[str, Any]] | None = None, ctype: str = "application/json",
        desc: str = "") -> dict[str, Any]:
    writes = bool(body) or status in ("201", "204") or summary.startswith(("Delete", "Import"))
    return operation(summary, ok, status=status, body=body, params=params, tag="annotations",
                     write_errors=_WRITE if writes else None, ctype=ctype, desc=desc)


_IDS = {"type": "string", "pattern": r"^\d+(,\d+)*$"}
#: The filters of the table, layers, counts and exports (beyond the viewport's).
MORE_FILTERS = [
    _q("status", {"type": "string"}, "comma-separated review states: pending, accepted, "
       "rejected"),
    _q("reviewed", {"type": "boolean"}, "only the reviewed layer (accepted annotations)"),
    _q("analysis", _IDS, "made by any of these analysis runs"),
    _q("layers", {"type": "string"}, "shown layers: comma-separated user:ID (drawn by; "
       "user:0 = no author) and analysis:ID"),
    _q("from", {"type": "string", "format": "date-time"}, "created at or after (ISO 8601)"),
    _q("to", {"type": "string", "format": "date-time"}, "created before (ISO 8601)"),
    _q("prop", {"type": "string"}, "a property (dotted path, e.g. measurements.area): "
       "with prop_value equal to a text; otherwise a number, with prop_min / prop_max in "
       "a range"),
    _q("prop_min", {"type": "number"}), _q("prop_max", {"type": "number"}),
    _q("prop_value", {"type": "string", "maxLength": 2000}, "with prop: the property equals "
       "this text (case-insensitive; numbers compare as their text)"),
]
FILTERS = [
    _q("bbox", {"type": "string"}, "x0,y0,x1,y1 in level-0 pixels (default: whole image). "
       + COORDS),
    _q("term", _IDS, "any of these term ids"), _q("user", _IDS, "any of these authors"),
    _q("kind", {"type": "string"}, "comma-separated kinds"), _q("producer", {"type": "string"}),
    _q("project", _ID), _q("untermed", {"type": "boolean"}, "only annotations without a term"),
    *MORE_FILTERS,
]
_WRITE_Q = [_q("repair", {"type": "boolean", "default": True},
               "repair invalid polygons with make_valid (false: reject with the reason)"),
            _q("clip", {"type": "boolean", "default": False},
               "clip geometries to the image (false: reject what reaches outside)")]
_FC = {"type": "object", "description": "GeoJSON FeatureCollection"}
SCHEMAS["FeatureCollection"] = _FC

_VIEWPORT_DESC = (
    "Annotations whose bounding box meets `bbox` (GiST index), as a GeoJSON "
    "FeatureCollection with light properties (kind, terms, user_id). Level of detail: "
    "with lod=auto, when more than max_features match, the answer is instead a grid of "
    "cluster points (`lod: \"clusters\"`, properties.count and .bbox per cell), so a "
    "viewport never carries more than max_features shapes or grid² clusters. `scale` "
    "(image px per screen px) simplifies shapes to the screen resolution; `precision` "
    "rounds coordinates (decimals; -1 = full). Pages: pass `after` = next_after. " + COORDS)

PATHS: dict[str, Any] = {
    "/api/projects/{project_id}/terms": {
        "get": {**_op("List a project's terms (viewers; share links of the project, of "
                      "an image in it or of a project sharing an image with it)", None,
                      params=[_p("project_id")]),
                "responses": {**_ERRORS, "200": {"description": "ok", **_json(
                    {"type": "array", "items": _ref("Term")})}}, "tags": ["annotations"]},
        "post": _op("Create a term (contributors)", "Term", "201", "TermCreate",
                    [_p("project_id")]),
    },
    "/api/images/{image_id}/terms": {
        "get": {**_op("Terms of every project the image is in (readers of the image, "
                      "share links included)", None, params=[_p("image_id")]),
                "responses": {**_ERRORS, "200": {"description": "ok", **_json(
                    {"type": "array", "items": _ref("Term")})}}, "tags": ["annotations"]},
    },
    "/api/projects/{project_id}/terms/{term_id}": {
        "patch": _op("Change a term (managers)", "Term", "200", "TermUpdate",
                     [_p("project_id"), _p("term_id")]),
        "delete": _op("Delete a term (managers); 409 when annotations use it unless force",
                      None, "204", None,
                      [_p("project_id"), _p("term_id"), _q("force", {"type": "boolean"})]),
    },
    "/api/images/{image_id}/annotations": {
        "get": _op("Annotations in a viewport (GeoJSON, with LOD)", "FeatureCollection",
                   params=[_p("image_id"), *FILTERS,
                           _q("lod", {"enum": ["auto", "features", "clusters"]}),
                           _q("max_features", {"type": "integer", "minimum": 1,
                                               "maximum": 10000, "default": 2000}),
                           _q("limit", {"type": "integer", "minimum": 1, "maximum": 10000}),
                           _q("after", _ID, "keyset pagination: the last id of the page"),
                           _q("scale", {"type": "number", "minimum": 0}),
                           _q("precision", {"type": "integer", "minimum": -1, "maximum": 15}),
                           _q("grid", {"type": "integer", "minimum": 1, "maximum": 256})],
                   ctype="application/geo+json", desc=_VIEWPORT_DESC),
        "post": _op("Create an annotation", "Annotation", "201", "AnnotationCreate",
                    [_p("image_id"), *_WRITE_Q], desc=COORDS),
    },
    "/api/images/{image_id}/annotations/batch": {
        "post": _op("Create many annotations (all or nothing)", "AnnotationIds", "201",
                    "AnnotationBatch", [_p("image_id"), *_WRITE_Q]),
    },
    "/api/images/{image_id}/annotations/delete": {
        "post": _op("Delete many annotations (all or nothing) into the trash, as one item",
                    "Deleted", "200",
                    "AnnotationIds", [_p("image_id")]),
    },
    "/api/images/{image_id}/annotations/search": {
        "post": _op("Annotations that intersect / lie within / contain a shape",
                    "FeatureCollection", "200", "AnnotationSearch", [_p("image_id")],
                    ctype="application/geo+json"),
    },
    "/api/images/{image_id}/annotations/counts": {
        "get": _op("Counts per term", "AnnotationCounts", params=[_p("image_id"), *FILTERS]),
    },
    "/api/images/{image_id}/annotations/stats": {
        "get": _op("Per-term statistics (count, area µm², perimeter µm)", "AnnotationStats",
                   params=[_p("image_id"), *FILTERS]),
    },
    "/api/images/{image_id}/annotations/import": {
        "post": {**_op("Import a GeoJSON FeatureCollection (streamed, all or nothing)",
                       "ImportResult", "201", None,
                       [_p("image_id"), _q("project", _ID), *_WRITE_Q,
                        _q("create_terms", {"type": "boolean", "default": True}),
                        _q("producer", {"type": "string"})],
                       desc="QuPath-compatible: properties.classification {name, color} maps "
                            "to terms by name; objectType and other properties are kept. "
                            "Any bad feature rejects the whole file; the error names its "
                            "index (detail.feature_index). " + COORDS),
                 "requestBody": {"required": True, "content": {
                     "application/geo+json": {"schema": _FC},
                     "application/json": {"schema": _FC}}}},
    },
    "/api/images/{image_id}/annotations/export": {
        "get": _op("Export as GeoJSON (streamed, QuPath-compatible)", "FeatureCollection",
                   params=[_p("image_id"), _q("project", _ID)], ctype="application/geo+json",
                   desc="properties: classification {name, color [r,g,b]}, objectType, "
                        "microtome {id, kind, terms, shape, producer, user_id}, free data."),
    },
    "/api/annotations/{annotation_id}": {
        "get": _op("One annotation", "Annotation", params=[_p("annotation_id")]),
        "patch": _op("Change an annotation (author or manager)", "Annotation", "200",
                     "AnnotationUpdate", [_p("annotation_id"), *_WRITE_Q]),
        "delete": _op("Delete an annotation (author or manager)", None, "204",
                      params=[_p("annotation_id")]),
    },
}

for _mode, _what in (("crop", "the image under the annotation's bounding box"),
                     ("mask", "a binary mask of the geometry (alpha=true: the crop with the "
                              "mask as alpha channel)")):
    for _fmt in ("png", "jpg", "webp"):
        PATHS[f"/api/annotations/{{annotation_id}}/{_mode}.{_fmt}"] = {"get": {
            "summary": f"Annotation {_mode} ({_fmt})", "tags": ["annotations"],
            "description": f"{_what}; the longer side is at most `size` px.",
            "parameters": [_p("annotation_id"),
                           _q("size", {"type": "integer", "minimum": 1, "maximum": 4096}),
                           _q("pad", {"type": "number", "minimum": 0}),
                           *([_q("alpha", {"type": "boolean"})] if _mode == "mask" else [])],
            "responses": {**_ERRORS, "200": {"description": "image", "content": {
                f"image/{'jpeg' if _fmt == 'jpg' else _fmt}": {}}}}}}
