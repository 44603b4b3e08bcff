"""Apps are found through the `microtome.apps` entry points; broken ones are reported."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from microtome.analysis import UnknownApp, available_apps, get_app
from microtome.analysis.registry import ENTRY_POINT_GROUP, discover


def test_builtin_apps_are_installed_entry_points() -> None:
    apps = available_apps()
    assert {"tissue_detection", "nucleus_detection"} <= set(apps)
    for name, app in apps.items():
        assert app.descriptor.name == name
        assert app.descriptor.params_schema["type"] == "object"


def test_broken_third_party_entry_points_do_not_hide_the_others() -> None:
    eps = [EntryPoint("tissue_detection", "microtome.analysis.apps.tissue:TissueDetection",
                      ENTRY_POINT_GROUP),
           EntryPoint("missing", "no_such_module_xyz:App", ENTRY_POINT_GROUP),
           EntryPoint("notanapp", "microtome.analysis.features:feature_collection",
                      ENTRY_POINT_GROUP),
           EntryPoint("again", "microtome.analysis.apps.tissue:TissueDetection", ENTRY_POINT_GROUP)]
    apps, broken = discover(lambda: eps)
    assert list(apps) == ["tissue_detection"]
    assert set(broken) == {"missing", "notanapp", "again"}
    assert "ModuleNotFoundError" in broken["missing"]
    assert "duplicate" in broken["again"]


def test_unknown_app_or_version() -> None:
    assert get_app("tissue_detection").descriptor.name == "tissue_detection"
    with pytest.raises(UnknownApp, match="installed"):
        get_app("nope")
    with pytest.raises(UnknownApp, match=r"version '0\.0\.1'"):
        get_app("tissue_detection", "0.0.1")
