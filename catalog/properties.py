"""Key-value properties of images and projects: validation, reads, writes, grid queries.

Keys are short names people search by (stain, block, patient code): letters,
digits and a few separators, never markup.  Values are plain text (numbers and
booleans are kept as their text); the UI shows them as text, never as HTML.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from microtome.pyramid import errors

MAX_KEY = 64
MAX_VALUE = 2000
MAX_TAG = 40
MAX_TAGS = 50
#: Properties changed in one request (a CSV import applies many requests' worth).
MAX_CHANGES = 200
#: Characters allowed in keys and tags besides letters and digits.
_KEY_EXTRA = frozenset(" _.:-/()#%")
SOURCES = ("user", "scanner", "csv")
#: Grid filters at once (each an indexed EXISTS).
MAX_FILTERS = 5


def check_key(key: Any, what: str = "property key") -> str:
    """A valid key (surrounding spaces removed), else InvalidRequest naming it."""
    if not isinstance(key, str):
        raise errors.InvalidRequest(f"{what} must be a string")
    k = key.strip()
    if not 1 <= len(k) <= MAX_KEY:
        raise errors.InvalidRequest(f"{what} must be 1 to {MAX_KEY} characters",
                                    {"key": key[:100]})
    bad = sorted({c for c in k if not (c.isalnum() or c in _KEY_EXTRA)})
    if bad:
        raise errors.InvalidRequest(
            f"{what} may hold only letters, digits, spaces and {''.join(sorted(_KEY_EXTRA))}",
            {"key": key[:100], "characters": "".join(bad)[:20]})
    return k


def check_value(value: Any, key: str) -> str | None:
    """The stored text of a value; None means "remove the property"."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise errors.InvalidRequest("property values must be finite numbers", {"key": key})
        return repr(value)
    if not isinstance(value, str):
        raise errors.InvalidRequest("property values must be text, numbers, booleans or null",
                                    {"key": key})
    if len(value) > MAX_VALUE:
        raise errors.InvalidRequest(f"property values must be at most {MAX_VALUE} characters",
                                    {"key": key})
    if not value.isascii():
        try:
            value.encode("utf-8")  # lone surrogates (from a query string) are not text
        except UnicodeEncodeError:
            raise errors.InvalidRequest("property values must be valid text",
                                        {"key": key}) from None
    if any(ord(c) < 32 and c not in "\t\n\r" for c in value):
        raise errors.InvalidRequest("property values must not hold control characters",
                                    {"key": key})
    return value


def check_changes(body: Mapping[str, Any]) -> dict[str, str | None]:
    """{key: text or None (remove)} from a PATCH body, every key and value checked."""
    if not isinstance(body, Mapping) or not body:
        raise errors.InvalidRequest("the body must be an object of properties {key: value}")
    if len(body) > MAX_CHANGES:
        raise errors.InvalidRequest(f"at most {MAX_CHANGES} properties per request")
    out: dict[str, str | None] = {}
    for raw_key, value in body.items():
        key = check_key(raw_key)
        out[key] = check_value(value, key)
    return out


def check_tags(tags: Any) -> list[str]:
    if not isinstance(tags, list) or len(tags) > MAX_TAGS:
        raise errors.InvalidRequest(f"tags must be a list of at most {MAX_TAGS} names")
    seen: dict[str, str] = {}
    for t in tags:
        tag = check_key(t, "tag")
        if len(tag) > MAX_TAG:
            raise errors.InvalidRequest(f"tags must be at most {MAX_TAG} characters",
                                        {"tag": tag})
        seen.setdefault(tag.lower(), tag)
    return list(seen.values())


# -- storage ------------------------------------------------------------------------
_TABLES = {"image": ("image_properties", "image_id"),
           "project": ("project_properties", "project_id")}


def _table(kind: str) -> tuple[str, str]:
    return _TABLES[kind]


async def read(conn: asyncpg.Pool | asyncpg.Connection, kind: str,
               owner_id: int) -> list[dict[str, Any]]:
    table, col = _table(kind)
    rows = await conn.fetch(
        f"""SELECT p.key, p.value, p.source, p.updated_at, u.username AS updated_by
            FROM {table} p LEFT JOIN users u ON u.id = p.updated_by
            WHERE p.{col} = $1 ORDER BY lower(p.key)""", owner_id)
    return [dict(r) for r in rows]


async def write(conn: asyncpg.Connection, kind: str, owner_id: int,
                changes: Mapping[str, str | None], *, user_id: int | None,
                source: str = "user") -> None:
    """Set (or remove, for None) each property; one statement per kind of change."""
    table, col = _table(kind)
    drop = [k for k, v in changes.items() if v is None]
    keep = [(k, v) for k, v in changes.items() if v is not None]
    if drop:
        await conn.execute(f"DELETE FROM {table} WHERE {col} = $1 AND key = ANY($2::text[])",
                           owner_id, drop)
    if keep:
        await conn.execute(
            f"""INSERT INTO {table} ({col}, key, value, source, updated_by)
                SELECT $1, k, v, $4, $5 FROM unnest($2::text[], $3::text[]) AS t(k, v)
                ON CONFLICT ({col}, key) DO UPDATE SET value = excluded.value,
                    source = excluded.source, updated_by = excluded.updated_by,
                    updated_at = now()""",
            owner_id, [k for k, _ in keep], [v for _, v in keep], source, user_id)


# -- image grid: filter and sort by property ------------------------------------------
@dataclass(frozen=True)
class GridQuery:
    """Property filters (key = value, case-insensitive), tag filters and a property sort."""

    equals: tuple[tuple[str, str], ...] = ()
    tags: tuple[str, ...] = ()
    sort_key: str | None = None
    descending: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def conditions(self, args: list[Any]) -> list[str]:
        """SQL conditions on alias ``i``; appends their parameters to `args`."""
        out = []
        for key, value in self.equals:
            args.extend((key, value.lower()))
            out.append(f"EXISTS (SELECT 1 FROM image_properties fp WHERE fp.image_id = i.id"
                       f" AND fp.key = ${len(args) - 1} AND lower(fp.value) = ${len(args)})")
        if self.tags:
            args.append(list(self.tags))
            out.append(f"i.tags @> ${len(args)}::text[]")
        return out

    def order(self, args: list[Any]) -> str | None:
        """ORDER BY for a property sort: numbers in numeric order, then text, missing last."""
        if self.sort_key is None:
            return None
        args.append(self.sort_key)
        v = f"(SELECT sp.value FROM image_properties sp WHERE sp.image_id = i.id" \
            f" AND sp.key = ${len(args)})"
        d = "DESC" if self.descending else "ASC"
        num = f"CASE WHEN {v} ~ '^\\s*-?[0-9]+(\\.[0-9]+)?\\s*$' THEN {v}::numeric END"
        return (f"{v} IS NULL, {num} {d} NULLS LAST, lower({v}) {d}, i.id {d}")


def grid_query(query: Mapping[str, str] | Any, sort: str | None) -> GridQuery:
    """Parse ``prop=key=value`` (repeatable), ``tag=name`` (repeatable) and a
    ``sort`` of ``prop:key`` / ``-prop:key`` from the image list's query string."""
    equals = []
    props = query.getall("prop", []) if hasattr(query, "getall") else []
    tags = query.getall("tag", []) if hasattr(query, "getall") else []
    if len(props) + len(tags) > MAX_FILTERS:
        raise errors.InvalidRequest(f"at most {MAX_FILTERS} property and tag filters",
                                    {"field": "prop"})
    for raw in props:
        key, sep, value = raw.partition("=")
        if not sep:
            raise errors.InvalidRequest("prop filters are written key=value",
                                        {"field": "prop", "value": raw[:100]})
        k = check_key(key)
        equals.append((k, check_value(value, k) or ""))
    sort_key, desc = None, False
    if sort and sort.lstrip("-").startswith("prop:"):
        desc = sort.startswith("-")
        sort_key = check_key(sort.lstrip("-")[5:], "sort property")
    return GridQuery(tuple(equals), tuple(check_key(t, "tag") for t in tags), sort_key, desc)


async def project_keys(pool: asyncpg.Pool, project_id: int) -> list[dict[str, Any]]:
    """Property keys used by a project's images, with how many images carry each."""
    rows = await pool.fetch(
        """SELECT p.key, count(*) AS images FROM image_properties p
           JOIN project_images pi ON pi.image_id = p.image_id AND pi.project_id = $1
           GROUP BY p.key ORDER BY lower(p.key) LIMIT 500""", project_id)
    return [dict(r) for r in rows]
