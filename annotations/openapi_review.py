"""OpenAPI fragments of review, the annotation table, layers, bulk actions and exports."""

from __future__ import annotations

from typing import Any

from microtome.catalog.openapi_parts import ID as _ID
from microtome.catalog.openapi_parts import TS as _TS
from microtome.catalog.openapi_parts import err as _err
from microtome.catalog.openapi_parts import obj as _obj
from microtome.catalog.openapi_parts import operation
from microtome.catalog.openapi_parts import path_param as _p
from microtome.catalog.openapi_parts import query_param as _q

from .openapi import FILTERS

_NID = {"type": ["integer", "null"], "minimum": 0}
_NUM = {"type": ["number", "null"]}
_NTS = {"type": ["string", "null"], "format": "date-time"}
_STATUS = {"enum": ["pending", "accepted", "rejected"]}
_IDS = {"type": "string", "pattern": r"^\d+(,\d+)*$"}

SCHEMAS: dict[str, Any] = {
    "ReviewAction": _obj({
        "action": {"enum": ["accept", "reject"]},
        "updated_at": {**_TS, "description": "the version reviewed (the annotation's "
                                             "updated_at); 409 with the current one if it "
                                             "changed"},
        "terms": {"type": "array", "items": _ID, "description": "accept only: new terms"},
        "reason": {"type": "string", "maxLength": 2000, "description": "required to reject"}},
        required=["action", "updated_at"]),
    "ReviewHistory": _obj({"items": {"type": "array", "items": _obj({
        "id": _ID, "action": {"enum": ["accept", "reject"]}, "reviewer_id": _NID,
        "reviewer": {"type": ["string", "null"]},
        "terms_before": {"type": "array", "items": _ID},
        "terms_after": {"type": "array", "items": _ID},
        "reason": {"type": ["string", "null"]}, "created_at": _TS})}}),
    "ImageReview": _obj({"image_id": _ID, "pending": {"type": "integer"},
                         "accepted": {"type": "integer"}, "rejected": {"type": "integer"},
                         "reviewed": {"type": "boolean",
                                      "description": "nothing pending"}}),
    "ProjectReview": _obj({"project_id": _ID, "requires_review": {"type": "boolean"},
                           "images": {"type": "array",
                                      "items": {"$ref": "#/components/schemas/ImageReview"}}}),
    "ProjectReviewPut": _obj({"requires_review": {"type": "boolean"}}),
    "BulkAction": _obj({
        "action": {"enum": ["accept", "reject", "set_terms", "delete"]},
        "ids": {"type": "array", "items": _ID, "minItems": 1, "maxItems": 10000},
        "terms": {"type": "array", "items": _ID, "description": "set_terms: the new terms"},
        "reason": {"type": "string", "maxLength": 2000, "description": "reject: why"}},
        required=["action", "ids"]),
    "BulkResult": _obj({"action": {"type": "string"}, "done": {"type": "integer"}}),
    "TableRow": _obj({
        "id": _ID, "image_id": _ID, "project_id": _NID, "user_id": _NID,
        "author": {"type": ["string", "null"]}, "analysis_id": _NID,
        "producer": {"type": ["string", "null"]}, "kind": {"type": "string"},
        "terms": {"type": "array", "items": _ID}, "area_px": {"type": "number"},
        "area_um2": _NUM, "perimeter_px": {"type": "number"}, "perimeter_um": _NUM,
        "centroid": {"type": "array", "items": {"type": "number"}},
        "created_at": _TS, "updated_at": _TS, "review_status": _STATUS,
        "reviewed_by": _NID, "reviewed_at": _NTS, "review_reason": {"type": ["string", "null"]},
        "properties": {"type": "object"}}),
    "TablePage": _obj({
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/TableRow"}},
        "next": {"type": ["string", "null"], "description": "cursor of the next page"},
        "sort": {"type": "string"}, "order": {"enum": ["asc", "desc"]},
        "total": {"type": "integer", "description": "matches, counted up to 10,000"},
        "total_capped": {"type": "boolean"}}, required=["items", "next", "sort", "order"]),
    "Layers": _obj({"items": {"type": "array", "items": _obj({
        "key": {"type": "string", "description": "user:ID or analysis:ID (the `layers` "
                                                 "filter takes these)"},
        "kind": {"enum": ["author", "analysis"]}, "user_id": _NID, "analysis_id": _NID,
        "name": {"type": "string"}, "count": {"type": "integer"}})}}),
    "ProjectStats": _obj({"project_id": _ID, "items": {"type": "array", "items": _obj({
        "image_id": _ID, "image_name": {"type": "string"}, "term_id": _NID,
        "term_name": {"type": ["string", "null"]}, "count": {"type": "integer"},
        "area_um2_sum": _NUM, "area_px_sum": _NUM})}}),
}

_TABLE_FILTERS = [f for f in FILTERS if f["name"] != "bbox"]
_PAGE = [
    _q("sort", {"enum": ["id", "image", "kind", "created", "area", "perimeter", "author",
                         "term", "status"]}),
    _q("order", {"enum": ["asc", "desc"]}),
    _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}),
    _q("after", {"type": "string"}, "the `next` cursor of the previous page"),
    _q("count", {"type": "boolean", "default": True}, "include total (capped at 10,000)"),
]
_EXPORT = [_q("format", {"enum": ["csv", "geojson", "xlsx"], "default": "csv"})]
_409 = {"409": _err("the annotation changed since the version reviewed; detail.current "
                    "is the current annotation")}


def _op(summary: str, ok: str | None, status: str = "200", body: str | None = None,
        params: list[dict[str, Any]] | None = None, extra: dict[str, Any] | None = None,
        desc: str = "") -> dict[str, Any]:
    return operation(summary, ok, status=status, body=body, params=params, tag="annotations",
                     write_errors={"422": _err("unknown term")} if body else None,
                     extra=extra, desc=desc)


def _export_op(summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    op = _op(summary, None, params=params, desc=(
        "The current filter's annotations by id. CSV is streamed; xlsx is an Excel "
        "workbook (at most 1,048,575 rows); geojson is QuPath-compatible."))
    op["responses"]["200"] = {"description": "the file", "content": {
        "text/csv": {}, "application/geo+json": {},
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}}
    op["responses"]["413"] = _err("more rows than an Excel sheet holds")
    return op


_ANNO = "/api/annotations/{annotation_id}"
PATHS: dict[str, Any] = {
    _ANNO + "/review": {"post": _op(
        "Accept (optionally changing the terms) or reject (with a reason) an annotation "
        "(project reviewers and managers)", "Annotation", body="ReviewAction",
        params=[_p("annotation_id")], extra=_409)},
    _ANNO + "/reviews": {"get": _op("Who reviewed the annotation, when, and what changed",
                                    "ReviewHistory", params=[_p("annotation_id")])},
    "/api/images/{image_id}/review": {"get": _op(
        "Review counts of an image; reviewed = nothing pending", "ImageReview",
        params=[_p("image_id"), _q("project", _ID)])},
    "/api/projects/{project_id}/review": {
        "get": _op("Whether the project requires review, and each image's review counts",
                   "ProjectReview", params=[_p("project_id")]),
        "put": _op("Require review or not (managers)", "ProjectReview",
                   body="ProjectReviewPut", params=[_p("project_id")])},
    "/api/annotations-bulk": {"post": _op(
        "One action on many annotations, all or nothing: accept / reject (reviewers), "
        "set_terms / delete (authors and managers)", "BulkResult", body="BulkAction")},
    "/api/images/{image_id}/annotations/table": {"get": _op(
        "The image's annotation table: filtered, sorted, keyset-paginated", "TablePage",
        params=[_p("image_id"), *_TABLE_FILTERS, *_PAGE])},
    "/api/images/{image_id}/annotations/table/export": {"get": _export_op(
        "Export the image table's current filter (CSV, GeoJSON, xlsx)",
        [_p("image_id"), *_TABLE_FILTERS, *_EXPORT])},
    "/api/images/{image_id}/annotations/layers": {"get": _op(
        "The image's layers: one per author and one per analysis run, with counts", "Layers",
        params=[_p("image_id"), _q("project", _ID)])},
    "/api/projects/{project_id}/annotations/table": {"get": _op(
        "The project's annotation table (image = one of its images)", "TablePage",
        params=[_p("project_id"), _q("image", _ID), *_TABLE_FILTERS, *_PAGE])},
    "/api/projects/{project_id}/annotations/table/export": {"get": _export_op(
        "Export the project table's current filter (CSV, GeoJSON, xlsx)",
        [_p("project_id"), _q("image", _ID), *_TABLE_FILTERS, *_EXPORT])},
    "/api/projects/{project_id}/annotations/stats": {"get": _op(
        "Counts and areas per term per image of the project", "ProjectStats",
        params=[_p("project_id"), _q("image", _ID), *_TABLE_FILTERS])},
}
