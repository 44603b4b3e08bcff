"""Conversion jobs on a dask.distributed cluster (``MICROTOME_DASK_SCHEDULER``).

The job queue, leases and publication stay as they are (catalog.worker, in
PostgreSQL); only the heavy part moves: the worker hands the conversion the
scheduler's address (``ConvertOptions.scheduler``, as ``microtome convert
--scheduler`` does), the converter sends subtrees of the pyramid to the
cluster's workers and builds the top itself.  Cluster workers read the source
and write the attempt's folder at the same paths, so the data directory must
be shared (one host, or a shared file system mounted at the same path).

A scheduler that cannot be reached fails the attempt as a transient error
(re-queued with backoff, like any other), and is reported once at start-up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from microtome.pyramid.optional import require

log = logging.getLogger("microtome.catalog.dask_jobs")

#: Seconds to wait for the scheduler when checking it at start-up.
CONNECT_TIMEOUT_S = 10.0


def with_scheduler(options: dict[str, Any] | None, scheduler: str | None) -> dict[str, Any] | None:
    """The job's conversion options, sent to `scheduler` when one is configured
    (a scheduler named by the job itself wins: e.g. an admin's re-run)."""
    if not scheduler:
        return options
    out = dict(options or {})
    out.setdefault("scheduler", scheduler)
    return out


def _workers_sync(address: str, timeout: float) -> int:
    Client = require("distributed", "cluster").Client

    with Client(address, timeout=f"{timeout}s") as client:
        return len(client.scheduler_info().get("workers", {}))


async def check_scheduler(address: str, connect_s: float = CONNECT_TIMEOUT_S) -> int:
    """Workers the scheduler has now; RuntimeError naming the address when unreachable."""
    try:
        return await asyncio.to_thread(_workers_sync, address, connect_s)
    except Exception as exc:  # OSError, TimeoutError, distributed's own
        raise RuntimeError(f"cannot reach the dask scheduler {address}: {exc}") from exc


async def report(address: str | None) -> None:
    """At start-up: say where conversions run (a warning if the cluster is not there)."""
    if not address:
        return
    try:
        n = await check_scheduler(address)
    except RuntimeError as exc:
        log.warning("%s; conversions will be retried until it is", exc)
        return
    log.info("conversions run on the dask cluster %s (%d workers now)", address, n)
