"""Heavy work on a dask.distributed cluster (a LocalCluster of 2 worker processes):
the catalog's conversion jobs with MICROTOME_DASK_SCHEDULER set, and analyses
claimed by `microtome worker --scheduler`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import DummyCookieJar

from tests.catalog.conftest import make_app, make_settings
from tests.client.conftest import LiveServer, live_server, ready_images  # noqa: F401


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, host="127.0.0.1") as lc:
        yield lc


def _tasks_run(cluster: Any) -> dict[str, int]:
    """Task prefixes the scheduler has seen and how many of each ran."""
    from distributed import Client

    with Client(cluster.scheduler_address) as c:
        return dict(c.run_on_scheduler(lambda dask_scheduler: {
            name: sum(p.state_counts.values())
            for name, p in dask_scheduler.task_prefixes.items()}))


async def test_conversion_job_runs_on_the_cluster(aiohttp_client: Any, tmp_path: Path,
                                                  database_url: str, cluster: Any,
                                                  testdata: Path) -> None:
    from microtome.catalog import jobs
    from microtome.catalog.db import DB_POOL

    before = sum(_tasks_run(cluster).values())
    settings = make_settings(tmp_path, database_url, job_workers=1,
                             dask_scheduler=cluster.scheduler_address)
    client = await aiohttp_client(make_app(settings), cookie_jar=DummyCookieJar())
    pool = client.app[DB_POOL]
    image_id = await pool.fetchval(
        "INSERT INTO images (name, status) VALUES ('cmu', 'pending') RETURNING id")
    await jobs.enqueue(pool, image_id=image_id,
                       source_path=str(testdata / "CMU-1-Small-Region.svs"))
    deadline = time.monotonic() + 120
    while (status := await pool.fetchval("SELECT status FROM images WHERE id = $1",
                                         image_id)) != "ready":
        assert status in ("pending", "converting"), await pool.fetchval(
            "SELECT error FROM jobs WHERE image_id = $1", image_id)
        assert time.monotonic() < deadline, "conversion did not finish in 120 s"
        await asyncio.sleep(0.5)
    # The pyramid's subtrees were built by the cluster's workers, not in the job worker.
    assert sum(_tasks_run(cluster).values()) > before
    assert (settings.images_dir / str(image_id) / "image.ome.zarr" / "zarr.json").exists()


def test_analysis_runs_on_the_cluster(live_server: LiveServer,  # noqa: F811
                                      ready_images: dict[str, int], cluster: Any) -> None:  # noqa: F811
    from microtome_client import Client

    from microtome.cli import main

    with Client(live_server.url, api_key=live_server.api_key) as c:
        image = c.image(ready_images["CMU-1-Small-Region.svs"])
        a = image.analyse("tissue_detection", {"min_area": 5000})
        assert main(["worker", "--server", live_server.url, "--api-key", live_server.api_key,
                     "--once", "--apps", "tissue_detection",
                     "--scheduler", cluster.scheduler_address]) == 0
        done = c.analysis(a.id)
        assert done.status == "done" and done.result_count >= 1
        assert f"dask:{cluster.scheduler_address}" in done.log
    assert _tasks_run(cluster).get("analysis", 0) >= 1  # keys analysis-<id>-<attempt>
