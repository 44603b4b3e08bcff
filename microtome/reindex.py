"""`microtome reindex [--project P]`: describe every annotation (of a project) again.

Queues the annotations, then drains the queue here with the same batches as the
background indexer of `serve` (both may run at once: batches are leased).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

import asyncpg

from microtome.admin import open_db
from microtome.core.settings import Settings, from_env


async def _project_id(pool: asyncpg.Pool, given: str) -> int | None:
    if given.isdigit():
        row = await pool.fetchval("SELECT id FROM projects WHERE id = $1", int(given))
        if row is not None:
            return int(row)
    row = await pool.fetchval("SELECT id FROM projects WHERE lower(name) = lower($1)", given)
    return None if row is None else int(row)


async def reindex(settings: Settings, project: str | None, threads: int, err: Any,
                  quiet: bool = False) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from microtome.retrieval import index, indexer
    from microtome.retrieval.web import DISABLED_MESSAGE

    pool = await open_db(settings)
    try:
        if not await index.has_vector(pool):
            err.print(f"error: {DISABLED_MESSAGE}")
            return 1
        project_id = None
        if project is not None:
            project_id = await _project_id(pool, project)
            if project_id is None:
                err.print(f"error: no project {project!r}")
                return 2
        total = await indexer.requeue(pool, project_id)
        work = indexer.Indexer(pool, settings.images_dir, threads, remote=(
            settings.storage.url if settings.storage else None))
        bar = Progress(TextColumn("describing"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                       console=err, disable=quiet or not err.is_terminal)
        done = 0
        try:
            with bar:
                task = bar.add_task("annotations", total=total)
                while n := await work.run_once(project_id):
                    done += n
                    bar.update(task, completed=min(done, total))
        finally:
            work.close()
        left = await indexer.queued(pool, project_id)
    finally:
        await pool.close()
    scope = "" if project_id is None else f" of project {project_id}"
    err.print(f"reindexed {total - left} of {total} annotations{scope}")
    if left:
        err.print(f"{left} could not be described now (image not ready or pixels unreadable); "
                  "the server's background indexing retries them")
        return 1
    return 0


def run_reindex(args: argparse.Namespace) -> int:
    from rich.console import Console

    err = Console(stderr=True, highlight=False)
    return asyncio.run(reindex(from_env(), args.project, args.threads, err, args.quiet))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("reindex", help="compute the retrieval descriptors of every annotation "
                                       "again")
    p.add_argument("--project", help="only this project (name or id)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="threads describing annotations (default: one per core)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_reindex)
