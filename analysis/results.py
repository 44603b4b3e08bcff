"""Writing a run's objects to the server while it runs, one batch at a time.

`runner.stream_app` hands the objects over in batches; `BatchImporter` writes
each batch to a GeoJSON file and sends it through the client's bulk import
(the same path as any GeoJSON import), tagged ``producer =
analysis:<id>/<attempt>``. The batches stay unlinked (no ``analysis_id``)
until the worker finishes the analysis as done, which links all of them in
one transaction; any other end removes them on the server: a failed or timed
out run is finished "failed" (its rows deleted), a cancelled or deleted one
is told to the server again after the app stopped (`discard`: a late batch
is deleted with the Conflict / NotFound answer), a worker that died is
re-queued by the server with the dead attempt's rows deleted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .features import Feature, write_geojson


def producer(analysis_id: int, attempt: int) -> str:
    """The tag of one attempt's results (the server's ``api_analyses.producer``)."""
    return f"analysis:{analysis_id}/{attempt}"


class BatchImporter:
    """A `stream_app` sink: each batch imported at once, nothing kept in memory."""

    def __init__(self, image: Any, tag: str, project_id: int | None, folder: Path) -> None:
        self.image, self.tag, self.project_id, self.folder = image, tag, project_id, folder
        self.count = 0
        self.batches = 0
        #: The largest batch handed over (objects held at once by the sink).
        self.largest = 0

    def __call__(self, batch: Sequence[Feature]) -> None:
        path = self.folder / f"batch-{self.batches}.geojson"
        write_geojson(path, batch)
        self.import_file(path, len(batch))

    def import_file(self, path: str | Path, n: int) -> None:
        """Import one batch file (written here or by the app's child process), then
        remove it."""
        path = Path(path)
        try:
            self.image.import_annotations(path, producer=self.tag, project=self.project_id)
        finally:
            path.unlink(missing_ok=True)
        self.count += n
        self.batches += 1
        self.largest = max(self.largest, n)


def discard(client: Any, analysis_id: int, attempt: int) -> None:
    """After a cancel (or a delete) the app may have imported one more batch after the
    server removed the run's results: finishing the stale attempt makes the server
    delete whatever carries its tag (it answers Conflict or NotFound)."""
    from microtome_client import APIError

    try:
        client.finish_analysis(analysis_id, "failed", error="stopped", attempt=attempt)
    except APIError:
        pass  # the expected answer: the analysis is cancelled or gone; tagged rows removed
    except Exception as e:  # the server is unreachable: its re-queue/claim sweep removes them
        print(f"analysis {analysis_id}: could not discard partial results: {e}",
              file=sys.stderr)
