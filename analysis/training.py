"""Annotations people drew on the image, as training data for apps that learn
(the pixel classifier): read from the server through the client on a worker,
or from a GeoJSON file with ``microtome analyse --training``.

Only annotations with an area and at least one term count; results of earlier
analyses (those with a producer) are never training data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import orjson
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from .errors import AnalysisError


@dataclass(frozen=True)
class TermRef:
    #: The term's id on the server; None for terms known by name only (a file).
    id: int | None
    name: str
    #: "#rrggbb"
    color: str = "#808080"


@dataclass(frozen=True)
class Drawn:
    """One drawn annotation: geometry in level-0 pixels and its terms."""

    geometry: BaseGeometry
    terms: tuple[TermRef, ...]


def _usable(geom: BaseGeometry) -> bool:
    return not geom.is_empty and geom.area > 0


def from_client(image: Any, project_id: int | None) -> list[Drawn]:
    """The image's drawn annotations in ``project_id`` (a sync client `Image`)."""
    terms = {t.id: TermRef(t.id, t.name, t.color) for t in image.terms()}
    out = []
    for a in image.annotations(project=project_id):
        props = a.properties
        if props.get("producer") or props.get("analysis_id"):
            continue
        refs = tuple(terms[t] for t in props.get("terms") or [] if t in terms)
        geom = shape(a.geometry)
        if refs and _usable(geom):
            out.append(Drawn(geom, refs))
    return out


def _rgb_hex(color: Any) -> str:
    if isinstance(color, list) and len(color) == 3 and all(isinstance(c, int) for c in color):
        return "#" + "".join(f"{max(0, min(255, c)):02x}" for c in color)
    return "#808080"


def from_geojson(path: str | os.PathLike[str]) -> list[Drawn]:
    """Annotations of a GeoJSON FeatureCollection (QuPath's or ours): the class is
    ``properties.classification.name`` or the names in ``properties.microtome.terms``."""
    try:
        with open(path, "rb") as f:
            doc = orjson.loads(f.read())
    except (OSError, orjson.JSONDecodeError) as e:
        raise AnalysisError(f"{path}: cannot read the training annotations ({e})") from None
    features = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(features, list):
        raise AnalysisError(f"{path}: not a GeoJSON FeatureCollection")
    out = []
    for n, feat in enumerate(features):
        props = (feat or {}).get("properties") or {}
        cls = props.get("classification") or {}
        names = [cls["name"]] if isinstance(cls.get("name"), str) else []
        names += [t for t in (props.get("microtome") or {}).get("terms", [])
                  if isinstance(t, str) and t not in names]
        try:
            geom = shape(feat["geometry"])
        except Exception as e:
            raise AnalysisError(f"{path}: feature {n}: bad geometry ({e})") from None
        if names and _usable(geom):
            color = _rgb_hex(cls.get("color"))
            out.append(Drawn(geom, tuple(TermRef(None, nm, color) for nm in names)))
    return out
