"""The annotation table: keyset pages sorted by any column, layers, project statistics.

Scope is one image (`a.image_id = …`) or one project (`a.project_id = …`).
Pages are keyset-paginated on (sort key, id): each sort key of the image
scope has a btree (image_id, key, id) (migration 0110), so the first page
(and every next one) is an index range scan whatever the image's size.
Nullable keys go through the same COALESCE as their index.  Area and
perimeter sort by their pixel values on one image (the same order as µm,
never NULL); across a project by µm.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from microtome.pyramid.errors import InvalidRequest

from .geometry import KINDS, SHIFT
from .query import STATUS_SQL, Filters, conditions

type Conn = asyncpg.Connection | asyncpg.Pool

#: sort name → (SQL on one image, SQL across a project, kind of value)
SORTS: dict[str, tuple[str, str, str]] = {
    "id": ("a.id", "a.id", "int"),
    "image": ("a.image_id", "a.image_id", "int"),
    "kind": ("a.kind", "a.kind", "kind"),
    "created": ("a.created_at", "a.created_at", "time"),
    "area": ("a.area_px", "COALESCE(a.area_um2, 0)", "float"),
    "perimeter": ("a.perimeter_px", "COALESCE(a.perimeter_um, 0)", "float"),
    "author": ("COALESCE(a.user_id, 0)", "COALESCE(a.user_id, 0)", "int"),
    "term": ("COALESCE(a.term_ids[1], 0)", "COALESCE(a.term_ids[1], 0)", "int"),
    "status": (STATUS_SQL, STATUS_SQL, "text"),
}
MAX_LIMIT = 1000
#: Counting stops here: "more than 10,000" is all a table header needs, and
#: counting further cost 50-80 ms on an image of 1,000,000 (bench/annotation_table).
COUNT_CAP = 10_000

#: Columns of a table row.  The centroid is the bounding box's centre (level-0 px).
ROW_COLS = f"""a.id, a.image_id, a.project_id, a.user_id, u.username AS author, a.analysis_id,
    a.producer, a.kind, a.term_ids, a.area_px, a.area_um2, a.perimeter_px, a.perimeter_um,
    a.created_at, a.updated_at, {STATUS_SQL} AS review_status, a.reviewed_by, a.reviewed_at,
    a.review_reason, a.properties,
    ((a.sbox[0])[0] + (a.sbox[1])[0]) / 2 - a.image_id * {SHIFT}::float8 AS cx,
    ((a.sbox[0])[1] + (a.sbox[1])[1]) / 2 AS cy"""


@dataclass(frozen=True)
class Scope:
    """One image (`image_id`) or one project (`project_id`, optionally one of its images)."""

    image_id: int | None = None
    project_id: int | None = None

    def sql(self, args: list[Any]) -> str:
        if self.project_id is not None:
            args.append(self.project_id)
            cond = f"a.project_id = ${len(args)}"
            if self.image_id is not None:
                args.append(self.image_id)
                cond += f" AND a.image_id = ${len(args)}"
            return cond
        args.append(self.image_id)
        return f"a.image_id = ${len(args)}"

    def sort_sql(self, sort: str) -> str:
        on_image, on_project, _ = SORTS[sort]
        return on_project if self.project_id is not None and self.image_id is None else on_image


@dataclass(frozen=True)
class Page:
    sort: str = "id"
    desc: bool = False
    limit: int = 50
    after: tuple[Any, int] | None = None  # (sort value, id) of the last row seen


def _bad_cursor() -> InvalidRequest:
    return InvalidRequest("after must be the next cursor of the previous page (same sort)",
                          {"field": "after"})


def encode_cursor(sort: str, desc: bool, value: Any, row_id: int) -> str:
    if isinstance(value, dt.datetime):
        value = value.isoformat()
    raw = orjson.dumps([sort, desc, value, row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, sort: str, desc: bool) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        s, d, value, row_id = orjson.loads(raw)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise _bad_cursor() from None
    kind = SORTS[sort][2]
    ok = s == sort and d == desc and isinstance(row_id, int) and 0 < row_id < 2**63
    try:
        if kind == "time":
            value = dt.datetime.fromisoformat(value)
            value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        elif kind == "int":
            ok = (ok and isinstance(value, int) and not isinstance(value, bool)
                  and -(2**63) < value < 2**63)
        elif kind == "float":
            ok = ok and isinstance(value, int | float) and not isinstance(value, bool)
            value = float(value)
        elif kind == "kind":
            ok = ok and value in KINDS
        else:
            ok = ok and value in ("pending", "accepted", "rejected")
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise _bad_cursor()
    return value, row_id


def parse_page(q: Any) -> Page:
    sort = q.get("sort") or "id"
    if sort not in SORTS:
        raise InvalidRequest(f"sort must be one of {list(SORTS)}", {"field": "sort"})
    order = q.get("order") or "asc"
    if order not in ("asc", "desc"):
        raise InvalidRequest("order must be asc or desc", {"field": "order"})
    raw = q.get("limit") or "50"
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}", {"field": "limit"})
    after = decode_cursor(q["after"], sort, order == "desc") if q.get("after") else None
    return Page(sort, order == "desc", int(raw), after)


def row_json(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": r["id"], "image_id": r["image_id"], "project_id": r["project_id"],
        "user_id": r["user_id"], "author": r["author"], "analysis_id": r["analysis_id"],
        "producer": r["producer"], "kind": r["kind"], "terms": list(r["term_ids"]),
        "area_px": r["area_px"], "area_um2": r["area_um2"], "perimeter_px": r["perimeter_px"],
        "perimeter_um": r["perimeter_um"], "centroid": [r["cx"], r["cy"]],
        "created_at": r["created_at"].isoformat(), "updated_at": r["updated_at"].isoformat(),
        "review_status": r["review_status"], "reviewed_by": r["reviewed_by"],
        "reviewed_at": r["reviewed_at"].isoformat() if r["reviewed_at"] else None,
        "review_reason": r["review_reason"], "properties": r["properties"],
    }


async def page(conn: Conn, scope: Scope, f: Filters, pg: Page, *, count: bool = True
               ) -> dict[str, Any]:
    """One page of rows, the cursor of the next one, and the (capped) number of matches."""
    args: list[Any] = []
    where = " AND ".join([scope.sql(args), *conditions(f, args)])
    key = scope.sort_sql(pg.sort)
    direction = "DESC" if pg.desc else "ASC"
    keyset = ""
    if pg.after is not None:
        args += list(pg.after)
        keyset = f" AND ({key}, a.id) {'<' if pg.desc else '>'} (${len(args) - 1}, ${len(args)})"
    args.append(pg.limit + 1)
    rows = await conn.fetch(
        f"""SELECT {ROW_COLS}, {key} AS sort_key FROM annotations a
            LEFT JOIN users u ON u.id = a.user_id
            WHERE {where}{keyset} ORDER BY {key} {direction}, a.id {direction}
            LIMIT ${len(args)}""", *args)
    more = len(rows) > pg.limit
    rows = rows[:pg.limit]
    nxt = (encode_cursor(pg.sort, pg.desc, rows[-1]["sort_key"], rows[-1]["id"])
           if more else None)
    out: dict[str, Any] = {"items": [row_json(r) for r in rows], "next": nxt,
                           "sort": pg.sort, "order": "desc" if pg.desc else "asc"}
    if count:
        cargs: list[Any] = []
        cwhere = " AND ".join([scope.sql(cargs), *conditions(f, cargs)])
        cargs.append(COUNT_CAP + 1)
        n = await conn.fetchval(f"SELECT count(*) FROM (SELECT 1 FROM annotations a "
                                f"WHERE {cwhere} LIMIT ${len(cargs)}) s", *cargs)
        out["total"] = min(int(n), COUNT_CAP)
        out["total_capped"] = n > COUNT_CAP
    return out


async def layers(conn: Conn, image_id: int, project_id: int | None) -> list[dict[str, Any]]:
    """The image's layers: one per author (drawn annotations) and one per analysis run."""
    rows = await conn.fetch(
        """SELECT s.analysis_id, s.user_id, s.n, u.username, an.app, an.version
           FROM (SELECT a.analysis_id,
                        CASE WHEN a.analysis_id IS NULL THEN COALESCE(a.user_id, 0) END AS user_id,
                        count(*) AS n
                 FROM annotations a WHERE a.image_id = $1
                   AND ($2::bigint IS NULL OR a.project_id = $2) GROUP BY 1, 2) s
           LEFT JOIN users u ON u.id = s.user_id
           LEFT JOIN analyses an ON an.id = s.analysis_id
           ORDER BY s.analysis_id NULLS FIRST, u.username NULLS LAST, s.user_id""",
        image_id, project_id)
    out = []
    for r in rows:
        if r["analysis_id"] is None:
            name = r["username"] or ("no author" if r["user_id"] == 0 else f"user {r['user_id']}")
            out.append({"key": f"user:{r['user_id']}", "kind": "author", "user_id": r["user_id"],
                        "analysis_id": None, "name": name, "count": r["n"]})
        else:
            out.append({"key": f"analysis:{r['analysis_id']}", "kind": "analysis",
                        "user_id": None, "analysis_id": r["analysis_id"],
                        "name": f"{r['app'] or 'analysis'} #{r['analysis_id']}",
                        "count": r["n"]})
    return out


async def project_stats(conn: Conn, scope: Scope, f: Filters) -> list[dict[str, Any]]:
    """Counts and areas per term per image of the project (term None = no term)."""
    args: list[Any] = []
    conds = " AND ".join([scope.sql(args), *conditions(f, args)])
    rows = await conn.fetch(
        f"""SELECT a.image_id, i.name AS image_name, t.term_id, tm.name AS term_name,
                   count(*) AS count, sum(a.area_um2) AS area_um2_sum,
                   sum(a.area_px) AS area_px_sum
            FROM annotations a JOIN images i ON i.id = a.image_id
            LEFT JOIN LATERAL unnest(CASE WHEN cardinality(a.term_ids) = 0
                                          THEN ARRAY[NULL::bigint] ELSE a.term_ids END)
                 AS t(term_id) ON true
            LEFT JOIN terms tm ON tm.id = t.term_id
            WHERE {conds}
            GROUP BY a.image_id, i.name, t.term_id, tm.name
            ORDER BY a.image_id, t.term_id NULLS FIRST""", *args)
    return [dict(r) for r in rows]
