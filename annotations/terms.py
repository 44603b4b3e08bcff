"""Terms: the per-project ontology (name, colour, optional parent).  asyncpg only."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from microtome.pyramid.errors import Conflict, InvalidRequest, NotFound, Unprocessable

_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")
_COLS = "id, project_id, name, color, parent_id, created_at, updated_at"

type Conn = asyncpg.Connection | asyncpg.Pool


def normalize_color(value: Any) -> str:
    """'#rrggbb' from '#RRGGBB' / 'rrggbb', [r, g, b] (QuPath) or a packed (A)RGB int."""
    if isinstance(value, str):
        m = _HEX.match(value.strip())
        if m:
            return "#" + m.group(1).lower()
    elif isinstance(value, list) and len(value) in (3, 4) and all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value):
        return "#{:02x}{:02x}{:02x}".format(*value[:3])
    elif isinstance(value, int) and not isinstance(value, bool):
        v = value & 0xFFFFFF  # QuPath's colorRGB is a signed packed ARGB int
        return f"#{v:06x}"
    raise Unprocessable("color must be '#rrggbb' or [r, g, b]")


def rgb(color: str) -> list[int]:
    return [int(color[i:i + 2], 16) for i in (1, 3, 5)]


def term_json(row: asyncpg.Record) -> dict[str, Any]:
    d = dict(row)
    d["created_at"] = d["created_at"].isoformat()
    d["updated_at"] = d["updated_at"].isoformat()
    return d


async def list_terms(conn: Conn, project_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_COLS} FROM terms WHERE project_id = $1 ORDER BY id", project_id)


async def list_image_terms(conn: Conn, image_id: int) -> list[asyncpg.Record]:
    """The terms of every project the image is in (what its annotations may carry)."""
    return await conn.fetch(
        f"""SELECT {_COLS} FROM terms WHERE project_id IN
              (SELECT project_id FROM project_images WHERE image_id = $1)
            ORDER BY project_id, id""", image_id)


async def get_term(conn: Conn, project_id: int, term_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT {_COLS} FROM terms WHERE id = $1 AND project_id = $2", term_id, project_id)
    if row is None:
        raise NotFound("term not found")
    return row


async def _check_parent(conn: Conn, project_id: int, parent_id: int | None,
                        term_id: int | None = None) -> None:
    if parent_id is None:
        return
    # JSON bodies can carry anything here (lists, strings, bools, 2**70).
    if type(parent_id) is not int or not 0 < parent_id < 2**63:
        raise InvalidRequest("parent_id must be a term id or null")
    # Walk up from the proposed parent: it must be in this project and the
    # chain must not come back to the term itself (no cycles).
    seen: set[int] = set()
    cur: int | None = parent_id
    while cur is not None:
        if cur == term_id or cur in seen:
            raise Unprocessable("parent would create a cycle")
        seen.add(cur)
        row = await conn.fetchrow(
            "SELECT parent_id FROM terms WHERE id = $1 AND project_id = $2", cur, project_id)
        if row is None:
            raise Unprocessable("parent term not found in this project")
        cur = row["parent_id"]


async def create_term(conn: Conn, project_id: int, name: str, color: Any = "#ff0000",
                      parent_id: int | None = None) -> asyncpg.Record:
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidRequest("term name must have 1 to 200 characters")
    await _check_parent(conn, project_id, parent_id)
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO terms (project_id, name, color, parent_id) VALUES ($1, $2, $3, $4)
                RETURNING {_COLS}""", project_id, name, normalize_color(color), parent_id)
    except asyncpg.UniqueViolationError:
        raise Conflict("a term with this name exists in the project") from None
    assert row is not None
    return row


async def update_term(conn: Conn, project_id: int, term_id: int,
                      changes: dict[str, Any]) -> asyncpg.Record:
    cur = await get_term(conn, project_id, term_id)
    name = changes.get("name", cur["name"])
    if not isinstance(name, str):  # str() would store "['x']" for a list
        raise InvalidRequest("term name must be a string")
    name = name.strip()
    color = normalize_color(changes["color"]) if "color" in changes else cur["color"]
    parent_id = changes.get("parent_id", cur["parent_id"])
    if not name or len(name) > 200:
        raise InvalidRequest("term name must have 1 to 200 characters")
    await _check_parent(conn, project_id, parent_id, term_id)
    try:
        row = await conn.fetchrow(
            f"""UPDATE terms SET name = $3, color = $4, parent_id = $5, updated_at = now()
                WHERE id = $1 AND project_id = $2 RETURNING {_COLS}""",
            term_id, project_id, name, color, parent_id)
    except asyncpg.UniqueViolationError:
        raise Conflict("a term with this name exists in the project") from None
    assert row is not None
    return row


async def delete_term(conn: asyncpg.Connection, project_id: int, term_id: int,
                      force: bool = False) -> int:
    """Delete a term; returns how many annotations lost it.

    Refused (Conflict) when annotations use it, unless `force`.
    """
    await get_term(conn, project_id, term_id)
    async with conn.transaction():
        used = await conn.fetchval(
            "SELECT count(*) FROM annotations WHERE term_ids @> ARRAY[$1::bigint]", term_id)
        if used and not force:
            raise Conflict("the term is used by annotations; pass force=true to delete it",
                           {"annotations": used})
        if used:
            await conn.execute(
                """UPDATE annotations SET term_ids = array_remove(term_ids, $1::bigint),
                       updated_at = now() WHERE term_ids @> ARRAY[$1::bigint]""", term_id)
        await conn.execute("DELETE FROM terms WHERE id = $1", term_id)
    return int(used)


async def check_term_ids(conn: Conn, project_id: int | None, term_ids: Sequence[int]) -> list[int]:
    """The ids, deduplicated, after checking they are terms of this project."""
    ids = sorted({int(t) for t in term_ids})
    if not ids:
        return []
    if project_id is None:
        raise Unprocessable("terms need a project", {"unknown_terms": ids})
    found = {r["id"] for r in await conn.fetch(
        "SELECT id FROM terms WHERE project_id = $1 AND id = ANY($2::bigint[])", project_id, ids)}
    missing = [t for t in ids if t not in found]
    if missing:
        raise Unprocessable("unknown term ids for this project", {"unknown_terms": missing})
    return ids


async def resolve_names(conn: Conn, project_id: int, wanted: Iterable[tuple[str, str | None]],
                        create: bool) -> dict[str, int]:
    """Map term names (case-insensitive) to ids, creating missing ones if `create`.

    `wanted` holds (name, colour or None).  Returns {lower(name): id}.
    """
    rows = await conn.fetch("SELECT id, name FROM terms WHERE project_id = $1", project_id)
    out = {r["name"].lower(): r["id"] for r in rows}
    for name, color in wanted:
        key = name.strip().lower()
        if key in out:
            continue
        if not create:
            raise Unprocessable(f"unknown term {name!r}", {"unknown_term": name})
        row = await create_term(conn, project_id, name, color or "#ff0000")
        out[key] = row["id"]
    return out
