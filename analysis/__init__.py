"""Analysis apps: algorithms that read an image and return objects (features).

An app is any object with a ``descriptor`` (`AppDescriptor`: name, version,
title, description, inputs and its parameters as a JSON Schema) and a
``run(ctx: RunContext) -> list[Feature]`` method, published by a Python
package in the entry-point group ``microtome.apps``. The built-in apps are
registered the same way in Microtome's own pyproject.toml.

Apps read pixels only through the `Raster` protocol (a local OME-Zarr, or the
HTTP API through the Python client), so the same code runs in
``microtome analyse`` and on a remote worker. Nothing here imports the web
server or the catalog.
"""


if __name__ != "microtome.analysis":
    # Installed under one namespace; a bare `import analysis` from the source tree would
    # load a second copy whose exception types and caches differ from the server's.
    raise ImportError("import microtome.analysis, not analysis: Microtome's packages live "
                      "under the microtome namespace (see docs/ARCHITECTURE.md)")
from .descriptor import AppDescriptor, coerce_cli_params, validate_params
from .errors import AnalysisError, InvalidParams, UnknownApp
from .features import Feature, feature_collection, write_geojson
from .raster import Raster
from .registry import ENTRY_POINT_GROUP, App, available_apps, get_app
from .runner import Region, RunContext, run_app

__all__ = [
    "ENTRY_POINT_GROUP", "AnalysisError", "App", "AppDescriptor", "Feature", "InvalidParams",
    "Raster", "Region", "RunContext", "UnknownApp", "available_apps", "coerce_cli_params",
    "feature_collection", "get_app", "run_app", "validate_params", "write_geojson",
]
