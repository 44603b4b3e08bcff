"""`microtome worker` against a live server: claims over HTTP, reads pixels and
writes results with the client, results linked to the analysis exactly once;
cancel, dead workers re-queued without duplicate results."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from microtome_client import Client, Conflict, NotFound

from microtome.analysis.worker import run_worker
from microtome.cli import main
from tests.client.conftest import LiveServer, live_server, ready_images  # noqa: F401


def _sql(server: LiveServer, query: str, *args: Any) -> Any:
    async def go() -> Any:
        conn = await asyncpg.connect(server.env["DATABASE_URL"])
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()
    return asyncio.run(go())


@pytest.fixture
def c(live_server: LiveServer) -> Any:  # noqa: F811
    with Client(live_server.url, api_key=live_server.api_key) as client:
        yield client


def test_worker_runs_tissue_detection_and_results_are_linked(
        live_server: LiveServer, ready_images: dict[str, int], c: Any) -> None:  # noqa: F811
    image = c.image(ready_images["CMU-1-Small-Region.svs"])
    a = image.analyse("tissue_detection", {"min_area": 5000})
    assert main(["worker", "--server", live_server.url, "--api-key", live_server.api_key,
                 "--once", "--apps", "tissue_detection"]) == 0
    done = c.analysis(a.id)
    assert done.status == "done" and done.progress == 1 and done.result_count >= 1
    assert "claimed by" in done.log and "objects" in done.log
    rows = _sql(live_server, "SELECT count(*) AS n, min(properties::text) AS p FROM "
                "annotations WHERE analysis_id = $1", a.id)
    assert rows[0]["n"] == done.result_count
    assert "Area" in rows[0]["p"]  # measurements kept with the annotation
    summary = done.summary()
    assert summary["count"] == done.result_count
    assert summary["terms"][0]["name"] == "Tissue"
    assert summary["terms"][0]["count"] == done.result_count
    area = summary["measurements"]["Area µm^2"]
    assert area["count"] == done.result_count and area["min"] >= 5000
    assert sum(area["histogram"]) == done.result_count and len(area["histogram"]) == 20
    done.delete()
    assert _sql(live_server, "SELECT count(*) AS n FROM annotations WHERE analysis_id = $1"
                " OR producer LIKE $2", a.id, f"analysis:{a.id}/%")[0]["n"] == 0


def test_nuclei_on_a_region_through_the_http_raster(
        live_server: LiveServer, ready_images: dict[str, int], c: Any) -> None:  # noqa: F811
    image = c.image(ready_images["CMU-1-Small-Region.svs"])
    a = image.analyse("nucleus_detection", region=(700, 1300, 300, 300))
    assert run_worker(live_server.url, live_server.api_key, ["nucleus_detection"],
                      once=True) == 0
    done = c.analysis(a.id)
    assert done.status == "done" and done.result_count > 20
    summary = done.summary()
    s = summary["measurements"]
    assert s["Area µm^2"]["min"] <= s["Area µm^2"]["median"] <= s["Area µm^2"]["max"]
    assert sum(s["Circularity"]["histogram"]) == done.result_count
    # Per term: mean and median of each measurement (one term here: all of them).
    (nucleus,) = summary["terms"]
    assert nucleus["name"] == "Nucleus" and nucleus["count"] == done.result_count
    assert nucleus["measurements"]["Area µm^2"]["mean"] == pytest.approx(s["Area µm^2"]["mean"])
    assert nucleus["measurements"]["Area µm^2"]["median"] == pytest.approx(
        s["Area µm^2"]["median"])
    # One measurement of every result, by annotation id: what the viewer colours by.
    areas = done.values("Area µm^2")
    rows = _sql(live_server, "SELECT id, (properties->'measurements'->>'Area µm^2')::float8 AS v"
                " FROM annotations WHERE analysis_id = $1", a.id)
    assert areas == pytest.approx({r["id"]: r["v"] for r in rows})
    assert done.values("no such measurement") == {}
    done.delete()


def test_cancelled_run_keeps_no_results(live_server: LiveServer,  # noqa: F811
                                        ready_images: dict[str, int], c: Any,  # noqa: F811
                                        tmp_path: Any) -> None:
    image = c.image(ready_images["CMU-1-Small-Region.svs"])
    a = image.analyse("tissue_detection")
    claimed = c.claim_analysis(["tissue_detection"], worker="test")
    assert claimed.id == a.id and claimed.status == "running" and claimed.attempts == 1
    assert c.report_analysis(a.id, 0.5, "half way").progress == 0.5
    a.cancel()
    assert c.report_analysis(a.id, 0.6).status == "cancelled"
    # The worker had not noticed and writes its results anyway: they are discarded.
    results = tmp_path / "late.geojson"
    results.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", '
                       '"geometry": {"type": "Point", "coordinates": [5, 5]}, '
                       '"properties": {}}]}')
    image.import_annotations(results, producer=f"analysis:{a.id}/1")
    with pytest.raises(Conflict):
        c.finish_analysis(a.id, "done", attempt=1)
    assert c.analysis(a.id).status == "cancelled"
    assert _sql(live_server, "SELECT count(*) AS n FROM annotations WHERE producer LIKE $1",
                f"analysis:{a.id}/%")[0]["n"] == 0
    # Deleted while running: late results are discarded too.
    b = image.analyse("tissue_detection")
    assert c.claim_analysis(["tissue_detection"]).id == b.id
    b.delete()
    image.import_annotations(results, producer=f"analysis:{b.id}/1")
    with pytest.raises(NotFound):
        c.finish_analysis(b.id, "done", attempt=1)
    assert _sql(live_server, "SELECT count(*) AS n FROM annotations WHERE producer LIKE $1",
                f"analysis:{b.id}/%")[0]["n"] == 0


def test_dead_worker_requeued_and_results_written_once(
        live_server: LiveServer, ready_images: dict[str, int], c: Any,  # noqa: F811
        tmp_path: Any) -> None:
    image = c.image(ready_images["CMU-1-Small-Region.svs"])
    a = image.analyse("tissue_detection", {"min_area": 5000})
    first = c.claim_analysis(["tissue_detection"], worker="doomed")
    assert first.id == a.id
    # The doomed worker had imported part of its results, then died.
    partial = tmp_path / "partial.geojson"
    partial.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", '
                       '"geometry": {"type": "Point", "coordinates": [5, 5]}, '
                       '"properties": {}}]}')
    image.import_annotations(partial, producer=f"analysis:{a.id}/1")
    _sql(live_server, "UPDATE analyses SET heartbeat_at = now() - interval '1 hour' "
         "WHERE id = $1", a.id)
    assert run_worker(live_server.url, live_server.api_key, ["tissue_detection"],
                      once=True) == 0
    done = c.analysis(a.id)
    assert done.status == "done" and done.attempts == 2
    rows = _sql(live_server, "SELECT kind FROM annotations WHERE analysis_id = $1 OR "
                "producer LIKE $2", a.id, f"analysis:{a.id}/%")
    assert len(rows) == done.result_count and "point" not in {r["kind"] for r in rows}
    done.delete()


def test_worker_refuses_apps_it_does_not_have(live_server: LiveServer,  # noqa: F811
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert run_worker(live_server.url, live_server.api_key, ["nope"], once=True) == 2
    assert "not installed" in capsys.readouterr().err


def test_failing_run_is_failed_with_its_reason(live_server: LiveServer,  # noqa: F811
                                               ready_images: dict[str, int], c: Any) -> None:  # noqa: F811
    # A 16-bit fluorescence image: the brightfield apps refuse it on the worker.
    image = c.image(ready_images["fluo16.tif"])
    a = image.analyse("tissue_detection")
    assert run_worker(live_server.url, live_server.api_key, ["tissue_detection"],
                      once=True) == 1
    failed = c.analysis(a.id)
    assert failed.status == "failed" and "not an RGB brightfield image" in failed.error
    assert failed.result_count is None
    assert "AnalysisError" in (failed.traceback or "")  # the API key's user is an admin
    failed.delete()


def test_analyse_with_server_submits_and_waits_for_a_running_worker(
        live_server: LiveServer, ready_images: dict[str, int],  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    import threading

    stop = threading.Event()
    worker = threading.Thread(target=run_worker, daemon=True, kwargs=dict(
        url=live_server.url, api_key=live_server.api_key, apps=["tissue_detection"],
        poll=0.2, stop=stop, wait=2.0))
    worker.start()
    try:
        base = ["analyse", "tissue_detection", str(ready_images["CMU-1-Small-Region.svs"]),
                "--server", live_server.url, "--api-key", live_server.api_key]
        assert main([*base, "--param", "min_area=5000", "--region", "0,0,1500,2000",
                     "--wait"]) == 0
        out = capsys.readouterr().out
        assert "queued" in out and ": done, " in out and "objects" in out
        assert main([*base, "--param", "smoothing=50"]) == 2
        assert "parameter smoothing" in capsys.readouterr().err
        assert main([*base[:2], "not-an-id", *base[3:]]) == 2
    finally:
        stop.set()
        worker.join(30)
    assert not worker.is_alive()


def test_presumed_dead_worker_cannot_add_to_the_new_attempt(
        live_server: LiveServer, ready_images: dict[str, int], c: Any,  # noqa: F811
        tmp_path: Any) -> None:
    image = c.image(ready_images["CMU-1-Small-Region.svs"])
    a = image.analyse("tissue_detection")
    assert c.claim_analysis(["tissue_detection"], worker="slow").attempts == 1
    _sql(live_server, "UPDATE analyses SET heartbeat_at = now() - interval '1 hour' "
         "WHERE id = $1", a.id)
    second = c.claim_analysis(["tissue_detection"], worker="fresh")
    assert second.id == a.id and second.attempts == 2
    point = tmp_path / "p.geojson"
    point.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", '
                     '"geometry": {"type": "Point", "coordinates": [5, 5]}, '
                     '"properties": {}}]}')
    # The slow worker was alive after all: its late results are refused and removed.
    image.import_annotations(point, producer=f"analysis:{a.id}/1")
    image.import_annotations(point, producer=f"analysis:{a.id}/2")
    with pytest.raises(Conflict, match="newer attempt"):
        c.finish_analysis(a.id, "done", attempt=1)
    done = c.finish_analysis(a.id, "done", attempt=2)
    assert done.status == "done" and done.result_count == 1
    rows = _sql(live_server, "SELECT producer FROM annotations WHERE analysis_id = $1 "
                "OR producer LIKE $2", a.id, f"analysis:{a.id}/%")
    assert [r["producer"] for r in rows] == [f"analysis:{a.id}/2"]
    done.delete()


def test_results_belong_to_who_pressed_run_and_the_worker_is_the_executor(
        live_server: LiveServer, ready_images: dict[str, int], c: Any) -> None:  # noqa: F811
    """A contributor asks; a worker elsewhere with an administrator's API key runs it:
    the run and its annotations are the contributor's (who may then edit them as
    their own), the worker's account and name are recorded as the executor."""
    from microtome_client import BadRequest

    from tests.client.conftest import PASSWORD, unique

    project = c.project(ready_images["project"])
    name = unique("asker")
    asker = c.create_user(name, PASSWORD)
    project.add_member(name, "contributor")
    admin = c.me()
    with Client(live_server.url, username=name, password=PASSWORD) as mine:
        image = mine.image(ready_images["CMU-1-Small-Region.svs"])
        with pytest.raises(BadRequest) as bad:
            image.analyse("tissue_detection", project=10**9)
        assert "project" in bad.value.detail["fields"]
        a = image.analyse("tissue_detection", {"min_area": 5000})
        assert a.user_id == asker.id and a.project_id == project.id
        assert a.executor_id is None and a.executor is None
        assert main(["worker", "--server", live_server.url, "--api-key",
                     live_server.api_key, "--once", "--apps", "tissue_detection",
                     "--name", "remote-1"]) == 0
        done = mine.analysis(a.id)
        assert done.status == "done" and done.result_count >= 1
        assert done.user_id == asker.id and done.project_id == project.id
        assert done.executor_id == admin.id and done.executor == "remote-1"
        rows = _sql(live_server, "SELECT id, user_id, project_id FROM annotations"
                    " WHERE analysis_id = $1", a.id)
        assert {(r["user_id"], r["project_id"]) for r in rows} == {(asker.id, project.id)}
        # A contributor edits only their own annotations: these are theirs.
        mine.annotation(rows[0]["id"]).delete()
        done.delete()


def test_pixel_classifier_learns_from_drawn_annotations_on_the_server(
        live_server: LiveServer, c: Any, tmp_path: Any) -> None:  # noqa: F811
    """The synthetic image with known classes, uploaded; polygons drawn with terms in a
    project; the worker (a child process reading through HTTP) learns them and writes
    the classes back as annotations with those terms, in that project."""
    import numpy as np
    import tifffile
    from shapely import contains_xy
    from shapely.geometry import shape

    from tests.analysis.test_pixels import DRAWN, FAST, SHAPE, image, truth
    from tests.client.conftest import unique

    tifffile.imwrite(tmp_path / "classes.tif", image(), photometric="rgb", tile=(256, 256),
                     compression="jpeg", compressionargs={"level": 95})  # → RGB kind
    project = c.create_project(unique("pixels"))
    (up,) = c.upload([tmp_path / "classes.tif"], project=project.id, progress=False,
                     state_file=tmp_path / "state.json")
    assert up.ok, up.error
    img = c.image(up.image.id)
    terms = {t.name: project.create_term(t.name, t.color)
             for t in {d.terms[0] for d in DRAWN}}
    for d in DRAWN:
        img.create_annotation(d.geometry, terms=[terms[d.terms[0].name].id], project=project.id)
    a = img.analyse("pixel_classifier", {"resolution": 1, "sigma_max": 4, **FAST,
                                         "terms": [terms["Tumour"].id, terms["Stroma"].id,
                                                   terms["Glass"].id]})
    assert run_worker(live_server.url, live_server.api_key, ["pixel_classifier"],
                      once=True) == 0
    done = c.analysis(a.id)
    assert done.status == "done", (done.error, done.log)
    by_id = {t.id: n for n, t in terms.items()}
    labels = np.zeros(SHAPE, np.uint8)
    ys, xs = np.mgrid[:SHAPE[0], :SHAPE[1]] + 0.5
    code = {"Glass": 1, "Stroma": 2, "Tumour": 3}
    results = [r for r in img.annotations(project=project.id)
               if r.properties.get("analysis_id") == a.id]
    assert len(results) == done.result_count
    for r in results:
        (tid,) = r.properties["terms"]
        labels[contains_xy(shape(r.geometry), xs, ys)] = code[by_id[tid]]
    assert (labels == truth()).mean() >= 0.98
