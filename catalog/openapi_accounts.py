"""OpenAPI paths and schemas of reset links and my sessions (catalog/api_accounts.py)."""

from __future__ import annotations

from typing import Any

from microtome.catalog.openapi_parts import (
          ID,
          TS,
          err,
          obj,
          operation,
          path_param,
          query_param,
          ref,
)

_TOKEN = {"type": "string", "minLength": 16, "maxLength": 128, "pattern": "^[A-Za-z0-9_-]+$"}
_PASSWORD = {"type": "string", "minLength": 8, "maxLength": 1024}
_COUNT = {"type": "integer", "minimum": 0}
_T = "accounts"
_WRITE = {"409": err("conflicts with the current state"), "413": err("request body too large"),
          "415": err("the body must be JSON (Content-Type: application/json)")}
_TOO_MANY = {"429": {**err("too many wrong reset links from this address;"
                           " detail.retry_after seconds to wait"),
                     "headers": {"Retry-After": {"description": "seconds to wait",
                                                 "schema": {"type": "integer", "minimum": 1}}}}}

SCHEMAS: dict[str, Any] = {
    "ResetLink": obj({
        "user_id": ID, "username": {"type": "string"},
        "token": {"type": "string", "description": "shown once; only its hash is stored"},
        "path": {"type": "string", "description": "/reset#token=...: the page that sets the"
                                                  " password (the token stays in the fragment)"},
        "url": {"type": "string"}, "expires_at": TS}),
    "ResetLinkCheck": obj({"token": _TOKEN}),
    "ResetLinkInfo": obj({"username": {"type": "string"}, "expires_at": TS}),
    "ResetLinkUse": obj({"token": _TOKEN, "new_password": _PASSWORD}),
    "MySession": obj({"id": ID, "created_at": TS, "last_seen_at": TS, "expires_at": TS,
                      "current": {"type": "boolean",
                                  "description": "the session of this request"}}),
    "MySessionPage": obj({"items": {"type": "array", "items": ref("MySession")},
                          "total": _COUNT, "limit": {"type": "integer", "minimum": 1},
                          "offset": _COUNT}),
}

PATHS: dict[str, Any] = {
    "/api/users/{user_id}/reset-link": {"post": operation(
        "Make a one-time password reset link (admin). Earlier links of the user stop "
        "working; their sessions and API keys end; until they set a new password every "
        "request of theirs but the password change is a 403 (detail.reason "
        "password_change_required)", "ResetLink", status="201", body=None,
        params=[path_param("user_id")], tag=_T, write_errors=_WRITE)},
    "/api/password-reset/check": {"post": operation(
        "Whether a reset token is still valid, and whose account it resets. Unknown, used "
        "or replaced: 404 (detail.reason); expired: 404 (reason expired)", "ResetLinkInfo",
        status="200", body="ResetLinkCheck", params=None, tag=_T,
        write_errors=_WRITE, extra=_TOO_MANY)},
    "/api/password-reset": {"post": operation(
        "Set the password with a reset token (once); every session of the user ends",
        None, status="204", body="ResetLinkUse", params=None, tag=_T, write_errors=_WRITE,
        extra=_TOO_MANY)},
    "/api/account/sessions": {
        "get": operation("My sessions (browsers signed in as me)", "MySessionPage",
                         status="200", body=None, tag=_T,
                         params=[query_param("limit", {"type": "integer", "minimum": 1,
                                                       "maximum": 500}),
                                 query_param("offset", {"type": "integer", "minimum": 0})]),
        "delete": operation("Sign out everywhere: every session of mine ends, this one too"
                            " (API keys stay)", None, status="204", body=None, params=None,
                            tag=_T, write_errors=_WRITE)},
}
