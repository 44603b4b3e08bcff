"""Building blocks of the OpenAPI document shared by the catalog and annotations.

No import of `catalog.openapi` (which imports `annotations.openapi`), so both
document modules can use these without a cycle.
"""

from __future__ import annotations

from typing import Any

_S = "#/components/schemas/"

ID = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
TS = {"type": "string", "format": "date-time"}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": _S + name}


def obj(props: dict[str, Any], required: list[str] | None = None, closed: bool = True,
        **kw: Any) -> dict[str, Any]:
    """An object schema; every property required unless `required` says otherwise."""
    out: dict[str, Any] = {"type": "object", "properties": props,
                           "required": list(props) if required is None else required}
    if closed:
        out["additionalProperties"] = False
    out.update(kw)
    return out


def json_content(schema: dict[str, Any], ctype: str = "application/json") -> dict[str, Any]:
    return {"content": {ctype: {"schema": schema}}}


def err(desc: str) -> dict[str, Any]:
    return {"description": desc, **json_content(ref("Error"))}


#: Errors every operation may answer.
ERRORS = {"400": err("bad request"), "401": err("not logged in"),
          "403": err("not allowed (or missing X-CSRF-Token on a cookie write)"),
          "404": err("not found, or not visible to the caller"),
          "503": err("database unavailable; retry")}


def operation(summary: str, ok: str | None, *, status: str, body: str | None,
              params: list[dict[str, Any]] | None, tag: str,
              write_errors: dict[str, Any] | None = None, ctype: str = "application/json",
              desc: str = "", extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One operation: `ok` names the success schema; `write_errors` are added when given."""
    responses: dict[str, Any] = dict(ERRORS)
    responses.update(write_errors or {})
    responses[status] = ({"description": "ok", **json_content(ref(ok), ctype)} if ok
                         else {"description": "ok"})
    responses.update(extra or {})
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if desc:
        op["description"] = desc
    if body:
        op["requestBody"] = {"required": True, **json_content(ref(body))}
    if params:
        op["parameters"] = params
    return op


def path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID}


def query_param(name: str, schema: dict[str, Any], desc: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": desc}
