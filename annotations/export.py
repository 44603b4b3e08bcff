"""Exports of the annotation table's current filter: CSV, GeoJSON, Excel (.xlsx).

CSV is written by PostgreSQL itself (COPY … TO STDOUT, CSV quoting done by
the server) and streamed to the client as it comes: hundreds of thousands
of rows per second, constant memory.  GeoJSON walks the rows by id in
batches (geometries encoded in the executor).  The .xlsx is written batch by
batch into a temporary file in the executor (`annotations.xlsx`), then sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

import asyncpg

from . import geojson_io, store
from .geometry import SHIFT
from .query import STATUS_SQL, Filters, conditions
from .table import Scope
from .xlsx import XlsxWriter

FORMATS = ("csv", "geojson", "xlsx")
BATCH = 5000
CHUNK = 256 * 1024

#: CSV / Excel columns, in order (names kept from the viewer's former client-side CSV).
#: The centroid is the bounding box's centre, rounded to whole level-0 pixels
#: (numeric rounding to 0.1 px was a quarter of the export's cost).
COLUMNS = ("id", "image_id", "project_id", "kind", "term", "author", "analysis_id", "area_um2",
           "perimeter_um", "area_px", "perimeter_px", "centroid_x_px", "centroid_y_px",
           "created_at", "review_status", "reviewed_by", "reviewed_at", "review_reason",
           "properties")

_SELECT = f"""a.id, a.image_id, a.project_id, a.kind,
    CASE cardinality(a.term_ids) WHEN 0 THEN NULL WHEN 1 THEN t1.name
         ELSE (SELECT string_agg(t.name, '; ' ORDER BY t.name) FROM terms t
               WHERE t.id = ANY(a.term_ids)) END AS term,
    u.username AS author, a.analysis_id, a.area_um2, a.perimeter_um, a.area_px, a.perimeter_px,
    round(((a.sbox[0])[0] + (a.sbox[1])[0]) / 2 - a.image_id * {SHIFT}::float8)::bigint
        AS centroid_x_px,
    round(((a.sbox[0])[1] + (a.sbox[1])[1]) / 2)::bigint AS centroid_y_px,
    a.created_at, {STATUS_SQL} AS review_status, r.username AS reviewed_by, a.reviewed_at,
    a.review_reason, a.properties::text AS properties"""
#: One term (nearly every annotation) by a join, not a sub-query per row.
_FROM = """FROM annotations a LEFT JOIN users u ON u.id = a.user_id
    LEFT JOIN users r ON r.id = a.reviewed_by LEFT JOIN terms t1 ON t1.id = a.term_ids[1]"""


def _where(scope: Scope, f: Filters, args: list[Any]) -> str:
    return " AND ".join([scope.sql(args), *conditions(f, args)])


async def csv_stream(conn: asyncpg.Connection, scope: Scope, f: Filters,
                     write: Callable[[bytes], Awaitable[None]]) -> None:
    """The CSV of the matches, by id, with a header line, passed to `write` in pieces."""
    args: list[Any] = []
    where = _where(scope, f, args)
    # COPY hands over a message per row or so: gather them into writes of
    # about CHUNK bytes (one await per row would cost more than the row).
    buf = bytearray()

    async def sink(data: bytes) -> None:
        buf.extend(data)
        if len(buf) >= CHUNK:
            await write(bytes(buf))
            buf.clear()

    await conn.copy_from_query(
        f"SELECT {_SELECT} {_FROM} WHERE {where} ORDER BY a.id", *args,
        output=sink, format="csv", header=True)
    if buf:
        await write(bytes(buf))


async def rows_by_id(conn: asyncpg.Connection, scope: Scope, f: Filters, cols: str,
                     batch: int = BATCH) -> AsyncIterator[list[asyncpg.Record]]:
    """The matches in batches, walking ids (keyset), each batch one query."""
    after = 0
    while True:
        args: list[Any] = []
        where = _where(scope, f, args)
        args += [after, batch]
        rows = await conn.fetch(
            f"SELECT {cols} {_FROM} WHERE {where} AND a.id > ${len(args) - 1}"
            f" ORDER BY a.id LIMIT ${len(args)}", *args)
        if not rows:
            return
        yield rows
        after = rows[-1]["id"]


async def geojson_chunks(conn: asyncpg.Connection, scope: Scope, f: Filters,
                         term_info: dict[int, tuple[str, str]], executor: Executor
                         ) -> AsyncIterator[bytes]:
    """A QuPath-compatible FeatureCollection (as the image export) of the matches."""
    loop = asyncio.get_running_loop()
    yield b'{"type": "FeatureCollection", "features": [\n'
    first = True
    async for rows in rows_by_id(conn, scope, f, store.COLS):
        body = await loop.run_in_executor(executor, geojson_io.export_features, rows, term_info)
        yield (b"" if first else b",\n") + body
        first = False
    yield b"\n]}\n"


async def xlsx_file(conn: asyncpg.Connection, scope: Scope, f: Filters, executor: Executor
                    ) -> Any:
    """A temporary file holding the .xlsx of the matches (the caller closes it)."""
    loop = asyncio.get_running_loop()
    writer = await loop.run_in_executor(executor, XlsxWriter, list(COLUMNS))
    try:
        async for rows in rows_by_id(conn, scope, f, _SELECT):
            await loop.run_in_executor(executor, writer.rows, [tuple(r) for r in rows])
        return await loop.run_in_executor(executor, writer.finish)
    except BaseException:
        writer.abort()
        raise
