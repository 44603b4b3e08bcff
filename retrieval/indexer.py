"""Background indexing: describe the queued annotations in batches, off the request path.

`retrieval_queue` is filled by statement-level triggers (migration 0150), so
an import of 100k annotations pays one INSERT … SELECT per statement and is
never slowed by descriptors; this module empties the queue afterwards.
Any number of indexers share the queue (each `serve` process, `microtome
reindex`): a batch is leased (`claimed_until`, migration 0160) with
FOR UPDATE SKIP LOCKED, so two never describe the same rows, and the lease of
a process that died expires so its rows are taken again.

Pyramids are opened here, not through the tile server's `PixelSource`: that
one checks a request's credentials, and the indexer acts for nobody; reads
and CPU run on the indexer's own threads (one by default) so that indexing
never takes the tile threads from interactive users.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg

from microtome.catalog.db import unavailable
from microtome.catalog.storage import pyramid_path
from microtome.pyramid.errors import MicrotomeError
from microtome.pyramid.reader import Pyramid, open_pyramid

from . import index, service
from .descriptors import FAMILY

log = logging.getLogger("microtome.retrieval.indexer")

#: Annotations claimed (and stored) per batch: one round-trip each way per batch.
BATCH = 64
#: A claimed batch not stored within this many seconds is claimed again.
LEASE_S = 300
#: Seconds between looks at an empty queue.
IDLE_S = 1.0
#: Seconds to wait after a database error before trying again.
RETRY_S = 5.0
#: Opened pyramids kept (a batch usually covers one or two images).
OPEN_IMAGES = 8


async def claim(conn: index.Conn, batch: int = BATCH, project_id: int | None = None,
                lease_s: float = LEASE_S) -> list[asyncpg.Record]:
    """Lease up to `batch` queued annotations of ready images (optionally of one
    project), with what describing them needs."""
    args: list[Any] = [batch, lease_s]
    project = ""
    if project_id is not None:
        args.append(project_id)
        project = "AND a2.project_id = $3"
    return await conn.fetch(
        f"""WITH picked AS (
                SELECT q2.annotation_id FROM retrieval_queue q2
                JOIN annotations a2 ON a2.id = q2.annotation_id
                JOIN images i2 ON i2.id = a2.image_id AND i2.status = 'ready'
                WHERE (q2.claimed_until IS NULL OR q2.claimed_until < now()) {project}
                ORDER BY q2.annotation_id LIMIT $1
                FOR UPDATE OF q2 SKIP LOCKED)
            UPDATE retrieval_queue q
               SET claimed_until = now() + make_interval(secs => $2)
            FROM picked, annotations a, images i
            WHERE q.annotation_id = picked.annotation_id AND a.id = q.annotation_id
              AND i.id = a.image_id
            RETURNING a.id, a.image_id, a.geom, a.updated_at, i.pixel_size_um, i.storage_path""",
        *args)


async def queued(conn: index.Conn, project_id: int | None = None) -> int:
    """How many annotations wait to be described (of one project, or all)."""
    if project_id is None:
        return int(await conn.fetchval("SELECT count(*) FROM retrieval_queue"))
    return int(await conn.fetchval(
        """SELECT count(*) FROM retrieval_queue q JOIN annotations a ON a.id = q.annotation_id
           WHERE a.project_id = $1""", project_id))


async def requeue(conn: index.Conn, project_id: int | None = None) -> int:
    """Queue every annotation (of one project) to be described again; returns how many."""
    where, args = ("WHERE project_id = $1", [project_id]) if project_id is not None else ("", [])
    status = await conn.execute(
        f"""INSERT INTO retrieval_queue (annotation_id, updated_at)
            SELECT id, updated_at FROM annotations {where}
            ON CONFLICT (annotation_id) DO UPDATE
                SET updated_at = EXCLUDED.updated_at, claimed_until = NULL""", *args)
    return int(status.rsplit(" ", 1)[-1])


class Indexer:
    """Describes queued annotations of `images_dir` on `threads` threads of its own."""

    def __init__(self, pool: asyncpg.Pool, images_dir: Path, threads: int = 1,
                 batch: int = BATCH, remote: str | None = None) -> None:
        """`remote`: the object-store URL images live under, when not on local disk."""
        self.pool, self.images_dir, self.batch, self.remote = pool, images_dir, batch, remote
        self.threads = max(1, threads)
        self.executor = ThreadPoolExecutor(self.threads, thread_name_prefix="retrieval-index")
        self._opened: OrderedDict[Path | str, Pyramid] = OrderedDict()

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _open(self, image_id: int, storage_path: str | None) -> Pyramid:
        path = pyramid_path(self.images_dir, image_id, storage_path, self.remote)
        pyr = self._opened.get(path)
        if pyr is None:
            pyr = await self._run(open_pyramid, path)
            self._opened[path] = pyr
            while len(self._opened) > OPEN_IMAGES:
                self._opened.popitem(last=False)
        self._opened.move_to_end(path)
        return pyr

    async def run_once(self, project_id: int | None = None) -> int:
        """Claim one batch, describe and store it; returns how many were claimed."""
        rows = await claim(self.pool, self.batch, project_id)
        by_image: dict[int, list[asyncpg.Record]] = defaultdict(list)
        for r in rows:
            by_image[r["image_id"]].append(r)
        for image_id, group in by_image.items():
            try:
                pyr = await self._open(image_id, group[0]["storage_path"])
            except MicrotomeError as e:
                # Pixels gone or damaged: the lease expires and a later pass retries.
                log.warning("cannot describe annotations of image %s: %s", image_id, e)
                continue
            parts = [group[i::self.threads] for i in range(min(self.threads, len(group)))]
            described = await asyncio.gather(
                *(self._run(service.describe_many, pyr, part) for part in parts))
            await index.store(self.pool, FAMILY, [d for part in described for d in part])
        return len(rows)

    async def run_forever(self, idle_s: float = IDLE_S) -> None:
        """Drain the queue as it fills, until cancelled."""
        while True:
            try:
                if await self.run_once() == 0:
                    await asyncio.sleep(idle_s)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                # Keep indexing through a database restart or one bad batch.
                if unavailable(e):
                    log.warning("retrieval indexing paused: database unavailable")
                else:
                    log.exception("retrieval indexing batch failed")
                await asyncio.sleep(RETRY_S)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self._opened.clear()
