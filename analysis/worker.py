"""`microtome worker --server URL --api-key KEY`: run queued analyses anywhere.

The worker needs only HTTP access and an administrator's API key (no
database credentials). It claims the oldest queued analysis of an app it has
installed, reads pixels through the client, heart-beats progress and log
lines (a background thread, so a long step does not look like a dead
worker), writes the results while the app runs, in batches of at most
``runner.BATCH_SIZE`` objects, with the client's bulk GeoJSON import tagged
``producer = analysis:<id>/<attempt>`` (results.py: the worker's memory does not
grow with the number of objects), and finishes the analysis, which links them.
Cancelled on the server or past the app's timeout: the run stops at its next
``ctx.check()`` and the batches it wrote are removed.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from .errors import AnalysisError
from .registry import App, available_apps, get_app
from .results import BatchImporter, discard, producer
from .runner import BATCH_SIZE, Cancelled, Region, stream_app

HEARTBEAT_S = 10.0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "worker", help="run queued analyses for a server (HTTP only)",
        description="Claim queued analyses from a Microtome server and run them here. "
                    "Needs an administrator's API key; MICROTOME_URL / MICROTOME_API_KEY "
                    "are not read: pass --server and --api-key.")
    p.add_argument("--server", required=True, metavar="URL")
    p.add_argument("--api-key", required=True, metavar="KEY",
                   help="an administrator's API key; - reads it from standard input")
    p.add_argument("--apps", default=None, metavar="NAME[,NAME...]",
                   help="only these apps (default: every installed app)")
    p.add_argument("--wait", type=float, default=20.0, metavar="S",
                   help="long-poll: each claim waits up to S seconds on the server for an "
                        "analysis to be queued, and starts it at once (default 20; 0 = poll)")
    p.add_argument("--poll", type=float, default=1.0, metavar="S",
                   help="with --wait 0: seconds between claims when the queue is empty")
    p.add_argument("--once", action="store_true",
                   help="run at most one analysis, then exit (scripts, tests)")
    p.add_argument("--name", default=None, help="worker name shown in the analysis log")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, metavar="N",
                   help="threads per analysis for apps that work tile by tile "
                        "(default: all cores)")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="run the analyses on this dask.distributed cluster "
                        "(default: MICROTOME_DASK_SCHEDULER, else here)")
    p.set_defaults(func=run_worker_cli)


class Heartbeat:
    """Reports progress and log lines every HEARTBEAT_S seconds from a thread;
    remembers when the server says the analysis was cancelled."""

    def __init__(self, client: Any, analysis_id: int, timeout_s: float,
                 every: float = HEARTBEAT_S) -> None:
        self.client, self.id, self.every = client, analysis_id, every
        self.deadline = time.monotonic() + timeout_s
        self.progress_value = 0.0
        self.pending: list[str] = []
        self.cancelled = False
        #: The analysis no longer exists (deleted, or its image was): stop like a cancel.
        self.gone = False
        self.timed_out = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def progress(self, f: float) -> None:
        self.progress_value = f

    def log(self, line: str) -> None:
        with self._lock:
            self.pending.append(line)

    def should_stop(self) -> bool:
        if time.monotonic() > self.deadline:
            self.timed_out = True
        return self.cancelled or self.timed_out

    def flush(self) -> str:
        with self._lock:
            text = "".join(f"{line}\n" for line in self.pending)
            self.pending.clear()
        return text

    def beat(self) -> None:
        from microtome_client import NotFound

        try:
            a = self.client.report_analysis(self.id, self.progress_value, self.flush())
        except NotFound:
            self.gone = self.cancelled = True
            return
        self.cancelled = a.status == "cancelled"

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.beat()
            except Exception as e:  # the server may be restarting; the next beat retries
                print(f"heart-beat failed: {e}", file=sys.stderr)


def process(client: Any, analysis: Any, installed: dict[str, App],
            heartbeat_s: float = HEARTBEAT_S, threads: int = 1,
            server: tuple[str, str] | None = None,
            cluster: tuple[str, str] | None = None, batch_size: int = BATCH_SIZE) -> str:
    """Run one claimed analysis to its end; returns its final status.

    With ``server`` (URL, API key) the app runs in a child process that is
    killed past the app's timeout (see isolated.py); without, in this thread,
    stopped at its next ``ctx.check()``. With ``cluster`` (URL, API key; this
    runs inside a dask.distributed task, see dask_exec.py) the app's tiles go to
    the cluster's workers, each reading its pixels from the server itself.
    Results are imported ``batch_size`` objects at a time while the app runs.
    """
    from .descriptor import validate_params
    from .isolated import ChildFailed, Job, TimedOut, run_isolated

    try:
        app = get_app(analysis.app, analysis.version, installed)
    except AnalysisError as e:
        return client.finish_analysis(analysis.id, "failed", error=e.message,
                                      attempt=analysis.attempts).status
    timeout = app.descriptor.timeout
    project_id = getattr(analysis, "project_id", None)
    importer: BatchImporter | None = None
    with Heartbeat(client, analysis.id, timeout, heartbeat_s) as hb, \
            tempfile.TemporaryDirectory(prefix="microtome-worker-") as tmp:
        try:
            params = validate_params(app.descriptor, analysis.params)
            image = client.image(analysis.image_id)
            # Into the project the run was asked in; the server gives the results
            # to the person who asked when it links them (finish).
            importer = BatchImporter(image, producer(analysis.id, analysis.attempts),
                                     project_id, Path(tmp))
            results = Path(tmp) / "results"  # batch files' prefix; a trained model beside
            if server is not None:
                job = Job(app, server[0], server[1], analysis.image_id, params,
                          analysis.region, str(results), max(1, threads),
                          project_id, analysis.id, batch_size)
                count, seconds = run_isolated(job, hb, timeout, importer.import_file)
            else:
                count, seconds = _in_thread(app, image, params, analysis.region, hb,
                                            threads, importer, project_id, cluster,
                                            batch_size, client, analysis.id, results)
            _upload_model(client, analysis, results, hb)
            hb.log(f"{count} objects in {seconds:.1f} s ({importer.batches} batches)")
            return client.finish_analysis(analysis.id, "done", log=hb.flush(),
                                          attempt=analysis.attempts).status
        except (Cancelled, TimedOut) as e:
            if isinstance(e, TimedOut) or hb.timed_out:
                msg = e.message if isinstance(e, TimedOut) else f"timed out after {timeout:g} s"
                hb.log(f"{msg}: the app was stopped")
                return _fail(client, analysis, msg, hb.flush(), "")
            discard(client, analysis.id, analysis.attempts)
            return "gone" if hb.gone else "cancelled"
        except Exception as e:
            if hb.gone:  # the analysis or its image was deleted: nothing to report
                discard(client, analysis.id, analysis.attempts)
                return "gone"
            msg = e.message if isinstance(e, AnalysisError) else f"{type(e).__name__}: {e}"
            trace = e.trace if isinstance(e, ChildFailed) else traceback.format_exc()
            if importer is not None and importer.batches:
                hb.log(f"{importer.count} objects written in {importer.batches} batches "
                       "before the failure: removed")
            return _fail(client, analysis, msg, hb.flush(), trace)


def _in_thread(app: App, image: Any, params: dict[str, Any], region: dict[str, int] | None,
               hb: Heartbeat, threads: int, sink: BatchImporter, project_id: int | None = None,
               cluster: tuple[str, str] | None = None, batch_size: int = BATCH_SIZE,
               client: Any = None, analysis_id: int | None = None,
               results: Path | None = None) -> tuple[int, float]:
    from contextlib import nullcontext

    from .remote import ClientRaster, model_loader, model_path, project_terms
    from .training import from_client

    if cluster is not None:
        from distributed import worker_client

        # Leaves this task's thread to the cluster while the tiles run there.
        scope: Any = worker_client()
    else:
        scope = nullcontext()
    with scope as dask:
        prov = stream_app(app, ClientRaster(image, cluster), params, sink,
                          Region(**region) if region else None, batch_size,
                          on_progress=hb.progress, on_log=hb.log,
                          should_stop=hb.should_stop, workers=max(1, threads),
                          annotations=lambda: from_client(image, project_id), dask=dask,
                          load_model=model_loader(client),
                          terms=project_terms(image, project_id),
                          on_model=(model_path(results).write_bytes if results is not None
                                    else lambda data: None),
                          source={"image_id": image.id, "analysis_id": analysis_id,
                                  "project_id": project_id})
    return int(prov["count"]), float(prov["seconds"])


def _upload_model(client: Any, analysis: Any, results: Path, hb: Heartbeat) -> None:
    """A model the run trained becomes the analysis' model (before finishing: the
    server takes it only from the running attempt). A refused upload (too large)
    is logged; the results still count."""
    from .remote import model_path

    path = model_path(results)
    if not path.exists():
        return
    from microtome_client import APIError

    try:
        client.upload_analysis_model(analysis.id, path.read_bytes(), attempt=analysis.attempts)
    except APIError as e:
        hb.log(f"the model was not saved: {e}")


def _fail(client: Any, analysis: Any, msg: str, log: str, trace: str) -> str:
    try:
        return str(client.finish_analysis(analysis.id, "failed", error=msg, log=log,
                                          traceback=trace, attempt=analysis.attempts).status)
    except Exception as e2:  # e.g. cancelled or deleted meanwhile: nothing to keep
        print(f"analysis {analysis.id}: {e2}", file=sys.stderr)
        return "failed"


def run_worker(url: str, api_key: str, apps: list[str] | None = None, *, once: bool = False,
               poll: float = 1.0, name: str | None = None, threads: int = 1,
               stop: threading.Event | None = None, wait: float = 20.0,
               isolate: bool = True) -> int:
    from microtome_client import Client

    installed = available_apps()
    if apps:
        missing = sorted(set(apps) - set(installed))
        if missing:
            print(f"error: apps not installed here: {', '.join(missing)}", file=sys.stderr)
            return 2
        installed = {k: v for k, v in installed.items() if k in apps}
    name = name or f"{socket.gethostname()}:{os.getpid()}"
    stop = stop or threading.Event()
    with Client(url, api_key=api_key) as client:
        while not stop.is_set():
            # A long-poll: the server answers as soon as an analysis is queued
            # (LISTEN/NOTIFY there), so an idle worker starts within a second.
            analysis = client.claim_analysis(sorted(installed), worker=name,
                                             wait=0.0 if once else wait)
            if analysis is None:
                if once:
                    return 0
                stop.wait(poll if wait <= 0 else 0.05)
                continue
            status = process(client, analysis, installed, threads=threads,
                             server=(url, api_key) if isolate else None)
            print(f"analysis {analysis.id} ({analysis.app}): {status}", file=sys.stderr)
            if once:
                return 0 if status == "done" else 1
    return 0


def run_worker_cli(args: argparse.Namespace) -> int:
    apps = [a.strip() for a in args.apps.split(",") if a.strip()] if args.apps else None
    # "-": the key arrives on stdin (the local workers of `serve`), not on the
    # command line where every local user could read it.
    key = sys.stdin.readline().strip() if args.api_key == "-" else args.api_key
    try:
        from microtome.core.settings import dask_scheduler_from_env

        scheduler = getattr(args, "scheduler", None) or dask_scheduler_from_env()
        if scheduler:  # scale-out hook: analysis/dask_exec.py
            from .dask_exec import run_on_cluster

            return run_on_cluster(scheduler, args.server, key, apps, once=args.once,
                                  poll=args.poll, name=args.name, threads=args.threads)
        return run_worker(args.server, key, apps, once=args.once, poll=args.poll,
                          name=args.name, threads=args.threads, wait=args.wait)
    except Exception as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
