"""The bytes of unfinished uploads go with their rows.

Upload rows disappear with their project or user (ON DELETE CASCADE), when a
member loses the right to add images, or when they expire; the partial files
under ``uploads_dir`` must go too, or create-upload-delete loops fill the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from pathlib import Path

import asyncpg

#: Only names we generate (tus ids are URL-safe tokens) are ever removed.
_MAX_NAME = 64


def _unlink_all(uploads_dir: Path, ids: list[str]) -> None:
    for upload_id in ids:
        if upload_id and "/" not in upload_id and len(upload_id) <= _MAX_NAME:
            with contextlib.suppress(OSError):
                (uploads_dir / upload_id).unlink(missing_ok=True)


async def remove_files(uploads_dir: Path, ids: Iterable[str]) -> None:
    """Delete these uploads' partial files (off the event loop)."""
    ids = list(ids)
    if ids:
        await asyncio.to_thread(_unlink_all, uploads_dir, ids)


async def unfinished_of(conn: asyncpg.Pool | asyncpg.Connection, *,
                        project_id: int | None = None, user_id: int | None = None) -> list[str]:
    """Ids of the unfinished uploads of a project and/or user (to remove after a delete)."""
    rows = await conn.fetch(
        """SELECT id FROM uploads WHERE completed_at IS NULL
             AND ($1::bigint IS NULL OR project_id = $1)
             AND ($2::bigint IS NULL OR user_id = $2)""", project_id, user_id)
    return [r["id"] for r in rows]


async def drop_unfinished(conn: asyncpg.Connection, project_id: int, user_id: int) -> list[str]:
    """Forget a member's unfinished uploads into a project (they lost the right to add
    images there); returns the ids whose files to remove once committed."""
    rows = await conn.fetch(
        """DELETE FROM uploads WHERE completed_at IS NULL AND project_id = $1
           AND user_id = $2 RETURNING id""", project_id, user_id)
    return [r["id"] for r in rows]


def _files(uploads_dir: Path) -> list[str]:
    try:
        return [p.name for p in uploads_dir.iterdir() if p.is_file()]
    except FileNotFoundError:
        return []


async def sweep_orphans(pool: asyncpg.Pool, uploads_dir: Path) -> int:
    """Remove partial files whose upload row is gone (left by an older version or a
    crash between a delete and the file's removal).  Files are listed *before* the
    rows are read, and a row is always written before its file: a new upload is
    never mistaken for an orphan."""
    names = await asyncio.to_thread(_files, uploads_dir)
    if not names:
        return 0
    known = {r["id"] for r in await pool.fetch("SELECT id FROM uploads WHERE id = ANY($1)",
                                               names)}
    orphans = [n for n in names if n not in known]
    await remove_files(uploads_dir, orphans)
    return len(orphans)


async def may_complete(conn: asyncpg.Connection, upload: asyncpg.Record) -> bool:
    """May this upload still become an image of its project?  Its uploader must still
    be a contributor there (or an admin).  The project row is share-locked, so a
    concurrent removal (which locks it for update) is either seen or waits."""
    if upload["project_id"] is None:
        return True
    row = await conn.fetchrow(
        """SELECT u.is_admin AND u.disabled_at IS NULL AS admin,
                  (SELECT m.role FROM project_members m
                    WHERE m.project_id = p.id AND m.user_id = u.id) AS role
           FROM projects p, users u WHERE p.id = $1 AND u.id = $2 FOR SHARE OF p""",
        upload["project_id"], upload["user_id"])
    return row is not None and (row["admin"]
                                or row["role"] in ("contributor", "reviewer", "manager"))
