"""OpenAPI paths and schemas of image alignments (merged by microtome/app.py)."""

from __future__ import annotations

from typing import Any

from microtome.catalog.openapi_parts import ID, TS, obj, operation, path_param

_NUM = {"type": "number"}
_FIELDS: dict[str, Any] = {
    "tx": {**_NUM, "minimum": -1e9, "maximum": 1e9,
           "description": "level-0 pixels of this image"},
    "ty": {**_NUM, "minimum": -1e9, "maximum": 1e9},
    "rotation": {**_NUM, "minimum": -360, "maximum": 360,
                 "description": "degrees, clockwise on screen"},
    "scale": {**_NUM, "minimum": 0.001, "maximum": 1000},
}

SCHEMAS: dict[str, Any] = {
    "AlignmentUpdate": obj(_FIELDS, required=[]),
    "Alignment": obj({
        "image_id": ID, "other_id": ID, **_FIELDS,
        "saved": {"type": "boolean", "description": "false: nothing saved, the identity"},
        "updated_by": {"type": ["integer", "null"]},
        "updated_at": {"anyOf": [TS, {"type": "null"}]}},
        description="Maps the other image's level-0 pixel p onto this image: "
                    "scale * R(rotation) * p + (tx, ty)."),
}

_T = "images"
_P = [path_param("image_id"), path_param("other_id")]

PATHS: dict[str, Any] = {
    "/api/images/{image_id}/alignments/{other_id}": {
        "get": operation("Alignment of another image onto this one (identity when none is "
                         "saved); read access to both", "Alignment", status="200", body=None,
                         params=_P, tag=_T),
        "put": operation("Save the alignment (contributor on both images); the pair's other "
                         "direction is its inverse", "Alignment", status="200",
                         body="AlignmentUpdate", params=_P, tag=_T),
        "delete": operation("Forget the pair's alignment (contributor on both images)", None,
                            status="204", body=None, params=_P, tag=_T)},
}
