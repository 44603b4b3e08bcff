"""Annotation rows in PostgreSQL: insert (single and COPY), read, update, delete.

Queries by viewport live in `annotations.query`.  Geometries arrive here
already validated (`annotations.geometry.Prepared`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson
import shapely

from microtome.pyramid.errors import NotFound

from .geometry import SHIFT, ImageFrame, Prepared, check_frame, index_box

type Conn = asyncpg.Connection | asyncpg.Pool

#: Columns of a full annotation, `bbox` un-shifted back to image pixels.
COLS = (f"a.id, a.image_id, a.project_id, a.user_id, a.producer, a.kind, a.shape, a.geom, "
        f"a.sbox - point(a.image_id * {SHIFT}::float8, 0) AS bbox, a.n_vertices, a.area_px, "
        f"a.perimeter_px, a.area_um2, a.perimeter_um, a.term_ids, a.properties, a.created_at, "
        f"a.updated_at, a.analysis_id, a.review_status, a.reviewed_by, a.reviewed_at, "
        f"a.review_reason")

#: Column order of COPY records (see `record`).
COPY_COLUMNS = ("image_id", "project_id", "user_id", "producer", "kind", "shape", "geom", "sbox",
                "n_vertices", "area_px", "perimeter_px", "area_um2", "perimeter_um",
                "term_ids", "properties")


async def image_frame(conn: Conn, image_id: int) -> ImageFrame:
    row = await conn.fetchrow(
        "SELECT width, height, pixel_size_um FROM images WHERE id = $1", image_id)
    if row is None:
        raise NotFound("image not found")
    frame = ImageFrame(image_id, int(row["width"] or 0), int(row["height"] or 0),
                       row["pixel_size_um"] or None)
    check_frame(frame)
    return frame


def record(frame: ImageFrame, p: Prepared, *, project_id: int | None, user_id: int | None,
           producer: str | None, term_ids: Sequence[int], properties: dict[str, Any]
           ) -> tuple[Any, ...]:
    """One row in COPY_COLUMNS order."""
    return (frame.image_id, project_id, user_id, producer, p.kind, p.shape, p.wkb,
            index_box(frame.image_id, *p.bbox), p.n_vertices, p.area_px, p.perimeter_px,
            p.area_um2, p.perimeter_um, list(term_ids), properties)


def _jsonb_encode(value: Any) -> bytes:
    return b"\x01" + orjson.dumps(value)  # jsonb binary format: version 1 + text


def _jsonb_decode(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def _binary_jsonb(conn: asyncpg.Connection) -> None:
    """COPY needs binary codecs; the pool's jsonb codec is text (same Python values).

    Switching this connection to an equivalent binary codec keeps dict in / dict out.
    """
    await conn.set_type_codec("jsonb", schema="pg_catalog", encoder=_jsonb_encode,
                              decoder=_jsonb_decode, format="binary")


async def insert_many(conn: asyncpg.Connection, records: Sequence[tuple[Any, ...]]) -> list[int]:
    """Insert rows with COPY; returns their ids in order.

    Ids are taken from the identity sequence up front (one round trip) so
    the caller knows them without a RETURNING per row.
    """
    if not records:
        return []
    ids: list[int] = [r[0] for r in await conn.fetch(
        "SELECT nextval(pg_get_serial_sequence('annotations', 'id')) FROM generate_series(1, $1)",
        len(records))]
    await _binary_jsonb(conn)
    await conn.copy_records_to_table(
        "annotations", columns=("id", *COPY_COLUMNS),
        records=[(i, *r) for i, r in zip(ids, records, strict=True)])
    return ids


async def add_density(conn: asyncpg.Connection, image_id: int,
                      cells: tuple[Sequence[int], Sequence[int], Sequence[int], Sequence[int],
                                   Sequence[float], Sequence[float]]) -> None:
    """Add (cell, gx, gy, n, sum x, sum y) columns to the image's density cells: what
    the insert trigger does, for imports that set microtome.density_by_caller."""
    await conn.execute(
        """INSERT INTO annotation_density AS d (image_id, cell, gx, gy, n, sx, sy)
           SELECT $1, c.* FROM unnest($2::int[], $3::int[], $4::int[], $5::bigint[],
                                      $6::float8[], $7::float8[]) AS c
           ON CONFLICT (image_id, cell, gx, gy) DO UPDATE
              SET n = d.n + EXCLUDED.n, sx = d.sx + EXCLUDED.sx, sy = d.sy + EXCLUDED.sy""",
        image_id, *cells)


async def get(conn: Conn, annotation_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(f"SELECT {COLS} FROM annotations a WHERE a.id = $1",
                              annotation_id)
    if row is None:
        raise NotFound("annotation not found")
    return row


async def update(conn: Conn, annotation_id: int, *, frame: ImageFrame,
                 prepared: Prepared | None, term_ids: Sequence[int] | None,
                 properties: dict[str, Any] | None, reset_review: bool = False
                 ) -> asyncpg.Record:
    sets = ["updated_at = now()"]
    if reset_review:
        # A reviewed annotation whose content its author changed is pending again.
        sets += ["review_status = NULL", "reviewed_by = NULL", "reviewed_at = NULL",
                 "review_reason = NULL"]
    args: list[Any] = [annotation_id]
    if prepared is not None:
        p = prepared
        for col, val in (("kind", p.kind), ("shape", p.shape), ("geom", p.wkb),
                         ("sbox", index_box(frame.image_id, *p.bbox)),
                         ("n_vertices", p.n_vertices), ("area_px", p.area_px),
                         ("perimeter_px", p.perimeter_px), ("area_um2", p.area_um2),
                         ("perimeter_um", p.perimeter_um)):
            args.append(val)
            sets.append(f"{col} = ${len(args)}")
    if term_ids is not None:
        args.append(list(term_ids))
        sets.append(f"term_ids = ${len(args)}")
    if properties is not None:
        args.append(properties)
        sets.append(f"properties = ${len(args)}")
    await conn.execute(f"UPDATE annotations SET {', '.join(sets)} WHERE id = $1", *args)
    return await get(conn, annotation_id)


async def delete_many(conn: Conn, ids: Sequence[int]) -> int:
    status = await conn.execute("DELETE FROM annotations WHERE id = ANY($1::bigint[])", list(ids))
    return int(status.split()[-1])


def bbox_of(row: asyncpg.Record) -> list[float]:
    """[x0, y0, x1, y1] of a row's `bbox` column (asyncpg Box: high, low)."""
    b = row["bbox"]
    return [b.low.x, b.low.y, b.high.x, b.high.y]


def feature(row: asyncpg.Record, geometry_json: str | None = None) -> dict[str, Any]:
    """The API form of one annotation: a GeoJSON Feature (see openapi `Annotation`)."""
    geom = geometry_json if geometry_json is not None else shapely.to_geojson(
        shapely.from_wkb(row["geom"]))
    return {
        "type": "Feature", "id": row["id"], "geometry": orjson.Fragment(geom),
        "bbox": bbox_of(row),
        "properties": {
            "image_id": row["image_id"], "project_id": row["project_id"],
            "user_id": row["user_id"], "producer": row["producer"], "kind": row["kind"],
            "analysis_id": row.get("analysis_id"),
            "shape": row["shape"], "terms": list(row["term_ids"]),
            "n_vertices": row["n_vertices"], "area_px": row["area_px"],
            "perimeter_px": row["perimeter_px"], "area_um2": row["area_um2"],
            "perimeter_um": row["perimeter_um"], "data": row["properties"],
            "created_at": row["created_at"].isoformat(),
            "updated_at": row["updated_at"].isoformat(),
            "review_status": row["review_status"] or "pending",
            "reviewed_by": row["reviewed_by"],
            "reviewed_at": row["reviewed_at"].isoformat() if row["reviewed_at"] else None,
            "review_reason": row["review_reason"],
        },
    }

