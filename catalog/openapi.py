"""The OpenAPI 3.1 document of ``/api`` — also the source of request validation.

Request bodies are validated against the same component schemas that are
published (``jsonio.read_json``), so the document cannot drift from what the
server accepts; tests validate responses against it.
"""

from __future__ import annotations

from typing import Any

from microtome.catalog.openapi_accounts import PATHS as ACCOUNT_PATHS
from microtome.catalog.openapi_accounts import SCHEMAS as ACCOUNT_SCHEMAS
from microtome.catalog.openapi_parts import ERRORS as _ERRORS
from microtome.catalog.openapi_parts import ID as _ID
from microtome.catalog.openapi_parts import TS as _TS
from microtome.catalog.openapi_parts import err as _err
from microtome.catalog.openapi_parts import json_content as _json
from microtome.catalog.openapi_parts import obj as _obj
from microtome.catalog.openapi_parts import operation, ref
from microtome.catalog.openapi_parts import path_param as _path_id
from microtome.catalog.openapi_parts import query_param as _q
from microtome.catalog.openapi_trash import PATHS as TRASH_PATHS
from microtome.catalog.openapi_trash import SCHEMAS as TRASH_SCHEMAS


def _str(max_len: int, min_len: int = 1, **kw: Any) -> dict[str, Any]:
    return {"type": "string", "minLength": min_len, "maxLength": max_len, **kw}


_TS_NULL = {"type": ["string", "null"], "format": "date-time"}
_ROLE = {"type": "string", "enum": ["manager", "reviewer", "contributor", "viewer"]}


def _page(item: str) -> dict[str, Any]:
    return _obj({"items": {"type": "array", "items": ref(item)},
                 "total": {"type": "integer", "minimum": 0},
                 "limit": {"type": "integer", "minimum": 1},
                 "offset": {"type": "integer", "minimum": 0}})


SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": {"type": "string"}, "detail": {}}, closed=False),
    "User": _obj({"id": _ID, "username": {"type": "string"}, "is_admin": {"type": "boolean"},
                  "created_at": _TS, "disabled": {"type": "boolean"},
                  "last_login_at": _TS_NULL,
                  "must_change_password": {
                      "type": "boolean",
                      "description": "reset by an administrator: every other request is 403"
                                     " (detail.reason password_change_required) until the"
                                     " user sets a new password"}}),
    "UserUpdate": _obj({"disabled": {"type": "boolean"}, "is_admin": {"type": "boolean"}},
                       required=[], minProperties=1),
    "PasswordChange": _obj({"current_password": _str(1024),
                            "new_password": _str(1024, min_len=8)},
                           required=["current_password", "new_password"]),
    "PasswordReset": _obj({"password": _str(1024, min_len=8)}, required=["password"]),
    "SessionInfo": _obj({"user": ref("User"), "csrf_token": {"type": "string"},
                         "expires_at": _TS}),
    "Credentials": _obj({"username": _str(64), "password": _str(1024)}),
    "SetupStatus": _obj({"needs_setup": {"type": "boolean"}}),
    "TileUrls": _obj({"items": {"type": "array", "items": {"type": "string"}}}),
    "UserCreate": _obj({"username": _str(64, pattern=r"^[A-Za-z0-9_.@-]+$"),
                        "password": _str(1024, min_len=8), "is_admin": {"type": "boolean"},
                        "must_change_password": {"type": "boolean"}},
                       required=["username", "password"]),
    "ApiKey": _obj({"id": _ID, "name": {"type": "string"}, "prefix": {"type": "string"},
                    "created_at": _TS, "last_used_at": _TS_NULL, "revoked_at": _TS_NULL}),
    "ApiKeyCreated": _obj({"id": _ID, "name": {"type": "string"}, "prefix": {"type": "string"},
                           "created_at": _TS, "last_used_at": _TS_NULL,
                           "revoked_at": _TS_NULL,
                           "key": {"type": "string", "description": "shown once"}}),
    "ApiKeyCreate": _obj({"name": _str(100)}),
    "Project": _obj({"id": _ID, "name": {"type": "string"}, "description": {"type": "string"},
                     "public": {"type": "boolean"}, "created_at": _TS, "updated_at": _TS,
                     "role": {"type": ["string", "null"]},
                     "image_count": {"type": "integer", "minimum": 0}}),
    "ProjectCreate": _obj({"name": _str(200), "description": _str(5000, min_len=0),
                           "public": {"type": "boolean"}}, required=["name"]),
    "ProjectUpdate": _obj({"name": _str(200), "description": _str(5000, min_len=0),
                           "public": {"type": "boolean"}}, required=[], minProperties=1),
    "Member": _obj({"user_id": _ID, "username": {"type": "string"}, "role": _ROLE,
                    "added_at": _TS}),
    "MemberPut": _obj({"role": _ROLE}),
    "MemberAdd": _obj({"username": _str(64), "role": _ROLE}),
    "Image": _obj({
        "id": _ID, "name": {"type": "string"}, "source_filename": {"type": "string"},
        "format": {"type": ["string", "null"]},
        "width": {"type": ["integer", "null"]}, "height": {"type": ["integer", "null"]},
        "levels": {"type": ["integer", "null"]},
        "pixel_size_um": {"type": ["number", "null"]},
        "channels": {"type": "array"}, "checksum": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": ["pending", "converting", "ready", "failed"]},
        "version": {"type": "string"}, "created_at": _TS, "updated_at": _TS,
        "error": {"type": ["string", "null"],
                  "description": "why the conversion failed (status 'failed'), else null"},
        "duplicate_of": {"anyOf": [_obj({"id": _ID, "name": {"type": "string"}}),
                                   {"type": "null"}],
                         "description": "an earlier image of the same home project made "
                                        "from the same file (same checksum)"},
        "urls": _obj({"dzi": {"type": "string"}, "iiif": {"type": "string"},
                      "thumbnail": {"type": "string"}, "viewer": {"type": "string"}}),
        "tags": {"type": "array", "items": {"type": "string"}},
        "properties": {"type": "object", "additionalProperties": {"type": "string"}},
    }),
    "ImageUpdate": _obj({"name": _str(255)}),
    "ProjectImageAdd": _obj({"image_id": _ID}),
    "Job": _obj({
        "id": _ID, "kind": {"type": "string"},
        "status": {"type": "string",
                   "enum": ["queued", "running", "done", "failed", "cancelled"]},
        "image_id": {"type": ["integer", "null"]}, "project_id": {"type": ["integer", "null"]},
        "progress": {"type": "number", "minimum": 0, "maximum": 1},
        "error": {"type": ["string", "null"]}, "attempts": {"type": "integer"},
        "created_at": _TS, "started_at": _TS_NULL, "finished_at": _TS_NULL}),
    "ShareLinkCreate": _obj({"image_id": _ID, "project_id": _ID,
                             "expires_in": {"type": "integer", "minimum": 60,
                                            "maximum": 365 * 86400,
                                            "description": "seconds"}},
                            required=["expires_in"],
                            oneOf=[{"required": ["image_id"]}, {"required": ["project_id"]}]),
    "ShareLink": _obj({"id": _ID, "image_id": {"type": ["integer", "null"]},
                       "project_id": {"type": ["integer", "null"]},
                       "created_by": {"type": ["integer", "null"]},
                       "created_by_name": {"type": ["string", "null"]}, "created_at": _TS,
                       "expires_at": _TS, "revoked_at": _TS_NULL,
                       "last_used_at": _TS_NULL,
                       "token": {"type": "string"}, "url": {"type": "string"}},
                      required=["id", "image_id", "project_id", "created_at", "expires_at",
                                "revoked_at"]),
    "ShareInfo": _obj({"image_id": {"type": ["integer", "null"]},
                       "project_id": {"type": ["integer", "null"]},
                       "images": {"type": "array", "items": ref("Image")}}),
    "SignedUrlRequest": _obj({"expires_in": {"type": "integer", "minimum": 10,
                                             "maximum": 7 * 86400}}, required=[]),
    "SignedUrl": _obj({"token": {"type": "string"}, "expires_at": _TS,
                       "image": {"type": "string", "description": "image id to use in tile URLs"},
                       "dzi": {"type": "string"}, "iiif": {"type": "string"}}),
    "Upload": _obj({"id": {"type": "string"}, "filename": {"type": "string"},
                    "length": {"type": "integer"}, "offset": {"type": "integer"},
                    "project_id": {"type": ["integer", "null"]},
                    "image_id": {"type": ["integer", "null"]},
                    "job_id": {"type": ["integer", "null"]},
                    "completed_at": _TS_NULL, "expires_at": _TS,
                    "waiting_for": {"type": "string", "description":
                                    "one half of an imzML pair with all its bytes: the file "
                                    "name of the other half it waits for (then one image)"}},
                   required=["id", "filename", "length", "offset", "project_id", "image_id",
                             "job_id", "completed_at", "expires_at"]),
}
for _name in ("User", "ApiKey", "Project", "Member", "Image", "Job", "ShareLink"):
    SCHEMAS[_name + "Page"] = _page(_name)


#: Extra errors of operations that take a body or change state.
_WRITE_ERRORS = {"408": _err("the request body stopped arriving (body timeout)"),
                 "409": _err("conflicts with the current state"),
                 "413": _err("request body too large"),
                 "415": _err("the body must be JSON (Content-Type: application/json)")}
_NO_SPACE = {"507": _err("not enough space on the server; nothing was lost, retry once "
                         "space is freed (PATCH: detail.offset is the committed offset)")}


def _op(summary: str, ok: str | None, status: str = "200", body: str | None = None,
        params: list[dict[str, Any]] | None = None, extra: dict[str, Any] | None = None,
        tag: str = "catalog") -> dict[str, Any]:
    writes = bool(body) or status in ("201", "204")
    return operation(summary, ok, status=status, body=body, params=params, tag=tag,
                     write_errors=_WRITE_ERRORS if writes else None, extra=extra)


PAGE_PARAMS = [_q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}),
               _q("offset", {"type": "integer", "minimum": 0, "default": 0})]
IMAGE_LIST_PARAMS = [*PAGE_PARAMS,
                     _q("sort", {"type": "string", "anyOf": [
                         {"enum": ["id", "-id", "name", "-name", "created_at",
                                   "-created_at", "updated_at", "-updated_at"]},
                         {"pattern": "^-?prop:.{1,64}$"}]},
                        "a column, or prop:KEY / -prop:KEY for a property"),
                     {**_q("prop", {"type": "array", "maxItems": 5,
                                    "items": {"type": "string", "pattern": "^[^=]+=.*$"}},
                           "property filter key=value (case-insensitive), repeatable"),
                      "style": "form", "explode": True},
                     {**_q("tag", {"type": "array", "maxItems": 5,
                                   "items": {"type": "string"}}, "tag filter, repeatable"),
                      "style": "form", "explode": True},
                     _q("q", {"type": "string", "maxLength": 200}, "name contains"),
                     _q("status", SCHEMAS["Image"]["properties"]["status"]),
                     _q("checksum", {"type": "string", "pattern": "^(sha256:)?[0-9a-fA-F]{64}$"},
                        "only images made from a file with this SHA-256 (the upload "
                        "dialog asks before sending an identical file twice)")]
_C409 = {"409": _err("conflict")}
_TOO_MANY = {**_err("too many failed attempts; detail.retry_after seconds to wait"),
             "headers": {"Retry-After": {"description": "seconds to wait before retrying",
                                         "schema": {"type": "integer", "minimum": 1}}}}


def _paths() -> dict[str, Any]:
    pid, iid, uid = _path_id("project_id"), _path_id("image_id"), _path_id("user_id")
    return {
        "/api/tile-urls": {
            "get": _op("Tile base URLs for HTTP/1.1 domain sharding (MICROTOME_TILE_URLS;"
                       " empty: tiles from this origin)", "TileUrls")},
        "/api/setup": {
            "get": _op("Whether the first administrator still has to be created",
                       "SetupStatus"),
            "post": _op("Create the first administrator (only while no user exists)",
                        "SessionInfo", "201", "Credentials", extra=_C409)},
        "/api/session": {
            "get": _op("The logged-in user and the CSRF token", "SessionInfo"),
            "post": _op("Log in; sets the HttpOnly session cookie. Failed logins are "
                        "throttled per user name and per client address", "SessionInfo",
                        body="Credentials", extra={"429": _TOO_MANY}),
            "delete": _op("Log out", None, "204")},
        "/api/users": {
            "get": _op("List users (admin)", "UserPage", params=PAGE_PARAMS),
            "post": _op("Create a user (admin)", "User", "201", "UserCreate", extra=_C409)},
        "/api/users/{user_id}": {
            "get": _op("One user (admin or self)", "User", params=[uid]),
            "delete": _op("Delete a user (admin)", None, "204", params=[uid]),
            "patch": _op("Disable or re-enable a user, or change their role (is_admin);"
                         " admin only. Disabling ends their sessions and API keys at once",
                         "User", body="UserUpdate", params=[uid])},
        "/api/users/{user_id}/password": {
            "post": _op("Set a temporary password (admin); ends all their sessions and API"
                        " keys, and the user must set their own at the next sign-in",
                        None, "204", "PasswordReset", params=[uid])},
        "/api/account/password": {
            "post": _op("Change my password; my other sessions end", None, "204",
                        "PasswordChange")},
        "/api/api-keys": {
            "get": _op("My API keys", "ApiKeyPage", params=PAGE_PARAMS),
            "post": _op("Create an API key; the key is shown once", "ApiKeyCreated", "201",
                        "ApiKeyCreate")},
        "/api/api-keys/{key_id}": {
            "delete": _op("Revoke an API key", None, "204", params=[_path_id("key_id")])},
        "/api/projects": {
            "get": _op("Projects I can see", "ProjectPage", params=PAGE_PARAMS),
            "post": _op("Create a project (I become its manager)", "Project", "201",
                        "ProjectCreate", extra=_C409)},
        "/api/projects/{project_id}": {
            "get": _op("One project", "Project", params=[pid]),
            "patch": _op("Change a project (manager)", "Project", body="ProjectUpdate",
                         params=[pid], extra=_C409),
            "delete": _op("Move a project to the trash (manager): its members, terms, "
                          "annotations and image links go with it; images stay", None, "204",
                          params=[pid])},
        "/api/projects/{project_id}/members": {
            "get": _op("Members and roles (members and admins only)", "MemberPage",
                       params=[pid, *PAGE_PARAMS]),
            "post": _op("Add a member by exact user name, case-insensitive (manager); an "
                        "existing member gets the new role (200). Unknown name: 404; too "
                        "many unknown names: 429",
                        "Member", "201", "MemberAdd", params=[pid],
                        extra={"200": {"description": "already a member: role changed",
                                       **_json(ref("Member"))}, "429": _TOO_MANY})},
        "/api/projects/{project_id}/members/{user_id}": {
            "put": _op("Add a member or change a role (manager)", "Member", body="MemberPut",
                       params=[pid, uid]),
            "delete": _op("Remove a member (manager)", None, "204", params=[pid, uid])},
        "/api/projects/{project_id}/images": {
            "get": _op("Images of a project", "ImagePage", params=[pid, *IMAGE_LIST_PARAMS]),
            "post": _op("Add an image to the project (contributor)", "Image", "201",
                        "ProjectImageAdd", params=[pid])},
        "/api/projects/{project_id}/images/{image_id}": {
            "delete": _op("Remove an image from the project (contributor)", None, "204",
                          params=[pid, iid])},
        "/api/images": {
            "get": _op("Images I can see", "ImagePage", params=IMAGE_LIST_PARAMS)},
        "/api/images/{image_id}": {
            "get": _op("One image", "Image", params=[iid]),
            "patch": _op("Rename (contributor)", "Image", body="ImageUpdate", params=[iid]),
            "delete": _op("Move the image to the trash with its annotations (manager or "
                          "uploader); files stay until the purge", None, "204",
                          params=[iid], extra=_C409)},
        "/api/images/{image_id}/signed-url": {
            "post": _op("A short-lived signed token for tile/IIIF/DZI URLs of a private image",
                        "SignedUrl", body="SignedUrlRequest", params=[iid])},
        "/api/images/{image_id}/retry": {
            "post": _op("Convert a failed image again from its kept original (contributor); "
                        "409 when the image is not failed or the original is gone", "Job",
                        "202", params=[iid], extra=_C409)},
        "/api/images/{image_id}/original": {
            "get": {"summary": "Download the source file, when it was kept (imports keep "
                               "theirs in place; uploads are kept until the image is "
                               "ready)",
                    "tags": ["catalog"], "parameters": [iid],
                    "responses": {"200": {"description": "the file", "content": {
                        "application/octet-stream": {"schema": {"type": "string",
                                                                "format": "binary"}}}},
                                  **_ERRORS}}},
        "/api/images/{image_id}/export": {
            "get": {"summary": "Download the portable OME-Zarr of a ready image (NGFF 0.5, "
                               "specification codecs only, readable by stock zarr/ome-zarr/"
                               "zarrita) as a zip whose root is the store root; streamed. "
                               "400 for an unknown format or codec, 409 while not ready, "
                               "503 while too many exports run",
                    "tags": ["catalog"], "parameters": [
                        iid, _q("format", {"type": "string", "enum": ["ome-zarr"],
                                           "default": "ome-zarr"}),
                        _q("codec", {"type": "string", "enum": ["zstd", "blosc", "gzip"],
                                     "default": "zstd"})],
                    "responses": {"200": {"description": "the zip", "content": {
                        "application/zip": {"schema": {"type": "string",
                                                       "format": "binary"}}}},
                                  **_ERRORS}}},
        "/api/images/{image_id}/jobs": {
            "get": _op("Conversion jobs of an image", "JobPage", params=[iid, *PAGE_PARAMS])},
        "/api/jobs": {"get": _op("My jobs (admin: all)", "JobPage", params=PAGE_PARAMS)},
        "/api/jobs/{job_id}": {"get": _op("One job", "Job", params=[_path_id("job_id")])},
        "/api/share-links": {
            "get": _op("Share links I may manage: mine, and every link of the projects I"
                       " manage and of the images whose home project I manage (admins: all)",
                       "ShareLinkPage", params=[
                           *PAGE_PARAMS, _q("project_id", {"type": "integer", "minimum": 1}),
                           _q("image_id", {"type": "integer", "minimum": 1}),
                           _q("active", {"type": "boolean"}, "only unrevoked, unexpired")]),
            "post": _op("Create a read-only share link for an image or a project", "ShareLink",
                        "201", "ShareLinkCreate")},
        "/api/share-links/{share_id}": {
            "delete": _op("Revoke a share link", None, "204", params=[_path_id("share_id")])},
        "/api/share": {
            "get": _op("What the share token (X-Share-Token or ?share=) grants", "ShareInfo")},
        "/api/uploads": {
            "options": {"summary": "tus capabilities", "tags": ["uploads"],
                        "responses": {"204": {"description": "Tus-Version, Tus-Extension, "
                                                             "Tus-Max-Size headers"}}},
            "post": {"summary": "tus creation: Upload-Length, Upload-Metadata (filename, "
                                "project_id, name)",
                     "tags": ["uploads"],
                     "responses": {"201": {"description": "Location of the upload"},
                                   "413": _err("exceeds the size limit"), **_NO_SPACE,
                                   **_ERRORS}}},
        "/api/uploads/{upload_id}": {
            "get": {"summary": "Upload state (JSON)", "tags": ["uploads"],
                    "parameters": [{"name": "upload_id", "in": "path", "required": True,
                                    "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "ok", **_json(ref("Upload"))},
                                  **_ERRORS}},
            "head": {"summary": "tus: current Upload-Offset", "tags": ["uploads"],
                     # HEAD answers carry no body, so its errors document no content.
                     "responses": {"200": {"description": "Upload-Offset header"},
                                   **{k: {"description": v["description"]}
                                      for k, v in _ERRORS.items()}}},
            "patch": {"summary": "tus: append bytes at Upload-Offset "
                                 "(application/offset+octet-stream; Upload-Checksum)",
                      "tags": ["uploads"],
                      "responses": {"204": {"description": "new Upload-Offset"},
                                    "409": _err("offset mismatch"),
                                    "415": _err("Content-Type is not "
                                                "application/offset+octet-stream"),
                                    "413": _err("beyond Upload-Length"),
                                    "408": _err("the body stopped arriving; the bytes "
                                                "received so far are kept"),
                                    "460": _err("checksum mismatch"), **_NO_SPACE,
                                    **_ERRORS}},
            "delete": {"summary": "tus termination", "tags": ["uploads"],
                       "responses": {"204": {"description": "deleted"}, **_ERRORS}}},
    }


def build_spec(extra_paths: dict[str, Any] | None = None,
               extra_schemas: dict[str, Any] | None = None) -> dict[str, Any]:
    """The catalog's document; the host merges other packages' paths and schemas in."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Microtome API", "version": "1",
                 "description": "Catalog of whole-slide images: sessions, API keys, projects, "
                                "images, uploads (tus), jobs and share links. Cookie-"
                                "authenticated writes need the X-CSRF-Token header."},
        "servers": [{"url": "/"}],
        "components": {
            "schemas": {**SCHEMAS, **TRASH_SCHEMAS, **ACCOUNT_SCHEMAS,
                        **(extra_schemas or {})},
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "microtome_session"},
                "apiKey": {"type": "http", "scheme": "bearer"},
                "share": {"type": "apiKey", "in": "header", "name": "X-Share-Token"},
            },
        },
        "security": [{"session": []}, {"apiKey": []}, {"share": []}, {}],
        "paths": {**_paths(), **TRASH_PATHS, **ACCOUNT_PATHS, **(extra_paths or {})},
    }


SPEC: dict[str, Any] = build_spec()
