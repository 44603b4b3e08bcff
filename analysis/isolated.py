"""Run one analysis in a child process the worker can kill.

An app that hangs (a C loop that never calls ``ctx.check()``, a dead lock)
cannot be stopped from inside its own process; the worker therefore runs it
in a spawned child that reads pixels through its own client, writes its
results in batches (GeoJSON files of at most ``runner.BATCH_SIZE`` objects,
as they are found) and sends their names, progress and log lines back on a
queue. The worker imports each batch as it arrives (tagged with the attempt,
unlinked until the run is done), keeps the heart-beat, and ends the child:
asked to stop when the analysis is cancelled (killed after a grace period),
killed at once past the app's timeout. Only the worker imports, so no import
is half way when the child is killed; the batches already imported are
removed by the worker's end of the run (`results.discard`, or finishing it
failed).
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import AnalysisError
from .registry import App
from .runner import BATCH_SIZE, Cancelled

#: Seconds a cancelled child gets to stop by itself before it is killed.
CANCEL_GRACE_S = 5.0
#: Seconds a child may take to start (imports, first request) before the app's
#: own timeout starts counting: a loaded machine must not eat the app's time.
STARTUP_S = 120.0


class TimedOut(AnalysisError):
    """The app ran past its descriptor's timeout and was killed."""


@dataclass(frozen=True)
class Job:
    """What the child needs, all picklable: the app object travels by reference
    to its class (an importable module), the server by URL and key."""

    app: App
    url: str
    api_key: str
    image_id: int
    params: dict[str, Any]
    region: dict[str, int] | None
    #: Prefix of the batch files the child writes (``<out>.<n>.geojson``).
    out: str
    threads: int
    #: The project the run was asked in: where its training annotations are read.
    project_id: int | None = None
    analysis_id: int | None = None
    #: Objects per batch file.
    batch_size: int = BATCH_SIZE


def _child(job: Job, out_q: Any, stop: Any) -> None:
    from microtome_client import Client

    from .features import write_geojson
    from .remote import ClientRaster, model_loader, model_path, project_terms
    from .runner import Region, stream_app
    from .training import from_client

    written = [0]

    def sink(batch: list[Any]) -> None:
        path = f"{job.out}.{written[0]}.geojson"
        write_geojson(Path(path), batch)
        written[0] += 1
        out_q.put(("batch", path, len(batch)))

    try:
        with Client(job.url, api_key=job.api_key) as client:
            image = client.image(job.image_id)
            raster = ClientRaster(image, (job.url, job.api_key))
            out_q.put(("started",))
            prov = stream_app(
                job.app, raster, job.params, sink, Region(**job.region) if job.region else None,
                job.batch_size,
                on_progress=lambda f: out_q.put(("progress", f)),
                on_log=lambda line: out_q.put(("log", line)),
                should_stop=stop.is_set, workers=job.threads,
                annotations=lambda: from_client(image, job.project_id),
                load_model=model_loader(client), terms=project_terms(image, job.project_id),
                on_model=model_path(job.out).write_bytes,
                source={"image_id": job.image_id, "analysis_id": job.analysis_id,
                        "project_id": job.project_id})
        out_q.put(("done", prov["count"], prov["seconds"]))
    except Cancelled:
        out_q.put(("cancelled",))
    except Exception as e:
        msg = e.message if isinstance(e, AnalysisError) else f"{type(e).__name__}: {e}"
        out_q.put(("error", msg, traceback.format_exc()))


class ChildFailed(AnalysisError):
    """The app raised in the child; ``trace`` is its traceback."""

    def __init__(self, message: str, trace: str) -> None:
        super().__init__(message)
        self.trace = trace


def run_isolated(job: Job, hb: Any, timeout_s: float,
                 on_batch: Callable[[str, int], None]) -> tuple[int, float]:
    """(result count, seconds) of `job` run in a child; each batch of results the
    child writes goes to ``on_batch(path, count)`` as it arrives.

    `hb` is the worker's heart-beat (``progress``, ``log``, ``cancelled``).
    Raises Cancelled, TimedOut, or ChildFailed with the child's traceback.
    """
    ctx = mp.get_context("spawn")  # no fork: the worker has threads (client, heart-beat)
    out_q = ctx.Queue()
    stop = ctx.Event()
    proc = ctx.Process(target=_child, args=(job, out_q, stop), daemon=True,
                       name=f"microtome-app-{job.app.descriptor.name}")
    deadline = time.monotonic() + STARTUP_S
    proc.start()
    stop_asked: float | None = None
    started = False
    try:
        while True:
            try:
                msg = out_q.get(timeout=0.2)
            except queue.Empty:
                msg = None
            if msg is not None:
                kind = msg[0]
                if kind == "started":  # the app's own time starts now
                    started = True
                    deadline = time.monotonic() + timeout_s
                elif kind == "progress":
                    hb.progress(msg[1])
                elif kind == "log":
                    hb.log(msg[1])
                elif kind == "batch":
                    if not hb.cancelled:
                        on_batch(msg[1], int(msg[2]))
                    Path(msg[1]).unlink(missing_ok=True)
                elif kind == "done":
                    return int(msg[1]), float(msg[2])
                elif kind == "cancelled":
                    raise Cancelled("analysis cancelled")
                elif kind == "error":
                    raise ChildFailed(msg[1], msg[2])
                continue
            now = time.monotonic()
            if now > deadline:
                raise TimedOut(f"timed out after {timeout_s:g} s" if started
                               else f"the app did not start within {STARTUP_S:g} s")
            if hb.cancelled and stop_asked is None:
                stop.set()
                stop_asked = now
            if stop_asked is not None and now - stop_asked > CANCEL_GRACE_S:
                raise Cancelled("analysis cancelled (the app was stopped)")
            if not proc.is_alive() and out_q.empty():
                raise AnalysisError(f"the app's process died (exit code {proc.exitcode})")
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(10)
        out_q.close()
