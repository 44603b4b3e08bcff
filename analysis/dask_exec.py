"""Analyses on a dask.distributed cluster: ``microtome worker --scheduler tcp://...``
(or ``MICROTOME_DASK_SCHEDULER``).

The worker process stays the only one that claims (an administrator's API
key, HTTP only); each claimed analysis then runs on a cluster worker, as the
plain worker would run it (``analysis.worker.process``: pixels read and
results written through the HTTP client, heartbeats from there), so nothing
but the server's URL and the key travel to the cluster.  At most as many
analyses run at once as the cluster has worker threads.  Inside an analysis,
apps that go tile by tile (`tiles.iter_tiles`: nucleus and positive cell
detection) spread their tiles over the cluster's workers: the analysis' task
leaves its thread to them (``worker_client``), each tile task reads its own
pixels from the server and sends back only its objects.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from microtome.pyramid.optional import require

from .registry import available_apps


def _run_remote(url: str, api_key: str, analysis_id: int, apps: list[str] | None,
                threads: int) -> str:
    """On a cluster worker: run one claimed analysis to its end; its final status."""
    from microtome_client import Client

    from .worker import process

    installed = available_apps()
    if apps:
        installed = {k: v for k, v in installed.items() if k in apps}
    with Client(url, api_key=api_key) as client:
        # The claim's record holds its client: fetch the analysis again here.
        # Its tiles go to the cluster too (tiles.iter_tiles): every cluster worker
        # reads its own pixels from the server.
        return process(client, client.analysis(analysis_id), installed, threads=threads,
                       cluster=(url, api_key))


def run_on_cluster(scheduler: str, url: str, api_key: str, apps: list[str] | None = None, *,
                   once: bool = False, poll: float = 1.0, name: str | None = None,
                   threads: int = 1, stop: threading.Event | None = None) -> int:
    """Claim analyses and run them on the cluster until stopped (or one, with `once`)."""
    distributed = require("distributed", "cluster")
    DaskClient, wait = distributed.Client, distributed.wait
    from microtome_client import Client

    installed = sorted(available_apps() if not apps else set(apps) & set(available_apps()))
    stop = stop or threading.Event()
    name = name or f"dask:{scheduler}"
    try:
        cluster = DaskClient(scheduler, timeout="10s")
    except Exception as exc:
        print(f"error: cannot reach the dask scheduler {scheduler}: {exc}", file=sys.stderr)
        return 1
    running: dict[Any, int] = {}
    failed = 0
    try:
        slots = max(1, sum(w.get("nthreads", 1) for w in
                           cluster.scheduler_info().get("workers", {}).values()))
        with Client(url, api_key=api_key) as client:
            while not stop.is_set():
                claimed = None
                if len(running) < slots and not (once and running):
                    claimed = client.claim_analysis(installed, worker=name)
                if claimed is not None:
                    fut = cluster.submit(_run_remote, url, api_key, claimed.id, apps, threads,
                                         pure=False, key=f"analysis-{claimed.id}-"
                                                         f"{claimed.attempts}")
                    running[fut] = claimed.id
                    continue
                if not running:
                    if once:
                        return 0
                    stop.wait(poll)
                    continue
                try:
                    done, _ = wait(list(running), timeout=poll, return_when="FIRST_COMPLETED")
                except TimeoutError:  # distributed.wait raises when nothing finished yet
                    continue
                for fut in done:
                    analysis_id = running.pop(fut)
                    try:
                        status = fut.result()
                    except Exception as exc:  # the cluster worker died: the lease expires
                        status = f"lost on the cluster ({exc!r})"
                    failed += status != "done"
                    print(f"analysis {analysis_id}: {status}", file=sys.stderr)
                if once and not running:
                    return 1 if failed else 0
    finally:
        cluster.close()
    return 0
