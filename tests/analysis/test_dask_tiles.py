"""Tiles of one analysis spread over a dask.distributed cluster (`--scheduler`):
each tile task reads its own pixels from the server (the raster travels as
URL, key and image id) and returns only its nuclei; same nuclei as a run here."""

from __future__ import annotations

from typing import Any

from microtome_client import Client

from microtome.analysis import get_app, run_app, validate_params
from microtome.analysis.remote import ClientRaster
from microtome.analysis.runner import Region
from tests.analysis.test_worker import _sql
from tests.client.conftest import LiveServer, live_server, ready_images  # noqa: F401
from tests.scaleout.test_dask import _tasks_run, cluster  # noqa: F401

REGION = (700, 1300, 600, 500)
PARAMS = {"tile_size": 256}


def test_nucleus_tiles_run_on_the_cluster(live_server: LiveServer,  # noqa: F811
                                          ready_images: dict[str, int],  # noqa: F811
                                          cluster: Any) -> None:  # noqa: F811
    from microtome.cli import main

    before = _tasks_run(cluster).get("call", 0)
    with Client(live_server.url, api_key=live_server.api_key) as c:
        image = c.image(ready_images["CMU-1-Small-Region.svs"])
        a = image.analyse("nucleus_detection", PARAMS, region=REGION)
        assert main(["worker", "--server", live_server.url, "--api-key", live_server.api_key,
                     "--once", "--apps", "nucleus_detection",
                     "--scheduler", cluster.scheduler_address]) == 0
        done = c.analysis(a.id)
        assert done.status == "done", (done.error, done.log)
        # 3 x 2 tiles of 256 px, tasks on the cluster (tiles._call; dask names the
        # prefix "call"; its counter counts task states, so at least one per tile).
        assert _tasks_run(cluster).get("call", 0) - before >= 6
        app = get_app("nucleus_detection")
        here, _ = run_app(app, ClientRaster(image), validate_params(app.descriptor, PARAMS),
                          Region(*REGION))
        assert done.result_count == len(here) > 20
        rows = _sql(live_server, "SELECT (properties->'measurements'->>'Centroid X px')::float8"
                    " AS x FROM annotations WHERE analysis_id = $1", a.id)
        assert sorted(round(r["x"], 3) for r in rows) == sorted(
            round(f.measurements["Centroid X px"], 3) for f in here)
        done.delete()
