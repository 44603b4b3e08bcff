"""Descriptor rows in PostgreSQL and the nearest-neighbour queries over them.

Access rules are part of every query (`readable_sql`): the k nearest are
chosen among the annotations the caller may read, never by filtering a
global top-k afterwards, so a caller neither learns that hidden annotations
exist nor gets fewer than k results because of them.

Two search methods, chosen at start-up by `has_vector` (see the migration):
- "hnsw": pgvector's HNSW index on `embedding` (cosine distance).  pgvector
  0.6 has no iterative index scans: when the filters leave fewer than k rows
  among the index's candidates, the same query runs again as an exact scan.
- "exact": no pgvector; the dot product of the unit-length `vec` arrays in SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
import numpy as np

from microtome.annotations.geometry import SHIFT
from microtome.catalog.access import Principal

Scope = Literal["image", "project", "all"]
SCOPES: tuple[Scope, ...] = ("image", "project", "all")
#: HNSW candidate list size: at least this, and at least 4k.
EF_SEARCH = 100

type Conn = asyncpg.Connection | asyncpg.Pool


async def has_vector(conn: Conn) -> bool:
    """Whether the pgvector column exists (the migration found the extension)."""
    return bool(await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM information_schema.columns
                          WHERE table_name = 'annotation_descriptors'
                            AND column_name = 'embedding')"""))


@dataclass(frozen=True)
class Filter:
    """Which annotations a query may return (besides access rules)."""

    scope: Scope
    image_id: int
    project_ids: tuple[int, ...]
    exclude_id: int | None = None
    #: Only annotations carrying at least one of these terms (empty: any).
    term_ids: tuple[int, ...] = ()


def readable_sql(p: Principal | None, args: list[Any]) -> str:
    """SQL predicate on `a.image_id` true when the caller may read that image
    (mirrors catalog.access.image_access); appends its parameters to `args`."""
    if p is not None and p.is_admin:
        return "TRUE"
    if p is not None and p.share is not None:
        args += [p.share.image_id, p.share.project_id]
        i, j = len(args) - 1, len(args)
        return (f"(a.image_id = ${i} OR EXISTS (SELECT 1 FROM project_images spi "
                f"WHERE spi.image_id = a.image_id AND spi.project_id = ${j}))")
    args.append(p.user_id if p is not None else None)
    u = len(args)
    return f"""(EXISTS (SELECT 1 FROM images ri WHERE ri.id = a.image_id AND ri.owner_id = ${u})
        OR EXISTS (SELECT 1 FROM project_images rpi JOIN project_members rm
                     ON rm.project_id = rpi.project_id AND rm.user_id = ${u}
                   WHERE rpi.image_id = a.image_id)
        OR EXISTS (SELECT 1 FROM project_images rpi JOIN projects rp ON rp.id = rpi.project_id
                   WHERE rpi.image_id = a.image_id AND rp.public))"""


def _where(p: Principal | None, f: Filter, args: list[Any]) -> str:
    conds = [readable_sql(p, args),
             "EXISTS (SELECT 1 FROM images si WHERE si.id = a.image_id AND si.status = 'ready')"]
    if f.scope == "image":
        args.append(f.image_id)
        conds.append(f"a.image_id = ${len(args)}")
    elif f.scope == "project":
        args.append(list(f.project_ids))
        conds.append(f"a.project_id = ANY(${len(args)}::bigint[])")
    if f.exclude_id is not None:
        args.append(f.exclude_id)
        conds.append(f"a.id <> ${len(args)}")
    if f.term_ids:
        args.append(list(f.term_ids))
        conds.append(f"a.term_ids && ${len(args)}::bigint[]")
    return " AND ".join(conds)


async def missing(conn: Conn, p: Principal | None, f: Filter, limit: int
                  ) -> list[asyncpg.Record]:
    """Up to `limit` queued annotations of the filter (created or changed since their
    descriptor was computed), with what a descriptor needs."""
    args: list[Any] = []
    where = _where(p, f, args)
    args.append(limit)
    return await conn.fetch(
        f"""SELECT a.id, a.image_id, a.geom, a.updated_at,
                   (SELECT pixel_size_um FROM images WHERE id = a.image_id) AS pixel_size_um
            FROM retrieval_queue q JOIN annotations a ON a.id = q.annotation_id
            WHERE {where} ORDER BY q.annotation_id LIMIT ${len(args)}""", *args)


async def count_missing(conn: Conn, p: Principal | None, f: Filter, upto: int) -> int:
    """How many queued annotations the filter holds, counted up to `upto`."""
    args: list[Any] = []
    where = _where(p, f, args)
    args.append(upto)
    return int(await conn.fetchval(
        f"""SELECT count(*) FROM (SELECT 1 FROM retrieval_queue q
                                  JOIN annotations a ON a.id = q.annotation_id
                                  WHERE {where} LIMIT ${len(args)}) m""", *args))


async def store(conn: Conn, family: str,
                rows: Sequence[tuple[int, np.ndarray | None, Any]]) -> None:
    """Upsert (annotation id, unit vector or None when not describable, annotation
    updated_at) descriptors.  A row whose
    annotation was deleted meanwhile is skipped (the foreign key would refuse it)."""
    if not rows:
        return
    ids, stamps = [r[0] for r in rows], [r[2] for r in rows]
    await conn.execute(
        """INSERT INTO annotation_descriptors (annotation_id, family, vec, source_updated_at)
           SELECT r.id, $1, r.vec::real[], r.ts
           FROM unnest($2::bigint[], $3::text[], $4::timestamptz[]) AS r(id, vec, ts)
           WHERE EXISTS (SELECT 1 FROM annotations a WHERE a.id = r.id)
           ON CONFLICT (annotation_id, family) DO UPDATE
             SET vec = EXCLUDED.vec, source_updated_at = EXCLUDED.source_updated_at,
                 computed_at = now()""",
        family, ids, [_array_text(r[1]) for r in rows], stamps)
    # Done with these versions; a newer one queued meanwhile stays queued.
    await conn.execute(
        """DELETE FROM retrieval_queue q USING unnest($1::bigint[], $2::timestamptz[]) AS r(id, ts)
           WHERE q.annotation_id = r.id AND q.updated_at = r.ts""", ids, stamps)


def _array_text(v: np.ndarray | None) -> str | None:
    # real[] has no nested-array binding in asyncpg's unnest: pass each as '{...}' text.
    if v is None:
        return None
    return "{" + ",".join(f"{x:.7g}" for x in np.asarray(v, dtype=np.float32)) + "}"


async def descriptor(conn: Conn, annotation_id: int, family: str) -> np.ndarray | None:
    """The fresh descriptor of one annotation, or None."""
    vec = await conn.fetchval(
        """SELECT d.vec FROM annotation_descriptors d JOIN annotations a
             ON a.id = d.annotation_id AND d.source_updated_at = a.updated_at
           WHERE d.annotation_id = $1 AND d.family = $2""", annotation_id, family)
    return None if vec is None else np.asarray(vec, dtype=np.float32)


_COLS = (f"a.id, a.image_id, a.project_id, a.term_ids, i.name AS image_name, "
         f"a.sbox - point(a.image_id * {SHIFT}::float8, 0) AS bbox")


async def nearest(pool: asyncpg.Pool, p: Principal | None, f: Filter, family: str,
                  vec: np.ndarray, k: int, use_vector: bool
                  ) -> tuple[list[asyncpg.Record], str]:
    """The k readable annotations nearest to `vec` (rows with a `score`, cosine
    similarity, best first) and the method used."""
    args: list[Any] = [family, np.asarray(vec, dtype=np.float32).tolist()]
    where = _where(p, f, args)
    args.append(k)
    fresh = "d.family = $1 AND d.source_updated_at = a.updated_at AND d.vec IS NOT NULL"
    base = (f"FROM annotation_descriptors d JOIN annotations a ON a.id = d.annotation_id "
            f"JOIN images i ON i.id = a.image_id WHERE {fresh} AND {where}")
    if not use_vector:
        sql = (f"SELECT {_COLS}, (SELECT sum(x * y) FROM unnest(d.vec, $2::real[]) AS t(x, y))"
               f" AS score {base} ORDER BY score DESC, a.id LIMIT ${len(args)}")
        return list(await pool.fetch(sql, *args)), "exact"
    dist = "d.embedding <=> $2::real[]::vector"
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH, 4 * k)}")
        rows = await conn.fetch(f"SELECT {_COLS}, 1 - ({dist}) AS score {base} "
                                f"ORDER BY {dist} LIMIT ${len(args)}", *args)
        if len(rows) >= k:
            return list(rows), "hnsw"
        # Too few index candidates passed the filters: an exact scan (the expression
        # `+ 0` cannot use the index) is correct and, under a selective filter, cheap.
        rows = await conn.fetch(f"SELECT {_COLS}, 1 - ({dist}) AS score {base} "
                                f"ORDER BY ({dist}) + 0, a.id LIMIT ${len(args)}", *args)
        return list(rows), "exact"
