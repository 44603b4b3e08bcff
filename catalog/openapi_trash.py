"""OpenAPI paths and schemas of the trash (merged into the catalog's document)."""

from __future__ import annotations

from typing import Any

from microtome.catalog.openapi_parts import ID, TS, obj, operation, path_param, query_param, ref

_COUNT = {"type": "integer", "minimum": 0}

SCHEMAS: dict[str, Any] = {
    "TrashItem": obj({
        "id": ID, "kind": {"enum": ["project", "image", "annotations"]},
        "name": {"type": "string"},
        "ids": {"type": "array", "items": ID,
                "description": "the ids of the project, image or annotations that went"},
        "project_id": {"type": ["integer", "null"],
                       "description": "the project whose managers may restore it"},
        "image_id": {"type": ["integer", "null"]},
        "summary": {"type": "object", "description": "counts of what went: images, "
                                                     "annotations, authors..."},
        "deleted_at": TS, "purge_after": TS, "deleted_by": {"type": ["integer", "null"]},
        "deleted_by_name": {"type": ["string", "null"]}}),
    "TrashPage": obj({"items": {"type": "array", "items": ref("TrashItem")},
                      "total": _COUNT, "limit": {"type": "integer", "minimum": 1},
                      "offset": _COUNT}),
    "TrashRestored": obj({
        "id": ID, "kind": {"enum": ["project", "image", "annotations"]},
        "ids": {"type": "array", "items": ID},
        "dropped": {"type": "object", "additionalProperties": _COUNT,
                    "description": "rows that could not come back (force), per table"}}),
    "DeletePreview": obj({
        "images": _COUNT, "annotations": _COUNT, "authors": _COUNT,
        "members": _COUNT, "terms": _COUNT, "projects": _COUNT,
        "trash_days": {"type": "integer", "minimum": 0}},
        required=["images", "annotations", "authors", "trash_days"]),
}

_T = "trash"
_C409 = {"409": {"description": "cannot be restored (its project or image is gone, or a "
                                "project of the same name exists now)"}}
_TID = path_param("trash_id")

PATHS: dict[str, Any] = {
    "/api/trash": {"get": operation(
        "Deleted projects, images and annotation sets I may restore (managers of their "
        "project; admins: all), newest first", "TrashPage", status="200", body=None,
        params=[query_param("kind", {"enum": ["project", "image", "annotations"]}),
                query_param("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                query_param("offset", {"type": "integer", "minimum": 0})], tag=_T)},
    "/api/trash/preview": {"get": operation(
        "What deleting this project (manager) or image (contributor) would take with it",
        "DeletePreview", status="200", body=None,
        params=[query_param("project_id", ID), query_param("image_id", ID)], tag=_T)},
    "/api/trash/{trash_id}/restore": {"post": operation(
        "Put it back exactly as it was: rows, ids, annotations, members, links", "TrashRestored",
        status="200", body=None, tag=_T, extra=_C409,
        params=[_TID, query_param("force", {"type": "boolean"},
                                  "restore what can be when a project or image it belonged "
                                  "to was purged")])},
    "/api/trash/{trash_id}": {"delete": operation(
        "Purge it now (no way back)", None, status="204", body=None, params=[_TID], tag=_T)},
}
