"""Analysis results as QuPath-compatible GeoJSON features.

A feature's geometry is in level-0 pixel coordinates (as QuPath and the
annotation import expect); measurements go in ``properties.measurements``
(name → number), the class in ``properties.classification``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry


@dataclass
class Feature:
    geometry: BaseGeometry
    classification: str | None = None
    #: RGB 0-255 of the class, as QuPath stores it.
    color: tuple[int, int, int] | None = None
    measurements: dict[str, float] = field(default_factory=dict)
    #: "detection" for many small objects (nuclei), "annotation" for regions (tissue).
    object_type: Literal["annotation", "detection"] = "annotation"

    def to_geojson(self) -> dict[str, Any]:
        props: dict[str, Any] = {"objectType": self.object_type}
        if self.classification:
            cls: dict[str, Any] = {"name": self.classification}
            if self.color:
                cls["color"] = list(self.color)
            props["classification"] = cls
        if self.measurements:
            props["measurements"] = {k: float(v) for k, v in self.measurements.items()}
        return {"type": "Feature", "geometry": mapping(self.geometry), "properties": props}


def feature_collection(features: Iterable[Feature],
                       provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": "FeatureCollection",
                           "features": [f.to_geojson() for f in features]}
    if provenance:
        doc["microtome"] = {"analysis": dict(provenance)}
    return doc


def write_geojson(path: str | os.PathLike[str], features: Iterable[Feature],
                  provenance: Mapping[str, Any] | None = None) -> int:
    """Write a FeatureCollection atomically (a temp file renamed into place, so
    an interrupted run never leaves half a file); returns the feature count."""
    doc = feature_collection(features, provenance)
    data = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial",
                               dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(doc["features"])
