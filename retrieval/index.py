"""Descriptor rows in PostgreSQL and the nearest-neighbour queries over them.

Access rules are part of every query (`readable_sql`, or the caller's readable
images `readable_images` as a predicate of the same query): the k nearest are
chosen among the annotations the caller may read, never by filtering a global
top-k afterwards, so a caller neither learns that hidden annotations exist nor
gets fewer than k results because of them.

Two search methods, chosen at start-up by `has_vector` (see the migration):
- "hnsw": pgvector's HNSW index on `embedding` (cosine distance).  The embedded
  server ships pgvector 0.6, which has no iterative index scans: an index scan
  yields at most `hnsw.ef_search` candidates, and the access filter keeps a
  share s of them.  `nearest` therefore sizes the candidate list to the caller:
  a first pass with EF_SEARCH candidates measures s (how many passed); when
  fewer than PASS_FACTOR * k passed, a second pass uses
  ef = PASS_FACTOR * k / s (at most EF_MAX) or, when the readable rows are
  estimated below EXACT_ROWS (or even EF_MAX leaves fewer than k), an exact
  search over the readable rows only (filtered first through the annotations'
  image index, then ordered by distance).  With pgvector >= 0.8 iterative
  scans would replace the second pass.
- "exact": no pgvector; the dot product of the unit-length `vec` arrays in SQL.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
import numpy as np

from microtome.annotations.geometry import SHIFT
from microtome.catalog.access import Principal

Scope = Literal["image", "project", "all"]
SCOPES: tuple[Scope, ...] = ("image", "project", "all")
#: HNSW candidate list size of the first pass: at least this, and at least 4k.
EF_SEARCH = 200
#: pgvector's largest hnsw.ef_search.
EF_MAX = 1000
#: A pass is accepted when at least this many times k candidates passed the filters
#: (the k nearest readable are then taken among enough readable candidates).
PASS_FACTOR = 5
#: Readable rows estimated below this are searched exactly (filter first): an exact
#: search costs about as much per readable row as HNSW per 1/5 candidate.
EXACT_ROWS = 5_000
#: Readable image lists longer than this are not passed as an array: the query
#: keeps the EXISTS predicates of `readable_sql` instead.
MAX_IMAGE_LIST = 5_000

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


def readable_sql(p: Principal | None, args: list[Any], col: str = "a.image_id") -> str:
    """SQL predicate on the image id `col` true when the caller may read that image
    (mirrors catalog.access.image_access); appends its parameters to `args`."""
    if p is not None and p.is_admin:
        return "TRUE"
    if p is not None and p.share is not None:
        args += [p.share.image_id, p.share.project_id]
        i, j = len(args) - 1, len(args)
        return (f"({col} = ${i} OR EXISTS (SELECT 1 FROM project_images spi "
                f"WHERE spi.image_id = {col} AND spi.project_id = ${j}))")
    args.append(p.user_id if p is not None else None)
    u = len(args)
    return f"""(EXISTS (SELECT 1 FROM images ri WHERE ri.id = {col} AND ri.owner_id = ${u})
        OR EXISTS (SELECT 1 FROM project_images rpi JOIN project_members rm
                     ON rm.project_id = rpi.project_id AND rm.user_id = ${u}
                   WHERE rpi.image_id = {col})
        OR EXISTS (SELECT 1 FROM project_images rpi JOIN projects rp ON rp.id = rpi.project_id
                   WHERE rpi.image_id = {col} AND rp.public))"""


async def readable_images(conn: Conn, p: Principal | None, f: Filter,
                          limit: int = MAX_IMAGE_LIST) -> list[int] | None:
    """Ids of the ready images of the filter's scope the caller may read (the same
    rules as `readable_sql`), or None when there are more than `limit` (or, for an
    administrator searching everything, when any image will do)."""
    if f.scope == "all" and p is not None and p.is_admin:
        return None
    args: list[Any] = []
    conds = [readable_sql(p, args, "i.id"), "i.status = 'ready'"]
    if f.scope == "image":
        args.append(f.image_id)
        conds.append(f"i.id = ${len(args)}")
    elif f.scope == "project":
        args.append(list(f.project_ids))
        conds.append(f"EXISTS (SELECT 1 FROM project_images sp WHERE sp.image_id = i.id "
                     f"AND sp.project_id = ANY(${len(args)}::bigint[]))")
    args.append(limit + 1)
    ids = [r[0] for r in await conn.fetch(
        f"SELECT i.id FROM images i WHERE {' AND '.join(conds)} ORDER BY i.id "
        f"LIMIT ${len(args)}", *args)]
    return None if len(ids) > limit else ids


def _where(p: Principal | None, f: Filter, args: list[Any],
           images: list[int] | None = None) -> str:
    """The filter as SQL on `a`; with `images` (`readable_images` of the same caller
    and filter) access and readiness are that list (the same rows, cheaper per row)."""
    if images is not None:
        args.append(images)
        conds = [f"a.image_id = ANY(${len(args)}::bigint[])"]
    else:
        conds = [readable_sql(p, args), "EXISTS (SELECT 1 FROM images si "
                 "WHERE si.id = a.image_id AND si.status = 'ready')"]
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


#: The readable share last measured per caller and filter (sizes the next first
#: pass; never decides what a caller may read): key -> (share, monotonic time).
_SHARES: OrderedDict[tuple[Any, ...], tuple[float, float]] = OrderedDict()
SHARE_TTL_S = 300.0
SHARE_ENTRIES = 10_000


def _share_key(pool: Any, p: Principal | None, f: Filter, family: str) -> tuple[Any, ...]:
    who = (None if p is None else ("admin",) if p.is_admin else
           ("share", p.share.image_id, p.share.project_id) if p.share is not None
           else ("user", p.user_id))
    return (id(pool), who, f.scope, f.image_id if f.scope == "image" else None,
            f.project_ids if f.scope == "project" else None, f.term_ids, family)


def _remember_share(key: tuple[Any, ...], share: float) -> None:
    _SHARES[key] = (share, time.monotonic())
    _SHARES.move_to_end(key)
    while len(_SHARES) > SHARE_ENTRIES:
        _SHARES.popitem(last=False)


def _known_share(key: tuple[Any, ...]) -> float | None:
    hit = _SHARES.get(key)
    if hit is None or time.monotonic() - hit[1] > SHARE_TTL_S:
        return None
    return hit[0]


def _ef_for(share: float, k: int) -> int:
    return int(min(EF_MAX, max(EF_SEARCH, 4 * k, np.ceil(PASS_FACTOR * k / max(share, 1e-6)))))


async def nearest(pool: asyncpg.Pool, p: Principal | None, f: Filter, family: str,
                  vec: np.ndarray, k: int, use_vector: bool
                  ) -> tuple[list[asyncpg.Record], str]:
    """The k readable annotations nearest to `vec` (rows with a `score`, cosine
    similarity, best first) and the method used ("hnsw" or "exact")."""
    args: list[Any] = [family, np.asarray(vec, dtype=np.float32).tolist()]
    fresh = "d.family = $1 AND d.source_updated_at = a.updated_at AND d.vec IS NOT NULL"
    if not use_vector:
        where = _where(p, f, args)
        args.append(k)
        base = (f"FROM annotation_descriptors d JOIN annotations a ON a.id = d.annotation_id "
                f"JOIN images i ON i.id = a.image_id WHERE {fresh} AND {where}")
        sql = (f"SELECT {_COLS}, (SELECT sum(x * y) FROM unnest(d.vec, $2::real[]) AS t(x, y))"
               f" AS score {base} ORDER BY score DESC, a.id LIMIT ${len(args)}")
        return list(await pool.fetch(sql, *args)), "exact"
    dist = "d.embedding <=> $2::real[]::vector"
    key = _share_key(pool, p, f, family)
    async with pool.acquire() as conn, conn.transaction():
        images = await readable_images(conn, p, f)
        if images == []:
            return [], "exact"
        where = _where(p, f, args, images)
        args.append(0)  # the LIMIT, set per pass
        lim = len(args)
        base = (f"FROM annotation_descriptors d JOIN annotations a ON a.id = d.annotation_id "
                f"JOIN images i ON i.id = a.image_id WHERE {fresh} AND {where}")
        approx = f"SELECT {_COLS}, 1 - ({dist}) AS score {base} ORDER BY {dist} LIMIT ${lim}"

        async def hnsw(ef: int) -> list[asyncpg.Record]:
            # Every candidate that passes, up to ef: how many did measures the share.
            # (No sort: with a LIMIT of ef the planner might otherwise sort a small
            # table instead of reading the index, and the share would be wrong.)
            await conn.execute(f"SET LOCAL hnsw.ef_search = {ef}; SET LOCAL enable_sort = off")
            args[lim - 1] = ef
            rows = list(await conn.fetch(approx, *args))
            _remember_share(key, len(rows) / ef)
            return rows

        ef0 = min(EF_MAX, max(EF_SEARCH, 4 * k))
        count = await _descriptor_count(conn)

        def few(share: float) -> bool:
            # The first pass would not find enough candidates, and so few rows are
            # readable that scanning them all is cheaper than a bigger candidate list.
            return share * ef0 < PASS_FACTOR * k and share * count < EXACT_ROWS

        known = _known_share(key)
        exact, rows = known is not None and few(known), []
        if not exact:
            ef = ef0 if known is None else _ef_for(known, k)
            rows = await hnsw(ef)
            if len(rows) < PASS_FACTOR * k and ef < EF_MAX:
                share = max(len(rows), 0.5) / ef
                exact = few(share)
                if not exact:
                    rows = await hnsw(_ef_for(share, k))
        if not exact and len(rows) >= k:
            return rows[:k], "hnsw"
        # Few readable rows (or too few index candidates passed even at EF_MAX): an
        # exact scan (the expression `+ 0` cannot use the index) that starts from the
        # readable images' annotations (the image index) rather than from every
        # descriptor.
        await conn.execute("SET LOCAL enable_sort = on; SET LOCAL enable_seqscan = off; "
                           "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
        args[lim - 1] = k
        rows = await conn.fetch(f"SELECT {_COLS}, 1 - ({dist}) AS score {base} "
                                f"ORDER BY ({dist}) + 0, a.id LIMIT ${lim}", *args)
        return list(rows), "exact"


async def _descriptor_count(conn: Conn) -> float:
    """The planner's estimate of the descriptor rows (no scan; 0 before any ANALYZE)."""
    n = await conn.fetchval("SELECT reltuples FROM pg_class "
                            "WHERE oid = 'annotation_descriptors'::regclass")
    return max(float(n or 0), 0.0)
