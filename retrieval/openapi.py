"""OpenAPI fragments of the retrieval API, merged into /api/openapi.json by the assembly."""

from __future__ import annotations

from typing import Any

from microtome.catalog.openapi_parts import ID as _ID
from microtome.catalog.openapi_parts import err as _err
from microtome.catalog.openapi_parts import obj as _obj
from microtome.catalog.openapi_parts import operation

from .crops import MAX_SIDE, MIN_SIDE, TARGET_UM

_NID = {"type": ["integer", "null"], "minimum": 1}
_SCORE = {"type": "number", "description": "cosine similarity of the descriptors (1: same)"}
_META = {
    "descriptor": {"type": "string", "description": "descriptor family used "
                   "(MICROTOME_RETRIEVAL_DESCRIPTOR; cstats-v1 by default)"},
    "method": {"type": "string", "enum": ["hnsw", "exact"],
               "description": "hnsw: pgvector's approximate index; exact: a full scan"},
    "pending": {"type": "integer", "minimum": 0,
                "description": "annotations in the scope not described yet (counted up to "
                               "1000); each request describes a bounded number of them"},
}
_TERM = _obj({"id": _ID, "name": {"type": "string"}, "color": {"type": "string"}})

SCHEMAS: dict[str, Any] = {
    "RetrievalQuery": _obj({
        "annotation_id": _ID, "image_id": _ID,
        "geometry": {"type": "object", "description": "GeoJSON geometry, level-0 pixels"},
        "scope": {"type": "string", "enum": ["image", "project", "all"], "default": "all"},
        "k": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
        "terms": {"type": "array", "items": _ID, "maxItems": 1000,
                  "description": "only annotations with at least one of these terms"},
        "project_id": {**_ID, "description": "with image_id and geometry: the project "
                       "(holding the image) whose terms suggestions are mapped to; default "
                       "the image's only project"},
    }, required=[], description=(
        "Either annotation_id, or image_id and geometry. Regions are described at "
        f"{TARGET_UM} µm per pixel (level-0 pixels when the pixel size is unknown); "
        f"their bounding box must measure {MIN_SIDE} to {MAX_SIDE} pixels at that scale.")),
    "SimilarItem": _obj({
        "annotation_id": _ID, "image_id": _ID, "image_name": {"type": "string"},
        "project_id": _NID, "score": _SCORE, "terms": {"type": "array", "items": _TERM},
        "bbox": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
                 "description": "[x0, y0, x1, y1], level-0 pixels of its image"},
        "crop_url": {"type": "string"}}),
    "SimilarResult": _obj({"items": {"type": "array", "items": {"$ref":
                                                                 "#/components/schemas/SimilarItem"}},
                           **_META}),
    "TermSuggestion": _obj({
        "term_id": _ID, "name": {"type": "string"}, "color": {"type": "string"},
        "project_id": _ID,
        "score": {"type": "number", "minimum": 0, "maximum": 1,
                  "description": "share of the neighbours' similarity voting for this term"},
        "applicable": {"type": "boolean", "description": "a term of the query's project "
                       "(votes for other projects' terms of the same name are carried over "
                       "to it); false: no namesake there"}}),
    "TermSuggestions": _obj({"terms": {"type": "array", "items": {
        "$ref": "#/components/schemas/TermSuggestion"}},
        "project_id": _NID,
        "neighbours": {"type": "integer", "minimum": 0}, **_META}),
    "SlideSearchQuery": _obj({
        "annotation_id": _ID, "image_id": _ID,
        "geometry": {"type": "object", "description": "GeoJSON geometry, level-0 pixels"},
        "project_id": _ID, "scope": {"type": "string"}, "k": {"type": "integer"},
        "terms": {"type": "array", "items": _ID},
        "target_image_id": {**_ID, "description": "the slide to search (default: the "
                            "example's)"},
        "top": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10,
                "description": "how many candidate regions"},
    }, required=[], description="The example: annotation_id, or image_id and geometry."),
    "SlideSearchResult": _obj({
        "image_id": _ID, "descriptor": {"type": "string"},
        "grid": _obj({"window": {"type": "number", "description": "window side, level-0 px"},
                      "step": {"type": "number", "description": "distance between window "
                               "origins, level-0 px (windows start at 0, 0)"},
                      "cols": {"type": "integer"}, "rows": {"type": "integer"}}),
        "scores": {"type": "array", "items": {"type": "number"},
                   "description": "cosine similarity per window, row by row"},
        "top": {"type": "array", "items": _obj({
            "geometry": {"type": "object"}, "score": _SCORE}),
            "description": "best non-overlapping windows, as candidate annotations"},
    }),
    "RetrievalStatus": _obj({
        "enabled": {"type": "boolean", "description": "false when the database has no "
                    "pgvector extension: every other retrieval route then answers 503"},
        "descriptor": {"type": "string"},
        "message": {"type": ["string", "null"], "description": "why retrieval is off"},
        "background_indexing": {"type": "boolean", "description": "this server process "
                                "describes new and changed annotations in the background"},
        "limits": _obj({"um_per_px": {"type": "number"}, "min_side": {"type": "integer"},
                        "max_side": {"type": "integer"}}, description=(
            "regions are described at um_per_px (level-0 pixels when the slide has no "
            "pixel size); their bounding box must measure min_side to max_side pixels "
            "there"))}),
}

_ERR = {"413": _err("body too large"), "422": _err("invalid geometry")}

_ACCESS = ("Only annotations of images the caller may read are considered (inside the "
           "query: the k nearest readable ones are returned).")

_ERRS = {**_ERR, "503": _err("retrieval disabled (no pgvector in the database)")}

PATHS: dict[str, Any] = {
    "/api/retrieval/slide-search": {"post": operation(
        "Where on a slide the tissue looks like an example", "SlideSearchResult",
        status="200", body="SlideSearchQuery", params=None, tag="retrieval",
        write_errors=_ERRS,
        desc="Scores a grid of windows of the example's size (at the descriptors' scale, "
             "half-overlapping, at most 1000) over the target slide: the scores (a heat "
             "map) and the best non-overlapping windows.")},
    "/api/retrieval/status": {"get": operation(
        "Whether retrieval is available", "RetrievalStatus", status="200", body=None,
        params=None, tag="retrieval")},
    "/api/retrieval/similar": {"post": operation(
        "Annotations most similar to an annotation or a region", "SimilarResult",
        status="200", body="RetrievalQuery", params=None, tag="retrieval", write_errors=_ERRS,
        desc="Nearest annotations by colour and texture descriptor, best first. " + _ACCESS)},
    "/api/retrieval/suggest-term": {"post": operation(
        "Terms suggested for an annotation or a region", "TermSuggestions",
        status="200", body="RetrievalQuery", params=None, tag="retrieval", write_errors=_ERRS,
        desc="Terms of the k nearest annotations, weighted by similarity. " + _ACCESS)},
}
