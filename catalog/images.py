"""Image rows: visibility-filtered listing, JSON shape, registration, deletion."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path
from typing import Any

import asyncpg

from microtome.catalog.access import Principal
from microtome.catalog.properties import GridQuery
from microtome.catalog.storage import delete_remote, image_dir, storage_relpath
from microtome.pyramid import errors

IMAGE_COLUMNS = """i.id, i.name, i.source_filename, i.format, i.width, i.height, i.levels,
    i.pixel_size_um, i.channels, i.checksum, i.status, i.version, i.created_at, i.updated_at,
    CASE WHEN i.status = 'failed' THEN (SELECT j.error FROM jobs j WHERE j.image_id = i.id
                                        ORDER BY j.id DESC LIMIT 1) END AS error,
    i.tags, (SELECT jsonb_object_agg(p.key, p.value) FROM image_properties p
             WHERE p.image_id = i.id) AS properties,
    (SELECT jsonb_build_object('id', d.id, 'name', d.name) FROM images d
      WHERE i.checksum IS NOT NULL AND d.checksum = i.checksum AND d.id < i.id
        AND d.home_project_id = i.home_project_id ORDER BY d.id LIMIT 1) AS duplicate_of"""

SORTS = {"id": "i.id", "name": "lower(i.name)", "created_at": "i.created_at",
         "updated_at": "i.updated_at"}
STATUSES = ("pending", "converting", "ready", "failed")
_SHA256 = re.compile(r"(?:sha256:)?([0-9a-fA-F]{64})")
def image_json(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in ("id", "name", "source_filename", "format", "width", "height",
                               "levels", "pixel_size_um", "channels", "checksum", "status",
                               "version", "created_at", "updated_at")}
    out["channels"] = out["channels"] or []
    # Why a failed image failed (its last job's one-line reason), else null.
    out["error"] = row["error"] if "error" in row.keys() else None
    out["tags"] = list(row["tags"]) if "tags" in row.keys() else []
    out["properties"] = (row["properties"] if "properties" in row.keys() else None) or {}
    # The same file (checksum) uploaded earlier into the same project, if any.
    out["duplicate_of"] = row["duplicate_of"] if "duplicate_of" in row.keys() else None
    i = row["id"]
    out["urls"] = {"dzi": f"/dzi/{i}.dzi", "iiif": f"/iiif/3/{i}/info.json",
                   "thumbnail": f"/images/{i}/thumbnail.jpg", "viewer": f"/viewer/{i}"}
    return out


def visibility(principal: Principal | None, args: list[Any]) -> str:
    """SQL condition on alias ``i`` for images `principal` may see; appends to `args`."""
    if principal is not None and principal.is_admin:
        return "TRUE"
    public = ("EXISTS (SELECT 1 FROM project_images pi JOIN projects p ON p.id = pi.project_id"
              " WHERE pi.image_id = i.id AND p.public)")
    if principal is None:
        return public
    if principal.share is not None:
        s = principal.share
        if s.image_id is not None:
            args.append(s.image_id)
            return f"i.id = ${len(args)}"
        args.append(s.project_id)
        return ("EXISTS (SELECT 1 FROM project_images pi WHERE pi.image_id = i.id"
                f" AND pi.project_id = ${len(args)})")
    args.append(principal.user_id)
    n = len(args)
    return (f"(i.owner_id = ${n} OR EXISTS (SELECT 1 FROM project_images pi JOIN"
            " project_members m ON m.project_id = pi.project_id"
            f" WHERE pi.image_id = i.id AND m.user_id = ${n}) OR {public})")


async def list_images(pool: asyncpg.Pool, principal: Principal | None, *,
                      project_id: int | None, limit: int, offset: int, sort: str | None,
                      q: str | None, status: str | None, grid: GridQuery | None = None,
                      checksum: str | None = None) -> tuple[list[dict[str, Any]], int]:
    args: list[Any] = []
    where = [visibility(principal, args)]
    if grid is not None:  # property and tag filters (catalog/properties.py)
        where += grid.conditions(args)
    if project_id is not None:
        args.append(project_id)
        where.append("EXISTS (SELECT 1 FROM project_images pj WHERE pj.image_id = i.id"
                     f" AND pj.project_id = ${len(args)})")
    if q and len(q) > 200:
        raise errors.InvalidRequest("q must be at most 200 characters")
    if q:
        # ILIKE with the user's text escaped: '%', '_' and '\' are literal.
        args.append("%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        where.append(f"i.name ILIKE ${len(args)}")
    if checksum is not None:
        m = _SHA256.fullmatch(checksum)
        if m is None:
            raise errors.InvalidRequest("checksum must be a SHA-256 in hex (64 characters, "
                                        "optionally after 'sha256:')")
        args.append("sha256:" + m.group(1).lower())  # as the conversion job stores it
        where.append(f"i.checksum = ${len(args)}")
    if status:
        if status not in STATUSES:
            raise errors.InvalidRequest("status must be one of " + ", ".join(STATUSES))
        args.append(status)
        where.append(f"i.status = ${len(args)}")
    sort = sort or "-created_at"
    by_property = grid is not None and grid.sort_key is not None
    column = SORTS.get(sort.lstrip("-")) if not by_property else "i.id"
    if column is None:
        raise errors.InvalidRequest("sort must be one of " + ", ".join(
            s for k in SORTS for s in (k, "-" + k)))
    direction = "DESC" if sort.startswith("-") else "ASC"
    cond = " AND ".join(where)
    total = await pool.fetchval(f"SELECT count(*) FROM images i WHERE {cond}", *args)
    # After the count: the property sort adds a parameter the count does not use.
    prop_order = grid.order(args) if grid is not None else None
    order = prop_order or f"{column} {direction}, i.id {direction}"
    rows = await pool.fetch(
        f"SELECT {IMAGE_COLUMNS} FROM images i WHERE {cond} ORDER BY {order}"
        f" LIMIT {int(limit)} OFFSET {int(offset)}", *args)
    return [image_json(r) for r in rows], int(total)


async def get_image(pool: asyncpg.Pool | asyncpg.Connection, image_id: int) -> dict[str, Any]:
    row = await pool.fetchrow(f"SELECT {IMAGE_COLUMNS} FROM images i WHERE i.id = $1", image_id)
    if row is None:
        raise errors.NotFound("image not found")
    return image_json(row)


async def create_pending(conn: asyncpg.Connection, *, name: str, source_filename: str,
                         owner_id: int | None, project_id: int | None) -> int:
    """A row for an image that a conversion job will fill in (status 'pending')."""
    image_id: int = await conn.fetchval(
        """INSERT INTO images (name, source_filename, owner_id, status, home_project_id)
           VALUES ($1, $2, $3, 'pending', $4) RETURNING id""",
        name[:255] or "image", source_filename[:1000], owner_id, project_id)
    await conn.execute("UPDATE images SET storage_path = $2 WHERE id = $1",
                       image_id, storage_relpath(image_id))
    if project_id is not None:
        await conn.execute(
            "INSERT INTO project_images (project_id, image_id) VALUES ($1, $2)",
            project_id, image_id)
    return image_id


async def mark_ready(conn: asyncpg.Connection, image_id: int, result: Any,
                     checksum: str | None) -> None:
    """Record a finished conversion (fields of converters.ConvertResult)."""
    px = getattr(result, "pixel_size_um", None)
    if isinstance(px, (tuple, list)):
        px = float(px[0]) if px else None
    channels = getattr(result, "channels", None) or []
    channels = [c if isinstance(c, (dict, str)) else getattr(c, "__dict__", str(c))
                for c in channels]
    await conn.execute(
        """UPDATE images SET status = 'ready', format = $2, width = $3, height = $4,
               levels = $5, pixel_size_um = $6, channels = $7, checksum = $8,
               version = $9, updated_at = now()
           WHERE id = $1""",
        image_id, str(getattr(result, "format", "") or ""), int(result.width),
        int(result.height), int(result.levels), px, _jsonable(channels), checksum,
        str(getattr(result, "version", "") or "1"))


def _jsonable(value: Any) -> Any:
    import orjson

    return orjson.loads(orjson.dumps(value, default=str))


async def register_image(pool: asyncpg.Pool, *, name: str, relpath: str, width: int,
                         height: int, levels: int, format: str = "ome-zarr",
                         pixel_size_um: float | None = None, version: str = "1",
                         source_filename: str = "", project_id: int | None = None,
                         owner_id: int | None = None) -> int:
    """Register an already converted OME-Zarr (relative to images_dir) as 'ready'."""
    async with pool.acquire() as conn, conn.transaction():
        image_id: int = await conn.fetchval(
            """INSERT INTO images (name, source_filename, format, width, height, levels,
                   pixel_size_um, storage_path, status, version, owner_id, home_project_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'ready', $9, $10, $11) RETURNING id""",
            name, source_filename, format, width, height, levels, pixel_size_um, relpath,
            version, owner_id, project_id)
        if project_id is not None:
            await conn.execute(
                "INSERT INTO project_images (project_id, image_id) VALUES ($1, $2)",
                project_id, image_id)
    return image_id


async def remove_image_dir(images_dir: Path, image_id: int, remote: str | None = None) -> None:
    """Delete ``images_dir/<id>`` (the pyramid, partials, originals) off the event loop,
    and the image's objects in the `remote` store when there is one."""
    target = image_dir(images_dir, image_id)
    await asyncio.to_thread(shutil.rmtree, target, True)
    if remote:
        await asyncio.to_thread(delete_remote, remote, image_id)


async def log_activity(conn: asyncpg.Pool | asyncpg.Connection, action: str, *,
                       user_id: int | None = None, image_id: int | None = None,
                       project_id: int | None = None,
                       detail: dict[str, Any] | None = None) -> None:
    await conn.execute(
        """INSERT INTO activity_log (user_id, action, image_id, project_id, detail)
           VALUES ($1, $2, $3, $4, $5)""",
        user_id, action, image_id, project_id, detail or {})
