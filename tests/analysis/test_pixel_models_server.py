"""Saved classifier models through a live server and its workers: a model trained on
image A (annotations drawn in a project) is stored with its analysis, re-applied to
image B with the ``model`` parameter (nothing drawn on B), and its classes land in
the project's terms; bad model ids are refused when the run is asked; someone
outside the project can neither read nor use the model; the server refuses a
tampered artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from microtome_client import BadRequest, Client, Conflict, Forbidden, NotFound
from shapely import contains_xy
from shapely.geometry import shape

from microtome.analysis.classifier_model import loads
from microtome.analysis.worker import run_worker
from tests.client.conftest import (  # noqa: F401
    PASSWORD,
    LiveServer,
    live_server,
    ready_images,
    unique,
)

from .test_pixel_models import PARAMS, painted, truth_b
from .test_pixels import DRAWN, SHAPE, truth

CODE = {"Glass": 1, "Stroma": 2, "Tumour": 3}


@pytest.fixture(scope="module")
def c(live_server: LiveServer) -> Any:  # noqa: F811
    with Client(live_server.url, api_key=live_server.api_key) as client:
        yield client


@pytest.fixture(scope="module")
def trained(live_server: LiveServer, c: Any, tmp_path_factory: Any) -> dict[str, Any]:  # noqa: F811
    """Images A and B uploaded into one project; polygons drawn on A; the classifier
    run on A by a worker (its app in a child process, as in production)."""
    import tifffile

    folder = tmp_path_factory.mktemp("models")
    for name, pixels in (("a.tif", painted(truth(), 0)), ("b.tif", painted(truth_b(), 5))):
        tifffile.imwrite(folder / name, pixels, photometric="rgb", tile=(256, 256),
                         compression="jpeg", compressionargs={"level": 95})  # → RGB kind
    project = c.create_project(unique("models"))
    ups = c.upload([folder / "a.tif", folder / "b.tif"], project=project.id, progress=False,
                   state_file=folder / "state.json")
    assert all(u.ok for u in ups), [u.error for u in ups]
    a, b = (c.image(u.image.id) for u in ups)
    terms = {n: project.create_term(n, col) for n, col in
             (("Glass", "#f0f0f0"), ("Stroma", "#e08ab4"), ("Tumour", "#5a3a91"))}
    for d in DRAWN:
        a.create_annotation(d.geometry, terms=[terms[d.terms[0].name].id], project=project.id)
    run = a.analyse("pixel_classifier", PARAMS, project=project.id)
    assert run_worker(live_server.url, live_server.api_key, ["pixel_classifier"],
                      once=True) == 0
    done = c.analysis(run.id)
    assert done.status == "done", (done.error, done.log)
    return {"project": project, "a": a, "b": b, "terms": terms, "run": done}


def _labels(results: list[Any], by_id: dict[int, str]) -> np.ndarray:
    labels = np.zeros(SHAPE, np.uint8)
    ys, xs = np.mgrid[:SHAPE[0], :SHAPE[1]] + 0.5
    for r in results:
        (tid,) = r.properties["terms"]
        labels[contains_xy(shape(r.geometry), xs, ys)] = CODE[by_id[tid]]
    return labels


def test_the_model_is_stored_and_reapplied_to_another_image(
        live_server: LiveServer, c: Any, trained: dict[str, Any],  # noqa: F811
        tmp_path: Path) -> None:
    project, b, terms, run = (trained[k] for k in ("project", "b", "terms", "run"))
    model = loads(c.analysis_model(run.id))  # what the worker uploaded, checked again
    meta = model.meta
    assert [(cl["id"], cl["name"]) for cl in meta["classes"]] == [
        (terms[n].id, n) for n in ("Glass", "Stroma", "Tumour")]
    assert meta["training"]["images"] == [trained["a"].id]
    assert meta["training"]["analysis_id"] == run.id
    assert meta["training"]["annotations"] == len(DRAWN)
    assert "model saved" in run.log
    assert run.download_model(tmp_path / "m.npz").read_bytes() == c.analysis_model(run.id)
    listed = project.classifier_models()
    assert [m["analysis_id"] for m in listed] == [run.id]
    assert [cl["name"] for cl in listed[0]["classes"]] == ["Glass", "Stroma", "Tumour"]
    assert listed[0]["image_name"] and listed[0]["training"]["annotations"] == len(DRAWN)

    # Re-applied to B, where nothing is drawn, by a worker running the app in-thread.
    applied = b.analyse("pixel_classifier", {"model": run.id, "tile_size": 256},
                        project=project.id)
    assert run_worker(live_server.url, live_server.api_key, ["pixel_classifier"],
                      once=True, isolate=False) == 0
    done = c.analysis(applied.id)
    assert done.status == "done", (done.error, done.log)
    assert f"model {run.id}" in done.log and "(same id)" in done.log
    results = [r for r in b.annotations(project=project.id)
               if r.properties.get("analysis_id") == applied.id]
    assert len(results) == done.result_count > 0
    by_id = {t.id: n for n, t in terms.items()}
    got = _labels(results, by_id)  # the project's own terms, by id: nothing created
    assert (got == truth_b()).mean() >= 0.97, (got == truth_b()).mean()
    # A run that applied a model saved none, and cannot serve as one.
    with pytest.raises(NotFound):
        c.analysis_model(applied.id)
    with pytest.raises(BadRequest) as e:
        b.analyse("pixel_classifier", {"model": applied.id}, project=project.id)
    assert "saved no model" in e.value.detail["fields"]["model"]


def test_bad_model_ids_are_refused_when_asked(c: Any, trained: dict[str, Any],
                                              ready_images: dict[str, int]) -> None:  # noqa: F811
    project, a, b = trained["project"], trained["a"], trained["b"]

    def refused(model: Any, why: str, image: Any = b) -> None:
        with pytest.raises(BadRequest) as e:
            image.analyse("pixel_classifier", {"model": model}, project=project.id)
        assert why in e.value.detail["fields"]["model"], e.value.detail

    refused(10**9, "does not exist")
    refused("/etc/passwd", "on a server, the id")  # no file of the worker's is read
    tissue = a.analyse("tissue_detection", {}, project=project.id)
    refused(tissue.id, "is a tissue_detection run, not pixel_classifier")
    queued = a.analyse("pixel_classifier", PARAMS, project=project.id)
    refused(queued.id, "has not finished well (queued)")
    for x in (tissue, queued):
        c.cancel_analysis(x.id)
    with pytest.raises(BadRequest):  # the schema: ids are positive
        b.analyse("pixel_classifier", {"model": 0}, project=project.id)
    # A 3-channel 16-bit fluorescence image is not what an RGB model reads.
    fluo = c.image(ready_images["fluo16.tif"])
    with pytest.raises(BadRequest) as e:
        fluo.analyse("pixel_classifier", {"model": trained["run"].id},
                     project=ready_images["project"])
    assert "reads RGB brightfield images" in e.value.detail["fields"]["model"]


def test_someone_outside_the_project_can_neither_read_nor_use_the_model(
        live_server: LiveServer, c: Any, trained: dict[str, Any],  # noqa: F811
        tmp_path: Path) -> None:
    import tifffile

    run = trained["run"]
    name = unique("other")
    c.create_user(name, PASSWORD)
    theirs = c.create_project(unique("theirs"))
    theirs.add_member(name, "contributor")
    tifffile.imwrite(tmp_path / "c.tif", painted(truth_b(), 9), photometric="rgb",
                     tile=(256, 256), compression="jpeg", compressionargs={"level": 95})
    (up,) = c.upload([tmp_path / "c.tif"], project=theirs.id, progress=False,
                     state_file=tmp_path / "state.json")
    assert up.ok, up.error
    with Client(live_server.url, username=name, password=PASSWORD) as other:
        with pytest.raises(NotFound):
            other.analysis_model(run.id)
        with pytest.raises(Forbidden) as e:
            other.image(up.image.id).analyse("pixel_classifier", {"model": run.id},
                                             project=theirs.id)
        assert "model" in e.value.detail["fields"]
        with pytest.raises(NotFound):
            other.project(trained["project"].id).classifier_models()
    # A viewer of the training project may use it on an image of their own project.
    trained["project"].add_member(name, "viewer")
    with Client(live_server.url, username=name, password=PASSWORD) as other:
        assert loads(other.analysis_model(run.id)).classes
        a = other.image(up.image.id).analyse("pixel_classifier", {"model": run.id},
                                             project=theirs.id)
        assert a.status == "queued"
        other.cancel_analysis(a.id)


def test_the_server_stores_only_sound_models_from_the_running_attempt(
        live_server: LiveServer, c: Any, trained: dict[str, Any]) -> None:  # noqa: F811
    good = c.analysis_model(trained["run"].id)
    # Finished: no attempt may replace its model any more.
    with pytest.raises(Conflict):
        c.upload_analysis_model(trained["run"].id, good, attempt=trained["run"].attempts)
    queued = trained["a"].analyse("pixel_classifier", PARAMS, project=trained["project"].id)
    claimed = c.claim_analysis(["pixel_classifier"], worker="test")
    assert claimed is not None and claimed.id == queued.id
    with pytest.raises(BadRequest) as e:
        c.upload_analysis_model(claimed.id, good[: len(good) // 2], attempt=claimed.attempts)
    assert "not a valid pixel-classifier model" in str(e.value)
    with pytest.raises(Conflict):  # an attempt that is not the running one
        c.upload_analysis_model(claimed.id, good, attempt=claimed.attempts + 1)
    stored = c.upload_analysis_model(claimed.id, good, attempt=claimed.attempts)
    assert stored["size"] == len(good)
    with pytest.raises(NotFound):  # served only once the analysis is done
        c.analysis_model(claimed.id)
    c.finish_analysis(claimed.id, "failed", attempt=claimed.attempts, error="test")
    with pytest.raises(NotFound):
        c.analysis_model(claimed.id)
    # A non-admin cannot upload at all.
    r = httpx.put(f"{live_server.url}/api/analyses/{claimed.id}/model?attempt=1",
                  content=good, timeout=30)
    assert r.status_code in (401, 403)
