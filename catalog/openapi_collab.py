"""OpenAPI paths and schemas: properties, description and tags, attachments, activity,
live viewers and follow mode (merged by microtome/app.py)."""

from __future__ import annotations

from typing import Any

from microtome.catalog.openapi_parts import (
    ERRORS,
    ID,
    TS,
    err,
    json_content,
    obj,
    operation,
    path_param,
    query_param,
    ref,
)

_TS_NULL = {"type": ["string", "null"], "format": "date-time"}
_NUM_NULL = {"type": ["number", "null"]}
_PROP_VALUE = {"type": ["string", "number", "boolean", "null"], "maxLength": 2000}

SCHEMAS: dict[str, Any] = {
    "Property": obj({"key": {"type": "string"}, "value": {"type": "string"},
                     "source": {"enum": ["user", "scanner", "csv"]}, "updated_at": TS,
                     "updated_by": {"type": ["string", "null"]}}),
    "Properties": obj({"items": {"type": "array", "items": ref("Property")},
                       "properties": {"type": "object",
                                      "additionalProperties": {"type": "string"}}}),
    "PropertyChanges": {
        "type": "object", "minProperties": 1, "maxProperties": 200,
        "description": "key: value (text, number or boolean; null removes the key). Keys: "
                       "1-64 letters, digits, spaces and _ . : - / ( ) # %; no markup.",
        "additionalProperties": _PROP_VALUE},
    "AnnotationProperties": obj({"properties": {"type": "object"}}),
    "PropertyKeys": obj({"items": {"type": "array", "items": obj(
        {"key": {"type": "string"}, "images": {"type": "integer"}})}}),
    "ImageAbout": obj({"description": {"type": "string", "description": "Markdown source"},
                       "description_html": {"type": "string",
                                            "description": "rendered and sanitised"},
                       "tags": {"type": "array", "items": {"type": "string"}}}),
    "ImageAboutUpdate": obj({"description": {"type": "string", "maxLength": 20000},
                             "tags": {"type": "array", "maxItems": 50,
                                      "items": {"type": "string", "maxLength": 40}}},
                            required=[], minProperties=1),
    "ProjectAbout": obj({"description": {"type": "string", "description": "Markdown source"},
                         "description_html": {"type": "string",
                                              "description": "rendered and sanitised"}}),
    "ProjectAboutUpdate": obj({"description": {"type": "string", "maxLength": 20000}}),
    "LayerColors": obj({"project_id": ID, "colors": {
        "type": "object", "description": "layer key (user:ID, analysis:ID) → #rrggbb",
        "additionalProperties": {"type": "string", "pattern": "^#[0-9a-f]{6}$"}}}),
    "LayerColorChanges": {
        "type": "object", "minProperties": 1, "maxProperties": 200,
        "description": "layer key (user:ID or analysis:ID) → '#rrggbb', or null to forget",
        "additionalProperties": {"type": ["string", "null"], "pattern": "^#[0-9a-fA-F]{6}$"}},
    "CsvRow": obj({"row": {"type": "integer"}, "file": {"type": "string"},
                   "image_id": {"type": ["integer", "null"]},
                   "status": {"enum": ["ok", "error"]}, "error": {"type": ["string", "null"]},
                   "properties": {"type": "integer"}}),
    "CsvImport": obj({"applied": {"type": "boolean"},
                      "rows": {"type": "array", "items": ref("CsvRow")},
                      "images": {"type": "integer"}, "properties": {"type": "integer"}}),
    "Attachment": obj({"id": ID, "image_id": ID, "filename": {"type": "string"},
                       "content_type": {"type": "string"}, "size": {"type": "integer"},
                       "sha256": {"type": "string"}, "created_at": TS,
                       "uploaded_by": {"type": ["string", "null"]}, "url": {"type": "string"}}),
    "AttachmentList": obj({"items": {"type": "array", "items": ref("Attachment")}}),
    "ActivityEvent": obj({"at": TS, "user_id": {"type": ["integer", "null"]},
                          "username": {"type": ["string", "null"]},
                          "session_id": {"type": ["integer", "null"]},
                          "kind": {"type": "string"}, "x": _NUM_NULL, "y": _NUM_NULL,
                          "w": _NUM_NULL, "h": _NUM_NULL,
                          "detail": {"type": ["object", "null"]}}),
    "ActivityEvents": obj({"items": {"type": "array", "items": ref("ActivityEvent")},
                           "next": _TS_NULL}),
    "ActivitySessions": obj({"items": {"type": "array", "items": obj({
        "session_id": {"type": "integer"}, "user_id": {"type": ["integer", "null"]},
        "username": {"type": ["string", "null"]}, "opened_at": TS, "closed_at": _TS_NULL,
        "seconds": _NUM_NULL, "views": {"type": "integer"}})}}),
    "Dashboard": obj({
        "days": {"type": "integer"},
        "most_viewed": {"type": "array", "items": obj({
            "image_id": ID, "name": {"type": "string"}, "opens": {"type": "integer"},
            "viewers": {"type": "integer"}, "seconds": {"type": "number"}})},
        "users": {"type": "array", "items": obj({
            "user_id": ID, "username": {"type": ["string", "null"]},
            "opens": {"type": "integer"}, "images": {"type": "integer"},
            "seconds": {"type": "number"}, "annotation_actions": {"type": "integer"},
            "last_seen": TS})},
        "annotations_per_day": {"type": "array", "items": obj(
            {"day": {"type": "string", "format": "date"}, "count": {"type": "integer"}})},
        "opens_per_day": {"type": "array", "items": obj(
            {"day": {"type": "string", "format": "date"}, "count": {"type": "integer"}})}}),
    "LiveUsers": obj({"items": {"type": "array", "items": obj({
        "user_id": ID, "username": {"type": "string"}, "image_id": ID,
        "followers": {"type": "integer"}})}}),
}

_W = {"409": err("conflict"), "413": err("request body too large"),
      "415": err("wrong Content-Type"), "408": err("the body stopped arriving")}


def _op(summary: str, ok: str | None, status: str = "200", body: str | None = None,
        params: list[dict[str, Any]] | None = None, extra: dict[str, Any] | None = None,
        desc: str = "") -> dict[str, Any]:
    writes = bool(body) or status in ("201", "204")
    return operation(summary, ok, status=status, body=body, params=params, tag="collaboration",
                     write_errors=_W if writes else None, extra=extra, desc=desc)


def _ws(summary: str, params: list[dict[str, Any]], desc: str) -> dict[str, Any]:
    return {"summary": summary, "description": desc, "tags": ["collaboration"],
            "parameters": params,
            "responses": {"101": {"description": "switching to the WebSocket protocol"},
                          "429": err("too many live viewers or followers"), **ERRORS}}


def _paths() -> dict[str, Any]:
    iid, pid = path_param("image_id"), path_param("project_id")
    aid, uid = path_param("attachment_id"), path_param("user_id")
    days = query_param("days", {"type": "integer", "minimum": 1, "maximum": 3650,
                                "default": 30})
    return {
        "/api/images/{image_id}/properties": {
            "get": _op("Properties of an image", "Properties", params=[iid]),
            "patch": _op("Set or remove properties of an image (manager)", "Properties",
                         body="PropertyChanges", params=[iid])},
        "/api/images/{image_id}/about": {
            "get": _op("Description (Markdown and sanitised HTML) and tags of an image",
                       "ImageAbout", params=[iid]),
            "patch": _op("Change the description or tags (manager)", "ImageAbout",
                         body="ImageAboutUpdate", params=[iid])},
        "/api/projects/{project_id}/properties": {
            "get": _op("Properties of a project", "Properties", params=[pid]),
            "patch": _op("Set or remove properties of a project (manager)", "Properties",
                         body="PropertyChanges", params=[pid])},
        "/api/projects/{project_id}/about": {
            "get": _op("Description of a project (Markdown and sanitised HTML)",
                       "ProjectAbout", params=[pid]),
            "patch": _op("Change the project's description (manager)", "ProjectAbout",
                         body="ProjectAboutUpdate", params=[pid])},
        "/api/projects/{project_id}/layer-colors": {
            "get": _op("My saved colours of the viewer's layers in this project",
                       "LayerColors", params=[pid]),
            "patch": _op("Save or forget my layer colours (any reader; personal)",
                         "LayerColors", body="LayerColorChanges", params=[pid])},
        "/api/projects/{project_id}/property-keys": {
            "get": _op("Property keys used by the project's images (grid filters)",
                       "PropertyKeys", params=[pid])},
        "/api/projects/{project_id}/properties/import": {
            "post": {**_op(
                "Image properties in bulk from a CSV (manager): first column 'file' (the "
                "image's original file name or name), one column per key; empty cells "
                "change nothing. All rows or none: 422 with a per-row report",
                "CsvImport", "200",
                params=[pid, query_param("dry_run", {"type": "boolean"},
                                         "check only, apply nothing")],
                extra={**_W, "422": err("some rows are wrong; detail.rows is the report")}),
                "requestBody": {"required": True, **json_content({"type": "string"},
                                                                 "text/csv")}}},
        "/api/annotations/{annotation_id}/properties": {
            "get": _op("Properties of an annotation", "AnnotationProperties",
                       params=[path_param("annotation_id")]),
            "patch": _op("Set or remove annotation properties (contributor)",
                         "AnnotationProperties", body="PropertyChanges",
                         params=[path_param("annotation_id")])},
        "/api/images/{image_id}/attachments": {
            "get": _op("Files attached to an image", "AttachmentList", params=[iid]),
            "post": {**_op(
                "Attach a file (contributor): the raw bytes as the body; the type is "
                "sniffed from the content", "Attachment", "201",
                params=[iid, query_param("filename", {"type": "string", "maxLength": 255})],
                extra={"507": err("not enough space on the server")}),
                "requestBody": {"required": True, **json_content(
                    {"type": "string", "format": "binary"}, "application/octet-stream")}}},
        "/api/attachments/{attachment_id}": {
            "get": {"summary": "Download an attached file (Content-Disposition: attachment)",
                    "tags": ["collaboration"], "parameters": [aid],
                    "responses": {"200": {"description": "the file", "content": {
                        "application/octet-stream": {"schema": {"type": "string",
                                                                "format": "binary"}}}},
                                  **ERRORS}},
            "delete": _op("Remove an attached file (its uploader or a manager)", None, "204",
                          params=[aid])},
        "/api/live": {"get": _ws(
            "Live viewer (WebSocket): report the viewport while an image is open",
            [query_param("image_id", ID, "the open image")],
            "Send {x, y, w, h} (level-0 pixels) when the view changes. The server records "
            "the opening, one position per sampling period and the closing, and answers "
            "{type: 'followers', count} when the number of followers changes. Faster than "
            "5 messages/s is dropped; flooding closes the socket (1008).")},
        "/api/live/users": {"get": _op("Users viewing images I can read (whom I may follow)",
                                       "LiveUsers")},
        "/api/users/{user_id}/follow": {"get": _ws(
            "Follow a user's live viewport (WebSocket)", [uid],
            "Messages: {type: 'view', user_id, username, image_id, x, y, w, h}; "
            "{type: 'hidden'} when the image is one the follower may not read; "
            "{type: 'offline'} when the user closes the viewer.")},
        "/api/images/{image_id}/activity": {
            "get": _op("Activity events of an image in time order (manager): a replay",
                       "ActivityEvents", params=[
                           iid, query_param("session_id", ID), query_param("user_id", ID),
                           query_param("after", {"type": "string", "format": "date-time"}),
                           query_param("limit", {"type": "integer", "minimum": 1,
                                                 "maximum": 10000})])},
        "/api/images/{image_id}/activity/sessions": {
            "get": _op("Viewer sessions of an image: who, when, how long (manager)",
                       "ActivitySessions", params=[iid, days])},
        "/api/projects/{project_id}/dashboard": {
            "get": _op("Project dashboard (manager): most viewed images, per-user activity, "
                       "annotations per day", "Dashboard", params=[pid, days])},
    }


PATHS = _paths()
