"""Parameters checked against an app's JSON Schema: defaults, per-field errors, CLI typing."""

from __future__ import annotations

import pytest

from microtome.analysis import AppDescriptor, InvalidParams, coerce_cli_params, validate_params

SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["mode"],
    "properties": {
        "size": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
        "ratio": {"type": "number", "exclusiveMinimum": 0, "default": 0.5},
        "mode": {"type": "string", "enum": ["fast", "exact"]},
        "flag": {"type": "boolean", "default": False},
        "level": {"type": ["number", "null"], "default": None},
    },
}


def desc(schema: dict | None = None) -> AppDescriptor:
    return AppDescriptor("demo", "1.2.0", "Demo", "A demo.", schema or SCHEMA)


def test_defaults_filled_and_values_kept() -> None:
    assert validate_params(desc(), {"mode": "fast", "size": 7}) == {
        "size": 7, "ratio": 0.5, "mode": "fast", "flag": False, "level": None}


def test_every_wrong_field_is_named() -> None:
    with pytest.raises(InvalidParams) as e:
        validate_params(desc(), {"size": 11, "ratio": "x", "mode": "slow", "nope": 1})
    assert set(e.value.errors) == {"size", "ratio", "mode", "nope"}
    assert "10" in e.value.errors["size"]
    assert e.value.errors["nope"] == "unknown parameter"


def test_missing_required_and_not_an_object() -> None:
    with pytest.raises(InvalidParams) as e:
        validate_params(desc(), {})
    assert set(e.value.errors) == {"mode"}
    with pytest.raises(InvalidParams) as e:
        validate_params(desc(), [1, 2])  # type: ignore[arg-type]
    assert set(e.value.errors) == {"(params)"}


def test_cli_values_typed_by_schema() -> None:
    got = coerce_cli_params(desc(), ["size=4", "ratio=0.25", "flag=yes", "mode=exact",
                                     "level=null"])
    assert got == {"size": 4, "ratio": 0.25, "flag": True, "mode": "exact", "level": None}
    # Untypeable text stays text so that validation names the field and its type.
    got = coerce_cli_params(desc(), ["size=big", "mode=fast"])
    with pytest.raises(InvalidParams) as e:
        validate_params(desc(), got)
    assert set(e.value.errors) == {"size"}
    with pytest.raises(InvalidParams):
        coerce_cli_params(desc(), ["size"])


@pytest.mark.parametrize("kwargs", [
    {"name": "has space"}, {"version": ""}, {"params_schema": {"type": "array"}},
    {"params_schema": {"type": "object", "properties": {"a": {"type": "bogus"}}}},
    {"inputs": ("image", "video")},
])
def test_bad_descriptors_refused(kwargs: dict) -> None:
    base = {"name": "demo", "version": "1", "title": "D", "description": "",
            "params_schema": SCHEMA}
    with pytest.raises(ValueError):
        AppDescriptor(**(base | kwargs))


def test_descriptor_json() -> None:
    doc = desc().to_json()
    assert doc["name"] == "demo" and doc["version"] == "1.2.0"
    assert doc["params_schema"] == SCHEMA and doc["params_schema"] is not SCHEMA
