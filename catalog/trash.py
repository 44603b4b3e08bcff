"""The trash: deleted projects, images and annotation sets, restorable until purged.

Who: administrators see and act on every item; a project's managers on the
items of that project (a deleted project, an image whose home project it is,
annotations made in it).  When the project itself is gone (in the trash or
purged) its managers at the time of the delete keep that right.  Other
members of the project get 403, everyone else 404.

Files (an image's pyramid, a failed upload's kept original) stay on disk while
the item is in the trash and are removed when it is purged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import asyncpg
from asyncpg import Connection

from microtome.catalog import jobs, trash_rows
from microtome.catalog.access import Principal
from microtome.catalog.images import remove_image_dir
from microtome.pyramid import errors

log = logging.getLogger("microtome.catalog.trash")

ITEM_COLUMNS = """t.id, t.kind, t.name, t.project_id, t.image_id, t.root_ids, t.summary,
    t.deleted_at, t.purge_after, t.deleted_by, u.username AS deleted_by_name"""


def item_json(row: asyncpg.Record) -> dict[str, Any]:
    out = {k: row[k] for k in ("id", "kind", "name", "project_id", "image_id", "summary",
                               "deleted_at", "purge_after", "deleted_by", "deleted_by_name")}
    out["ids"] = list(row["root_ids"])
    return out


# ------------------------------------------------------------------ what a delete takes

async def project_summary(conn: Connection | asyncpg.Pool, project_id: int) -> dict[str, int]:
    """What deleting a project takes with it (the confirmation dialog states it)."""
    row = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM project_images WHERE project_id = $1) AS images,
                  count(a.id) AS annotations, count(DISTINCT a.user_id) AS authors,
                  (SELECT count(*) FROM project_members WHERE project_id = $1) AS members,
                  (SELECT count(*) FROM terms WHERE project_id = $1) AS terms
           FROM annotations a WHERE a.project_id = $1""", project_id)
    assert row is not None
    return dict(row)


async def image_summary(conn: Connection | asyncpg.Pool, image_id: int) -> dict[str, int]:
    row = await conn.fetchrow(
        """SELECT 1 AS images, count(a.id) AS annotations, count(DISTINCT a.user_id) AS authors,
                  (SELECT count(*) FROM project_images WHERE image_id = $1) AS projects
           FROM annotations a WHERE a.image_id = $1""", image_id)
    assert row is not None
    return dict(row)


async def _managers(conn: Connection, project_id: int | None) -> list[int]:
    if project_id is None:
        return []
    return [r["user_id"] for r in await conn.fetch(
        "SELECT user_id FROM project_members WHERE project_id = $1 AND role = 'manager'",
        project_id)]


async def _move(conn: Connection, *, kind: str, name: str, table: str, ids: list[int],
                project_id: int | None, image_id: int | None, user_id: int | None,
                days: int, summary: dict[str, Any], files: list[str] | None = None) -> int:
    """Capture the rows, then delete them for real (inside the caller's transaction)."""
    purge_after = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    trash_id: int = await conn.fetchval(
        """INSERT INTO trash (kind, name, root_table, root_ids, project_id, image_id, managers,
                              summary, files, deleted_by, purge_after)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id""",
        kind, name[:300], table, ids, project_id, image_id, await _managers(conn, project_id),
        summary, files or [], user_id, purge_after)
    await trash_rows.capture(conn, trash_id, table, ids)
    await conn.execute(f"DELETE FROM {table} WHERE id = ANY($1::bigint[])", ids)
    return trash_id


async def move_project(conn: Connection, project_id: int, user_id: int | None, days: int) -> int:
    name = await conn.fetchval("SELECT name FROM projects WHERE id = $1", project_id)
    if name is None:
        raise errors.NotFound("project not found")
    return await _move(conn, kind="project", name=name, table="projects", ids=[project_id],
                       project_id=project_id, image_id=None, user_id=user_id, days=days,
                       summary=await project_summary(conn, project_id))


async def move_image(conn: Connection, image_id: int, user_id: int | None, days: int,
                     files: list[str]) -> int:
    row = await conn.fetchrow("SELECT name, home_project_id FROM images WHERE id = $1",
                              image_id)
    if row is None:
        raise errors.NotFound("image not found")
    return await _move(conn, kind="image", name=row["name"], table="images", ids=[image_id],
                       project_id=row["home_project_id"], image_id=image_id, user_id=user_id,
                       days=days, summary=await image_summary(conn, image_id), files=files)


async def move_annotations(conn: Connection, image_id: int, ids: list[int], user_id: int | None,
                           days: int) -> int:
    """A set of annotations (a bulk delete) goes to the trash as one item."""
    row = await conn.fetchrow(
        """SELECT i.name, i.home_project_id, count(DISTINCT a.user_id) AS authors,
                  min(a.project_id) AS project_id, count(DISTINCT a.project_id) AS projects
           FROM images i JOIN annotations a ON a.image_id = i.id
           WHERE i.id = $1 AND a.id = ANY($2::bigint[]) GROUP BY i.id""", image_id, ids)
    if row is None:
        raise errors.NotFound("annotations not found")
    # Made in one project: its managers restore them; else the image's home decides.
    project_id = row["project_id"] if row["projects"] == 1 else row["home_project_id"]
    summary = {"annotations": len(ids), "authors": row["authors"], "images": 0}
    return await _move(conn, kind="annotations", name=f"{len(ids)} annotations on {row['name']}",
                       table="annotations", ids=ids, project_id=project_id, image_id=image_id,
                       user_id=user_id, days=days, summary=summary)


# ------------------------------------------------------------------ who sees what

def _visible(principal: Principal, args: list[Any]) -> str:
    """SQL condition on alias ``t``: items the caller may restore or purge."""
    if principal.is_admin:
        return "TRUE"
    args.append(principal.user_id)
    n = len(args)
    return (f"(EXISTS (SELECT 1 FROM project_members m WHERE m.project_id = t.project_id"
            f" AND m.user_id = ${n} AND m.role = 'manager')"
            f" OR (${n} = ANY(t.managers) AND NOT EXISTS"
            f" (SELECT 1 FROM projects p WHERE p.id = t.project_id)))")


async def list_items(pool: asyncpg.Pool, principal: Principal, kind: str | None,
                     limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    args: list[Any] = []
    cond = _visible(principal, args)
    if kind is not None:
        args.append(kind)
        cond += f" AND t.kind = ${len(args)}"
    rows = await pool.fetch(
        f"""SELECT {ITEM_COLUMNS} FROM trash t LEFT JOIN users u ON u.id = t.deleted_by
            WHERE {cond} ORDER BY t.deleted_at DESC, t.id DESC LIMIT {limit} OFFSET {offset}""",
        *args)
    total = await pool.fetchval(f"SELECT count(*) FROM trash t WHERE {cond}", *args)
    return [item_json(r) for r in rows], total


async def _member_of(conn: Connection, item: asyncpg.Record, user_id: int) -> bool:
    """Was or is the caller any member of the item's project (403 rather than 404)?"""
    return bool(await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM project_members WHERE project_id = $1 AND user_id = $2)
               OR EXISTS (SELECT 1 FROM trash_rows WHERE tbl = 'project_members'
                          AND trash_id = $3 AND (data->>'user_id')::bigint = $2)""",
        item["project_id"], user_id, item["id"]))


async def locked_item(conn: Connection, principal: Principal, trash_id: int) -> asyncpg.Record:
    """The item, locked for restore/purge (a second caller waits, then finds it gone)."""
    args: list[Any] = [trash_id]
    cond = _visible(principal, args)
    row = await conn.fetchrow(
        f"SELECT t.*, ({cond}) AS allowed FROM trash t WHERE t.id = $1 FOR UPDATE", *args)
    if row is None:
        raise errors.NotFound("not in the trash (restored or purged already?)")
    if not row["allowed"]:
        if principal.user_id is not None and await _member_of(conn, row, principal.user_id):
            raise errors.Forbidden("only the project's managers or an administrator may do this")
        raise errors.NotFound("not in the trash (restored or purged already?)")
    return row


# ------------------------------------------------------------------ restore and purge

async def _explain_missing(conn: Connection, missing: dict[str, list[str]]) -> str | None:
    """Why a restore cannot be complete: a project or image that is gone."""
    for table, label in (("projects", "project"), ("images", "image")):
        for ident in sorted(set(missing.get(table, [])), key=int):
            other = await conn.fetchrow(
                "SELECT id, name FROM trash WHERE root_table = $1 AND $2 = ANY(root_ids)",
                table, int(ident))
            if other is not None:
                return (f"its {label} \u201c{other['name']}\u201d is in the trash: restore it"
                        f" first (trash item {other['id']})")
            return (f"its {label} (id {ident}) was purged: what belonged to it cannot come"
                    " back; restore with force to bring back the rest")
    return None


async def restore(conn: Connection, item: asyncpg.Record, force: bool) -> dict[str, Any]:
    try:
        async with conn.transaction():  # a savepoint: a refused restore changes nothing
            outcome = await trash_rows.restore(conn, item["id"])
            reason = await _explain_missing(conn, outcome.missing)
            if reason is not None and not force:
                raise errors.Conflict(f"cannot restore \u201c{item['name']}\u201d: {reason}",
                                      {"missing": outcome.missing, "dropped": outcome.dropped})
            if item["kind"] == "image":
                await _unstick(conn, item["root_ids"])
    except asyncpg.UniqueViolationError as exc:
        what = "project" if item["kind"] == "project" else "item"
        raise errors.Conflict(f"a {what} with the same name exists now; rename it first",
                              {"constraint": exc.constraint_name}) from None
    await conn.execute("DELETE FROM trash WHERE id = $1", item["id"])
    return {"id": item["id"], "kind": item["kind"], "ids": list(item["root_ids"]),
            "dropped": {k: v for k, v in outcome.dropped.items() if v}}


async def _unstick(conn: Connection, image_ids: list[int]) -> None:
    """An image deleted before its conversion ran had its job cancelled: it comes
    back as failed (with that reason), so Retry converts it from the kept original."""
    await conn.execute(
        """UPDATE images SET status = 'failed', updated_at = now()
           WHERE id = ANY($1::bigint[]) AND status IN ('pending', 'converting')""", image_ids)


async def purge(conn: Connection, item: asyncpg.Record) -> list[int]:
    """Forget the item; returns the images whose files to remove after commit."""
    await conn.execute("DELETE FROM trash WHERE id = $1", item["id"])
    return list(item["root_ids"]) if item["kind"] == "image" else []


async def remove_files(images_dir: Path, uploads_dir: Path, image_ids: list[int],
                       files: list[str], remote: str | None = None) -> None:
    """Blocking work off the loop: the images' folders (and their objects in the
    `remote` store, MICROTOME_STORAGE) and the kept upload originals."""
    for image_id in image_ids:
        await remove_image_dir(images_dir, image_id, remote)
    await asyncio.to_thread(_unlink_under, uploads_dir, files)


def _unlink_under(root: Path, paths: list[str]) -> None:
    root = root.resolve()
    for p in map(Path, paths):
        if p.is_relative_to(root):  # never anything outside the uploads folder
            p.unlink(missing_ok=True)


async def purge_expired(conn: Connection, images_dir: Path, uploads_dir: Path,
                        remote: str | None = None) -> int:
    """Purge every item past its date (the purge job); returns how many."""
    done = 0
    while True:
        async with conn.transaction():
            item = await conn.fetchrow(
                """SELECT * FROM trash WHERE purge_after <= now() ORDER BY purge_after
                   LIMIT 1 FOR UPDATE SKIP LOCKED""")
            if item is None:
                return done
            image_ids = await purge(conn, item)
        await remove_files(images_dir, uploads_dir, image_ids, list(item["files"]), remote)
        log.info("purged trash item %s (%s %s)", item["id"], item["kind"], item["name"])
        done += 1


# ------------------------------------------------------------------ the purge job

#: How often the server checks for items past their date (seconds).
PURGE_EVERY_S = 3600.0
PURGE_KIND = "purge"


async def enqueue_purge(conn: Connection | asyncpg.Pool) -> int | None:
    """Queue a purge job when something is due and none is waiting; its id, else None."""
    job_id: int | None = await conn.fetchval(
        """INSERT INTO jobs (kind, source_path)
           SELECT $1, '' WHERE EXISTS (SELECT 1 FROM trash WHERE purge_after <= now())
             AND NOT EXISTS (SELECT 1 FROM jobs WHERE kind = $1
                             AND status IN ('queued', 'running'))
           RETURNING id""", PURGE_KIND)
    if job_id is not None:
        await conn.execute("NOTIFY microtome_jobs")
    return job_id


async def run_purge_job(conn: Connection, job: asyncpg.Record, images_dir: Path,
                        remote: str | None = None) -> str:
    """A worker runs a claimed purge job (the uploads folder sits beside the images)."""
    uploads_dir = images_dir.parent / "uploads"
    try:
        count = await purge_expired(conn, images_dir, uploads_dir, remote)
    except (asyncpg.PostgresError, OSError) as exc:
        log.warning("purge job %s failed: %s", job["id"], exc)
        return await jobs.fail(conn, job, f"purge failed: {exc}", True)
    await conn.execute(
        f"""UPDATE jobs SET status = 'done', progress = 1, finished_at = now(),
               options = jsonb_build_object('purged', $4::int) WHERE {jobs.LEASE}""",
        *jobs.lease(job), count)
    return "done"


async def purge_scheduler(pool: asyncpg.Pool, every: float = PURGE_EVERY_S) -> None:
    """Queue a purge job now and then (any worker of any host runs it).  The caller
    runs the first check at start-up, before serving."""
    while True:
        await asyncio.sleep(every)
        try:
            await enqueue_purge(pool)
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("could not queue the trash purge: %s", exc)
