"""Optional dependencies (the package's extras): imported where a feature needs them, with
an error that names the extra to install instead of a bare ImportError."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import NotImplementedFeature

#: extra name -> what it enables (pyproject.toml [project.optional-dependencies]).
EXTRAS = {
    "czi": "Zeiss CZI files",
    "vips": "plain pictures above 64 megapixels (decoded in bands by libvips)",
    "s3": "images in S3 or compatible object storage",
    "cluster": "conversions and analyses on a dask.distributed cluster",
}


class MissingExtra(NotImplementedFeature):
    """A feature whose optional dependencies are not installed (HTTP 501)."""


def missing_extra_message(extra: str) -> str:
    return (f"{EXTRAS[extra]} need the optional '{extra}' dependencies, which are not "
            f"installed: pip install 'microtome[{extra}]'")


def require(module: str, extra: str) -> ModuleType:
    """Import `module` (part of `extra`); MissingExtra naming the extra when absent."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtra(missing_extra_message(extra)) from e
