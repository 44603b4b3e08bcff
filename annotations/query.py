"""Reading annotations by place: viewport (bbox) queries, clusters, counts, stats.

All boxes are image pixels at level 0 (origin top-left, y down).  The GiST
index on `sbox` (x shifted by image_id * 2^26, see migration 0100) answers
"what is in this rectangle of this image"; exact predicates against a drawn
shape run in shapely on the index's candidates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import numpy as np
import shapely

from microtome.pyramid.errors import InvalidRequest

from .geometry import SHIFT, ImageFrame, index_box

type Conn = asyncpg.Connection | asyncpg.Pool
Box = tuple[float, float, float, float]

#: Columns the viewport needs (kept small: this is the hot path).
# analysis_id: the column comes with the analysis migrations (0200), which every
# installation applies; results of an analysis form one layer in the viewer.
LIGHT_COLS = "a.id, a.geom, a.kind, a.term_ids, a.user_id, a.analysis_id"
#: The same with the stored viewport text of the working zoom (render.lod_band): the
#: WKB only where no text is stored.
LOD_COLS = ("a.id, CASE WHEN a.lod2 IS NULL THEN a.geom END AS geom, a.lod2, a.kind, "
            "a.term_ids, a.user_id, a.analysis_id")


@dataclass(frozen=True)
class Filters:
    """Optional narrowing of a query; every set field must match."""

    term_ids: tuple[int, ...] = ()        # any of these terms
    user_ids: tuple[int, ...] = ()
    kinds: tuple[str, ...] = ()
    producer: str | None = None
    project_id: int | None = None
    untermed: bool = False                 # only annotations without a term
    extra: dict[str, Any] = field(default_factory=dict)
    #: Review states: 'pending' (not reviewed yet), 'accepted', 'rejected'.
    statuses: tuple[str, ...] = ()
    analysis_ids: tuple[int, ...] = ()
    #: Layers to show (the viewer's layer panel): drawn by these authors (no
    #: analysis) or made by these analyses; both empty = no layer filter.
    layer_users: tuple[int, ...] = ()
    layer_analyses: tuple[int, ...] = ()
    layers_set: bool = False
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None
    #: A numeric property range: path into `properties` (e.g. measurements.area).
    prop: tuple[str, ...] = ()
    prop_min: float | None = None
    prop_max: float | None = None
    #: The property equals this text (case-insensitive), whatever its JSON type.
    prop_value: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.term_ids or self.user_ids or self.kinds or self.untermed
                    or self.producer is not None or self.project_id is not None
                    or self.statuses or self.analysis_ids or self.layers_set
                    or self.created_from or self.created_to or self.prop)


def clamp_box(frame: ImageFrame, box: Box | None) -> Box | None:
    """The part of `box` inside the image, None when there is none.  None means all."""
    if box is None:
        return (0.0, 0.0, float(frame.width), float(frame.height))
    x0, y0, x1, y1 = box
    if not all(np.isfinite(box)) or x1 < x0 or y1 < y0:
        raise InvalidRequest("bbox must be x0,y0,x1,y1 with x0 <= x1 and y0 <= y1")
    x0, y0 = max(x0, 0.0), max(y0, 0.0)
    x1, y1 = min(x1, float(frame.width)), min(y1, float(frame.height))
    if x1 < x0 or y1 < y0:
        return None
    return (x0, y0, x1, y1)


def _where(frame: ImageFrame, box: Box, f: Filters, args: list[Any]) -> str:
    """SQL condition; appends its parameters to `args`.

    No `image_id = ...` term: the shifted box already selects the image (boxes
    are clamped to the image, which is narrower than the shift), and an extra
    equality tempts the planner into scanning every row of the image.
    """
    args.append(index_box(frame.image_id, *box))
    return " AND ".join([f"a.sbox && ${len(args)}::box", *conditions(f, args)])


#: SQL of the review state (NULL in the table means not reviewed yet).
STATUS_SQL = "COALESCE(a.review_status, 'pending')"
#: (field of Filters, SQL with {} for its parameter): one array parameter each.
_ARRAY_FILTERS = (
    ("term_ids", "a.term_ids && {}::bigint[]"),
    ("user_ids", "a.user_id = ANY({}::bigint[])"),
    ("kinds", "a.kind = ANY({}::text[])"),
    ("statuses", STATUS_SQL + " = ANY({}::text[])"),
    ("analysis_ids", "a.analysis_id = ANY({}::bigint[])"),
)
#: (field of Filters, SQL with {} for its parameter): one scalar parameter each, when set.
_SCALAR_FILTERS = (
    ("producer", "a.producer = {}"),
    ("project_id", "a.project_id = {}"),
    ("created_from", "a.created_at >= {}"),
    ("created_to", "a.created_at < {}"),
)


def _param(args: list[Any], value: Any) -> str:
    args.append(value)
    return f"${len(args)}"


def conditions(f: Filters, args: list[Any]) -> list[str]:
    """SQL conditions of the filters (no place); appends their parameters to `args`."""
    conds = [sql.format(_param(args, list(getattr(f, name))))
             for name, sql in _ARRAY_FILTERS if getattr(f, name)]
    conds += [sql.format(_param(args, getattr(f, name)))
              for name, sql in _SCALAR_FILTERS if getattr(f, name) is not None]
    if f.untermed:
        conds.append("cardinality(a.term_ids) = 0")
    if f.layers_set:
        u, an = _param(args, list(f.layer_users)), _param(args, list(f.layer_analyses))
        conds.append(f"((a.analysis_id IS NULL AND COALESCE(a.user_id, 0) = ANY({u}::bigint[]))"
                     f" OR a.analysis_id = ANY({an}::bigint[]))")
    if f.prop:
        conds += _property_conditions(f, args)
    return conds


def _property_conditions(f: Filters, args: list[Any]) -> list[str]:
    """A property's value: equal to a text (case-insensitive), and/or in a numeric range.
    With neither, the property must be a number (the layers panel's range filter)."""
    path = _param(args, list(f.prop))
    conds = []
    if f.prop_value is not None:
        want = _param(args, f.prop_value)
        conds.append(f"lower(a.properties #>> {path}::text[]) = lower({want})")
    if f.prop_value is None or f.prop_min is not None or f.prop_max is not None:
        # CASE first: a property that is not a number never reaches the cast.
        value = (f"(CASE WHEN jsonb_typeof(a.properties #> {path}::text[]) = 'number' "
                 f"THEN (a.properties #>> {path}::text[])::float8 END)")
        conds.append(f"{value} IS NOT NULL")
        if f.prop_min is not None:
            conds.append(f"{value} >= {_param(args, f.prop_min)}")
        if f.prop_max is not None:
            conds.append(f"{value} <= {_param(args, f.prop_max)}")
    return conds


async def count_upto(conn: Conn, frame: ImageFrame, box: Box, f: Filters, cap: int) -> int:
    """min(number of matches, cap): cheap whatever the density (stops at cap)."""
    args: list[Any] = []
    # Without filters this is an index-only scan of the GiST index.
    where = _where(frame, box, f, args)
    args.append(cap)
    return int(await conn.fetchval(
        f"SELECT count(*) FROM (SELECT 1 FROM annotations a WHERE {where} "
        f"LIMIT ${len(args)}) s", *args))


async def fetch_page(conn: Conn, frame: ImageFrame, box: Box, f: Filters, *, limit: int,
                     after: int | None = None, cols: str = LIGHT_COLS
                     ) -> list[asyncpg.Record]:
    """Up to `limit` matching rows with id > after, by id (keyset pagination)."""
    args: list[Any] = []
    where = _where(frame, box, f, args)
    if after is not None:
        args.append(after)
        where += f" AND a.id > ${len(args)}"
    args.append(limit)
    # MATERIALIZED: always find the matches through the GiST index first, then
    # sort them.  Otherwise "ORDER BY id LIMIT n" invites a walk of the primary
    # key filtering every row of the table by the box, fatal for small viewports.
    return await conn.fetch(
        f"""WITH m AS MATERIALIZED (SELECT {cols} FROM annotations a WHERE {where})
            SELECT * FROM m ORDER BY id LIMIT ${len(args)}""", *args)


async def clusters(conn: Conn, frame: ImageFrame, box: Box, f: Filters, grid: int
                   ) -> list[asyncpg.Record]:
    """Counts of annotations per cell of a grid×grid division of `box` (by bbox centre)."""
    x0, y0, x1, y1 = box
    cell = max(x1 - x0, y1 - y0, 1.0) / grid
    args: list[Any] = []
    where = _where(frame, box, f, args)
    off = frame.image_id * SHIFT
    args += [off + x0, y0, cell]
    ox, oy, c = len(args) - 2, len(args) - 1, len(args)
    cx = "(((a.sbox[0])[0] + (a.sbox[1])[0]) / 2)"
    cy = "(((a.sbox[0])[1] + (a.sbox[1])[1]) / 2)"
    return await conn.fetch(
        f"""SELECT floor(({cx} - ${ox}) / ${c})::int AS gx, floor(({cy} - ${oy}) / ${c})::int AS gy,
                   count(*) AS n, avg({cx}) - {off}::float8 AS x, avg({cy}) AS y,
                   min((a.sbox[1])[0]) - {off}::float8 AS bx0, min((a.sbox[1])[1]) AS by0,
                   max((a.sbox[0])[0]) - {off}::float8 AS bx1, max((a.sbox[0])[1]) AS by1
            FROM annotations a WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2""", *args)


#: Cell sizes of the `annotation_density` table (migration 0101).
DENSITY_CELLS = (256, 1024, 4096)


def density_level(box: Box, grid: int) -> int | None:
    """The coarsest density cell about the size of a grid cell or smaller (up to 1.5x:
    clusters are approximate anyway), None if none is small enough."""
    cell = max(box[2] - box[0], box[3] - box[1], 1.0) / grid
    fit = [c for c in DENSITY_CELLS if c <= cell * 1.5]
    return max(fit) if fit else None


async def density_clusters(conn: Conn, frame: ImageFrame, box: Box, grid: int, level: int
                           ) -> list[asyncpg.Record]:
    """Like `clusters` (unfiltered), from the precomputed density cells: cost grows with
    the number of cells in view, not with the number of annotations.  Counts include
    whole density cells that overlap the box's edge."""
    x0, y0, x1, y1 = box
    cell = max(x1 - x0, y1 - y0, 1.0) / grid
    return await conn.fetch(
        """SELECT least(greatest(floor((d.sx / d.n - $3) / $5), 0), $6 - 1)::int AS gx,
                  least(greatest(floor((d.sy / d.n - $4) / $5), 0), $6 - 1)::int AS gy,
                  sum(d.n)::bigint AS n, (sum(d.sx) / sum(d.n))::float8 AS x,
                  (sum(d.sy) / sum(d.n))::float8 AS y,
                  greatest(min(d.gx) * $2, $3)::float8 AS bx0,
                  greatest(min(d.gy) * $2, $4)::float8 AS by0,
                  least((max(d.gx) + 1) * $2, $7)::float8 AS bx1,
                  least((max(d.gy) + 1) * $2, $8)::float8 AS by1
           FROM annotation_density d
           WHERE d.image_id = $1 AND d.cell = $2 AND d.n > 0
             AND d.gx BETWEEN floor($3 / $2)::int AND floor($7 / $2)::int
             AND d.gy BETWEEN floor($4 / $2)::int AND floor($8 / $2)::int
           GROUP BY 1, 2 ORDER BY 1, 2""",
        frame.image_id, level, x0, y0, cell, grid, x1, y1)


PREDICATES = ("intersects", "within", "contains")


def exact_filter(rows: Sequence[asyncpg.Record], shape: shapely.Geometry,
                 predicate: str) -> list[asyncpg.Record]:
    """Rows whose geometry `predicate`s the drawn shape: 'intersects' it, lies 'within'
    it, or 'contains' it.  CPU work: call from an executor for big inputs."""
    if not rows:
        return []
    geoms = shapely.from_wkb([r["geom"] for r in rows])
    shapely.prepare(shape)
    if predicate == "intersects":
        mask = shapely.intersects(shape, geoms)
    elif predicate == "within":
        mask = shapely.contains(shape, geoms)
    else:
        mask = shapely.within(shape, geoms)
    return [r for r, ok in zip(rows, mask, strict=True) if ok]


async def term_counts(conn: Conn, frame: ImageFrame, box: Box, f: Filters) -> dict[str, Any]:
    """{"total", "untermed", "terms": {term_id: n}} for the matches."""
    args: list[Any] = []
    where = _where(frame, box, f, args)
    row = await conn.fetchrow(
        f"""SELECT count(*) AS total, count(*) FILTER (WHERE cardinality(a.term_ids) = 0)
                   AS untermed FROM annotations a WHERE {where}""", *args)
    assert row is not None
    per = await conn.fetch(
        f"""SELECT t AS term_id, count(*) AS n FROM annotations a, unnest(a.term_ids) t
            WHERE {where} GROUP BY t ORDER BY t""", *args)
    return {"total": row["total"], "untermed": row["untermed"],
            "terms": {str(r["term_id"]): r["n"] for r in per}}


async def term_stats(conn: Conn, frame: ImageFrame, box: Box, f: Filters
                     ) -> list[dict[str, Any]]:
    """Per term (None = no term): count, total/mean area and mean perimeter."""
    args: list[Any] = []
    where = _where(frame, box, f, args)
    rows = await conn.fetch(
        f"""SELECT t.term_id, count(*) AS count,
                   sum(a.area_px) AS area_px_sum, avg(a.area_px) AS area_px_mean,
                   sum(a.area_um2) AS area_um2_sum, avg(a.area_um2) AS area_um2_mean,
                   avg(a.perimeter_um) AS perimeter_um_mean,
                   avg(a.perimeter_px) AS perimeter_px_mean
            FROM annotations a
            LEFT JOIN LATERAL unnest(CASE WHEN cardinality(a.term_ids) = 0
                                          THEN ARRAY[NULL::bigint] ELSE a.term_ids END)
                 AS t(term_id) ON true
            WHERE {where} GROUP BY t.term_id ORDER BY t.term_id NULLS FIRST""", *args)
    return [dict(r) for r in rows]
