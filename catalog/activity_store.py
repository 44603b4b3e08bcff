"""The activity store: a batched, append-only writer and daily partitions with retention.

Viewers report their position every few seconds; thousands of them would be
thousands of INSERTs a second if each went on its own.  Events are queued in
memory (bounded: under overload the newest are counted and dropped rather
than slowing anything else) and written once a second with one INSERT of arrays.  The
table is partitioned by day: the retention drops whole partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from aiohttp import web

log = logging.getLogger("microtome.catalog.activity")

COLUMNS = ("at", "user_id", "image_id", "session_id", "kind", "x", "y", "w", "h", "detail")
_INSERT = (f"INSERT INTO activity_events ({', '.join(COLUMNS)})"
           " SELECT a, u, i, s, k, x, y, w, h, d::jsonb FROM unnest($1::timestamptz[],"
           " $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::real[], $7::real[],"
           " $8::real[], $9::real[], $10::text[]) AS t(a, u, i, s, k, x, y, w, h, d)")
_PART = re.compile(r"^activity_events_p(\d{8})$")
#: Days of partitions kept ready ahead of today (a clock jump or a quiet night
#: must never find the partition missing).
AHEAD_DAYS = 3


def partition_name(day: dt.date) -> str:
    return f"activity_events_p{day:%Y%m%d}"


#: pg_advisory_xact_lock key of partition creation ("mt-parts" in ASCII).
_PARTITION_LOCK = 0x6D742D7061727473


async def ensure_partitions(conn: asyncpg.Pool | asyncpg.Connection, today: dt.date,
                            ahead: int = AHEAD_DAYS) -> None:
    async with contextlib.AsyncExitStack() as stack:
        c = (await stack.enter_async_context(conn.acquire())
             if isinstance(conn, asyncpg.Pool) else conn)
        await stack.enter_async_context(c.transaction())
        # Two `serve` processes starting together would both find a partition
        # missing and one CREATE would fail ("already exists"): one at a time.
        await c.execute("SELECT pg_advisory_xact_lock($1)", _PARTITION_LOCK)
        for i in range(-1, ahead + 1):
            day = today + dt.timedelta(days=i)
            nxt = day + dt.timedelta(days=1)
            await c.execute(
                f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF activity_events"
                f" FOR VALUES FROM ('{day.isoformat()}') TO ('{nxt.isoformat()}')")


async def drop_expired(conn: asyncpg.Pool | asyncpg.Connection, today: dt.date,
                       retention_days: int) -> list[str]:
    """Drop the daily partitions wholly older than the retention; their names."""
    rows = await conn.fetch(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'activity_events'""")
    cutoff = today - dt.timedelta(days=retention_days)
    dropped = []
    for r in rows:
        m = _PART.match(r["relname"])
        if m and dt.datetime.strptime(m.group(1), "%Y%m%d").date() < cutoff:
            await conn.execute(f"DROP TABLE IF EXISTS {r['relname']}")
            dropped.append(r["relname"])
    return dropped


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@dataclass
class ActivityWriter:
    """Queue events; a background task writes them in batches."""

    pool: asyncpg.Pool
    max_pending: int = 200_000
    interval_s: float = 1.0
    pending: list[tuple[Any, ...]] = field(default_factory=list)
    dropped: int = 0
    written: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    #: One flush at a time: batches are written in order, and a caller's flush
    #: returns only once everything queued before it is stored.
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def add(self, kind: str, *, user_id: int | None, image_id: int | None,
            session_id: int | None = None, view: tuple[float, float, float, float] | None = None,
            detail: dict[str, Any] | None = None, at: dt.datetime | None = None) -> None:
        """Queue one event (never blocks; over the bound it is counted and dropped)."""
        if len(self.pending) >= self.max_pending:
            self.dropped += 1
            return
        x, y, w, h = view if view is not None else (None, None, None, None)
        self.pending.append((at or dt.datetime.now(dt.UTC), user_id, image_id, session_id,
                             kind, x, y, w, h,
                             orjson.dumps(detail).decode() if detail else None))

    async def flush(self) -> int:
        async with self._lock:
            return await self._flush()

    async def _flush(self) -> int:
        batch, self.pending = self.pending, []
        if not batch:
            return 0
        try:
            await self._copy(batch)
        except asyncpg.PostgresError as exc:
            # Most likely a day without its partition (a long-stopped maintenance).
            log.warning("activity batch failed (%s); creating partitions and retrying", exc)
            await ensure_partitions(self.pool, _utc_today())
            await self._copy(batch)
        self.written += len(batch)
        return len(batch)

    async def _copy(self, batch: list[tuple[Any, ...]]) -> None:
        # One statement per batch: each column as an array, unnested server-side
        # (detail travels as text and becomes jsonb there).
        cols = list(zip(*batch, strict=True))
        async with self.pool.acquire() as conn:
            await conn.execute(_INSERT, *cols)

    async def run(self) -> None:
        """Flush every `interval_s` until `stop`, then once more (never cancelled in
        the middle of a statement, which would lose the batch)."""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)
            try:
                await self.flush()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                    asyncpg.InternalClientError, TimeoutError) as exc:
                log.warning("activity events not written (database unavailable): %s", exc)

    def stop(self) -> None:
        self._stop.set()


ACTIVITY: web.AppKey[ActivityWriter] = web.AppKey("activity_writer", ActivityWriter)


def activity_context(pool_key: web.AppKey[asyncpg.Pool], retention_days: int):  # type: ignore[no-untyped-def]
    """cleanup_ctx: partitions ready, the batch writer and the daily maintenance running."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        pool = app[pool_key]
        await ensure_partitions(pool, _utc_today())
        writer = app[ACTIVITY] = ActivityWriter(pool)

        async def maintain() -> None:
            while True:
                # Start-up has just made today's partitions: the first round is due
                # in an hour (and does not race the start-up for pool connections).
                await asyncio.sleep(3600)
                try:
                    today = _utc_today()
                    await ensure_partitions(pool, today)
                    gone = await drop_expired(pool, today, retention_days)
                    if gone:
                        log.info("activity retention dropped %s", ", ".join(gone))
                except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                    log.warning("activity partition maintenance failed: %s", exc)

        runner, maintainer = asyncio.create_task(writer.run()), asyncio.create_task(maintain())
        try:
            yield
        finally:
            maintainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await maintainer
            writer.stop()  # the last batch is written before the pool closes
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runner, 10)

    return ctx
