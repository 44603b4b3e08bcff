"""What an app declares about itself, and its parameters checked against that.

Parameters are a JSON Schema object (draft 2020-12) whose properties are the
app's parameters: numbers and integers with ranges, booleans, enums. The same
checks run in ``microtome analyse`` and behind ``POST /api/.../analyses``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from .errors import InvalidParams

#: The inputs an app may ask for.
INPUT_KINDS = frozenset({"image", "region", "terms"})


@dataclass(frozen=True)
class AppDescriptor:
    name: str
    version: str
    title: str
    description: str
    #: JSON Schema of the parameters: {"type": "object", "properties": {...}}.
    params_schema: dict[str, Any]
    #: What the app reads: "image" always; "region" when it can be restricted to one.
    inputs: tuple[str, ...] = ("image",)
    #: Seconds after which a run is considered hung (servers and workers enforce it).
    timeout: float = 3600.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "_").replace(".", "_").isidentifier():
            raise ValueError(f"app name {self.name!r} must be a word (letters, digits, - _ .)")
        if not self.version:
            raise ValueError(f"app {self.name}: version is empty")
        unknown = set(self.inputs) - INPUT_KINDS
        if unknown:
            raise ValueError(f"app {self.name}: unknown inputs {sorted(unknown)}")
        if self.params_schema.get("type") != "object":
            raise ValueError(f"app {self.name}: params_schema must be a JSON Schema object")
        try:
            Draft202012Validator.check_schema(self.params_schema)
        except SchemaError as e:
            raise ValueError(f"app {self.name}: bad params_schema: {e.message}") from None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "title": self.title,
                "description": self.description, "inputs": list(self.inputs),
                "params_schema": copy.deepcopy(self.params_schema), "timeout": self.timeout,
                **self.extra}


def _field_of(err: Any) -> str:
    path = "/".join(str(p) for p in err.absolute_path)
    if err.validator == "required" and isinstance(err.instance, Mapping):
        missing = [k for k in err.validator_value if k not in err.instance]
        return "/".join(filter(None, [path, missing[0] if missing else ""])) or "(params)"
    if err.validator == "additionalProperties" and isinstance(err.instance, Mapping):
        allowed = set(err.schema.get("properties", {}))
        extra = sorted(k for k in err.instance if k not in allowed)
        return "/".join(filter(None, [path, extra[0] if extra else ""])) or "(params)"
    return path or "(params)"


def validate_params(descriptor: AppDescriptor, params: Mapping[str, Any] | None
                    ) -> dict[str, Any]:
    """The parameters with the schema's defaults filled in, or `InvalidParams`
    naming every wrong field (one message per field)."""
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise InvalidParams({"(params)": "must be an object"})
    schema = descriptor.params_schema
    errors: dict[str, str] = {}
    for err in Draft202012Validator(schema).iter_errors(dict(params)):
        key = _field_of(err)
        if err.validator == "additionalProperties":
            errors.setdefault(key, "unknown parameter")
        else:
            errors.setdefault(key, err.message)
    if errors:
        raise InvalidParams(errors)
    out = {k: copy.deepcopy(p["default"]) for k, p in schema.get("properties", {}).items()
           if "default" in p}
    out.update(params)
    return out


def _coerce(prop: Mapping[str, Any], raw: str) -> Any:
    types = prop.get("type", "string")
    types = [types] if isinstance(types, str) else list(types)
    if raw.lower() in ("null", "none") and "null" in types:
        return None
    for t in types:
        try:
            if t == "integer":
                return int(raw)
            if t == "number":
                return float(raw)
        except ValueError:
            continue
        if t == "boolean" and raw.lower() in ("true", "false", "yes", "no", "1", "0"):
            return raw.lower() in ("true", "yes", "1")
        if t == "string":
            return raw
    return raw  # left as text: validation then names the field and its type


def coerce_cli_params(descriptor: AppDescriptor, pairs: Iterable[str]) -> dict[str, Any]:
    """``["k=v", ...]`` from the command line, typed by the schema (not validated)."""
    props = descriptor.params_schema.get("properties", {})
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidParams({pair or "(params)": "expected KEY=VALUE"})
        out[key] = _coerce(props.get(key, {"type": "string"}), raw.strip())
    return out
