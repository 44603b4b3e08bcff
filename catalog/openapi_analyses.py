"""OpenAPI paths and schemas of the analysis API (merged by microtome/app.py)."""

from __future__ import annotations

from typing import Any

from microtome.catalog.openapi_parts import ID, TS, obj, operation, path_param, query_param, ref

_REGION = obj({"x": {"type": "integer", "minimum": 0}, "y": {"type": "integer", "minimum": 0},
               "w": {"type": "integer", "minimum": 1}, "h": {"type": "integer", "minimum": 1}},
              description="level-0 pixels, origin top-left")

SCHEMAS: dict[str, Any] = {
    "App": obj({"name": {"type": "string"}, "version": {"type": "string"},
                "title": {"type": "string"}, "description": {"type": "string"},
                "inputs": {"type": "array", "items": {"type": "string"}},
                "params_schema": {"type": "object"}, "timeout": {"type": "number"}},
               closed=False),
    "AppList": obj({"items": {"type": "array", "items": ref("App")}}),
    "AnalysisRegion": _REGION,
    "AnalysisCreate": obj({"app": {"type": "string", "minLength": 1, "maxLength": 200},
                           "version": {"type": ["string", "null"], "maxLength": 100},
                           "params": {"type": "object"},
                           "region": {"anyOf": [_REGION, {"type": "null"}]},
                           "project": {"anyOf": [ID, {"type": "null"}],
                                       "description": "the project the results go to "
                                                      "(default: the image's home project, "
                                                      "else the first holding it where the "
                                                      "caller contributes)"}},
                          required=["app"]),
    "Analysis": obj({
        "id": ID, "image_id": ID,
        "user_id": {"type": ["integer", "null"],
                    "description": "who asked for the run: the author of its results"},
        "project_id": {"type": ["integer", "null"],
                       "description": "the project its results are written in"},
        "executor_id": {"type": ["integer", "null"],
                        "description": "the account of the worker that ran it (last claim)"},
        "executor": {"type": ["string", "null"], "description": "the worker's name"},
        "app": {"type": "string"}, "version": {"type": "string"},
        "params": {"type": "object"}, "region": {"anyOf": [_REGION, {"type": "null"}]},
        "status": {"enum": ["queued", "running", "done", "failed", "cancelled"]},
        "progress": {"type": "number", "minimum": 0, "maximum": 1},
        "log": {"type": "string"}, "error": {"type": ["string", "null"]},
        "traceback": {"type": ["string", "null"],
                      "description": "of a failed run; only for the image's managers"},
        "attempts": {"type": "integer"}, "result_count": {"type": ["integer", "null"]},
        "created_at": TS, "started_at": {"anyOf": [TS, {"type": "null"}]},
        "finished_at": {"anyOf": [TS, {"type": "null"}]}}),
    "AnalysisClaim": obj({"apps": {"type": ["array", "null"], "maxItems": 100,
                                   "items": {"type": "string", "maxLength": 200}},
                          "worker": {"type": "string", "maxLength": 200},
                          "wait": {"type": "number", "minimum": 0, "maximum": 60,
                                   "description": "long-poll: seconds to wait for an "
                                                  "analysis when none is queued (held "
                                                  "at most 25 s)"}},
                         required=[]),
    "AnalysisProgress": obj({"progress": {"type": "number", "minimum": 0, "maximum": 1},
                             "log": {"type": "string", "maxLength": 65536}},
                            required=["progress"]),
    "AnalysisFinish": obj({"status": {"enum": ["done", "failed"]},
                           "attempt": {"type": "integer", "minimum": 1,
                                       "description": "the claim's attempts value; results "
                                                      "are those imported with producer "
                                                      "analysis:<id>/<attempt>"},
                           "error": {"type": "string", "maxLength": 4000},
                           "traceback": {"type": "string", "maxLength": 65536},
                           "log": {"type": "string", "maxLength": 65536}},
                          required=["status", "attempt"]),
    "AnalysisSummary": obj({
        "analysis_id": ID, "count": {"type": "integer"},
        "terms": {"type": "array", "items": obj({
            "term_id": ID, "name": {"type": "string"}, "count": {"type": "integer"},
            "measurements": {"type": "object", "description": "mean and median of each "
                             "measurement over this term's results",
                             "additionalProperties": obj({"mean": {"type": "number"},
                                                          "median": {"type": "number"}})}})},
        "measurements": {"type": "object", "additionalProperties": obj({
            "count": {"type": "integer"}, "mean": {"type": "number"},
            "median": {"type": "number"}, "min": {"type": "number"},
            "max": {"type": "number"},
            "histogram": {"type": "array", "items": {"type": "integer"},
                          "description": "20 equal bins from min to max"}})}}),
    "AnalysisValues": obj({
        "analysis_id": ID, "measurement": {"type": "string"},
        "ids": {"type": "array", "items": ID},
        "values": {"type": "array", "items": {"type": "number"}},
        "min": {"type": ["number", "null"]}, "max": {"type": ["number", "null"]},
        "truncated": {"type": "boolean", "description": "more than 1,000,000 results"}}),
    "AnalysisList": obj({"items": {"type": "array", "items": ref("Analysis")},
                         "total": {"type": "integer"}, "limit": {"type": "integer"},
                         "offset": {"type": "integer"}}),
    # Per project: the Analyses tab and the apps its managers switch on and off.
    "ProjectAnalysis": obj({
        "id": ID, "image_id": ID, "image_name": {"type": "string"},
        "user_id": {"type": ["integer", "null"]}, "username": {"type": ["string", "null"]},
        "executor": {"type": ["string", "null"], "description": "the worker that ran it"},
        "app": {"type": "string"}, "version": {"type": "string"},
        "params": {"type": "object"}, "region": {"anyOf": [_REGION, {"type": "null"}]},
        "status": {"enum": ["queued", "running", "done", "failed", "cancelled"]},
        "progress": {"type": "number"}, "error": {"type": ["string", "null"]},
        "attempts": {"type": "integer"}, "result_count": {"type": ["integer", "null"]},
        "created_at": TS, "started_at": {"anyOf": [TS, {"type": "null"}]},
        "finished_at": {"anyOf": [TS, {"type": "null"}]},
        "duration_s": {"type": ["number", "null"]}}),
    "ProjectAnalysisList": obj({"items": {"type": "array", "items": ref("ProjectAnalysis")},
                                "total": {"type": "integer"}, "limit": {"type": "integer"},
                                "offset": {"type": "integer"}}),
    "ProjectApp": {"allOf": [ref("App"), obj({"enabled": {"type": "boolean"}},
                                             closed=False)]},
    "ProjectAppList": obj({"items": {"type": "array", "items": ref("ProjectApp")}}),
    "ProjectAppSwitch": obj({"enabled": {"type": "boolean"}}),
}

_T = "analyses"
_W = {"409": {"description": "the analysis already finished"}}
#: Worker bodies over 64 KiB (long log lines in multi-byte characters).
_TOO_LARGE = {"413": {"description": "request body too large"}}

PATHS: dict[str, Any] = {
    "/api/apps": {"get": operation(
        "Installed analysis apps and their parameters (JSON Schema)", "AppList",
        status="200", body=None, params=None, tag=_T)},
    "/api/images/{image_id}/analyses": {
        "get": operation("Analyses of an image, newest first", "AnalysisList", status="200",
                         body=None, params=[path_param("image_id")], tag=_T),
        "post": operation(
            "Run an app on the image (contributor or above)", "Analysis", status="201",
            body="AnalysisCreate", params=[path_param("image_id")], tag=_T,
            desc="Parameters are checked against the app's params_schema: a 400 answer's "
                 "detail.fields maps each wrong parameter to its problem. The analysis "
                 "is queued for a worker.")},
    "/api/analyses/{analysis_id}": {
        "get": operation("One analysis: status, progress, log", "Analysis", status="200",
                         body=None, params=[path_param("analysis_id")], tag=_T),
        "delete": operation("Delete an analysis and all its results", None, status="204",
                            body=None, params=[path_param("analysis_id")], tag=_T)},
    "/api/analysis-queue/claim": {"post": operation(
        "Worker: take the oldest queued analysis (administrators' API keys)", "Analysis",
        status="200", body="AnalysisClaim", params=None, tag=_T,
        extra={"204": {"description": "nothing queued"}},
        desc="Running analyses without a heart-beat for 60 s are re-queued first (at "
             "most 3 attempts, then failed).")},
    "/api/analyses/{analysis_id}/progress": {"post": operation(
        "Worker: heart-beat with progress and log lines; answers the analysis "
        "(status 'cancelled' tells the worker to stop)", "Analysis", status="200",
        body="AnalysisProgress", params=[path_param("analysis_id")], tag=_T,
        write_errors=_TOO_LARGE)},
    "/api/analyses/{analysis_id}/finish": {"post": operation(
        "Worker: done (links the results imported with producer "
        "'analysis:<id>/<attempt>') or failed (removes them)", "Analysis", status="200",
        body="AnalysisFinish",
        params=[path_param("analysis_id")], tag=_T,
        write_errors={"409": {"description": "the analysis was cancelled or re-queued"},
                      **_TOO_LARGE})},
    "/api/analyses/{analysis_id}/summary": {"get": operation(
        "Results summary: count, count per term, statistics and histogram per measurement",
        "AnalysisSummary", status="200", body=None, params=[path_param("analysis_id")],
        tag=_T)},
    "/api/analyses/{analysis_id}/values": {"get": operation(
        "One measurement of every result (ids and values): colour the layer by it",
        "AnalysisValues", status="200", body=None,
        params=[path_param("analysis_id"),
                query_param("measurement", {"type": "string"}, "a measurement's name")],
        tag=_T)},
    "/api/analyses/{analysis_id}/cancel": {"post": operation(
        "Cancel a queued or running analysis", "Analysis", status="200", body=None,
        params=[path_param("analysis_id")], tag=_T, write_errors=_W)},
    "/api/projects/{project_id}/analyses": {"get": operation(
        "Every analysis of the project's images, newest first (the Analyses tab)",
        "ProjectAnalysisList", status="200", body=None, params=[path_param("project_id")],
        tag=_T)},
    "/api/projects/{project_id}/apps": {"get": operation(
        "Installed apps and whether the project enables each", "ProjectAppList",
        status="200", body=None, params=[path_param("project_id")], tag=_T)},
    "/api/projects/{project_id}/apps/{app}": {"put": operation(
        "Enable or disable an app in the project (managers)", "ProjectApp", status="200",
        body="ProjectAppSwitch", tag=_T,
        params=[path_param("project_id"),
                {"name": "app", "in": "path", "required": True, "schema": {"type": "string"}}],
        desc="An app disabled in every project holding an image cannot be run on it "
             "(403).")},
    "/api/analyses/{analysis_id}/export": {"get": operation(
        "The analysis' results as a GeoJSON FeatureCollection (measurements included)",
        None, status="200", body=None, params=[path_param("analysis_id")], tag=_T)},
}

# -- models trained by analyses (catalog/api_analysis_models.py) ----------------------
SCHEMAS |= {
    "AnalysisModelStored": obj({"analysis_id": ID, "size": {"type": "integer"},
                                "sha256": {"type": "string"}, "meta": {"type": "object"}}),
    "ClassifierModel": obj({
        "analysis_id": ID, "image_id": ID, "image_name": {"type": "string"},
        "project_id": {"type": ["integer", "null"]}, "user_id": {"type": ["integer", "null"]},
        "username": {"type": ["string", "null"]}, "app": {"type": "string"},
        "version": {"type": "string"}, "size": {"type": "integer"}, "created_at": TS,
        "classes": {"type": "array", "items": obj({"id": {"type": ["integer", "null"]},
                                                   "name": {"type": "string"},
                                                   "color": {"type": "string"}})},
        "features": {"type": "object"}, "resolution": {"type": ["number", "null"]},
        "training": {"type": "object", "description": "images, annotation count, pixels "
                                                      "per class, trees, when"}}),
    "ClassifierModelList": obj({"items": {"type": "array", "items": ref("ClassifierModel")},
                                "total": {"type": "integer"}, "limit": {"type": "integer"},
                                "offset": {"type": "integer"}}),
}
_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_model_get = operation(
    "The model the analysis trained (a safe .npz artifact, no pickles)", None, status="200",
    body=None, params=[path_param("analysis_id")], tag=_T,
    desc="Readers of the project the analysis was asked in (of its image outside "
         "projects); 404 until the analysis is done or when it saved no model.")
_model_get["responses"]["200"] = {"description": "ok", "content": _BINARY}
_model_put = operation(
    "Worker: store the model the running attempt trained (administrators' API keys)",
    "AnalysisModelStored", status="201", body=None,
    params=[path_param("analysis_id"),
            {"name": "attempt", "in": "query", "required": True,
             "schema": {"type": "integer", "minimum": 1},
             "description": "the claim's attempts value"}], tag=_T,
    write_errors={"409": {"description": "the analysis is not running this attempt"},
                  **_TOO_LARGE},
    desc="The artifact is checked (members, dtypes, tree structure) before it is "
         "stored: 400 names what is wrong.")
_model_put["requestBody"] = {"required": True, "content": _BINARY}
PATHS |= {
    "/api/analyses/{analysis_id}/model": {"get": _model_get, "put": _model_put},
    "/api/projects/{project_id}/classifier-models": {"get": operation(
        "Models trained by the project's done analyses, newest first (apply one with the "
        "pixel classifier's model parameter)", "ClassifierModelList", status="200",
        body=None, params=[path_param("project_id")], tag=_T)},
}
