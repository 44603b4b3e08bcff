"""imzML uploads come as a pair: ``X.imzML`` (the XML) and ``X.ibd`` (the data).

Each half is an ordinary tus upload.  When one half's last byte arrives and
its partner (same uploader, same project, same file stem, the other
extension) has all its bytes too, the two become ONE pending image and one
conversion job (the .imzML as the source, the .ibd as its extra path);
otherwise the half waits, complete but not yet an image (``completed_at``
stays NULL, so an unpaired half expires with the other unfinished uploads).
The upload's state says what it waits for (``waiting_for``).  Either order
works; a transaction-scoped advisory lock per (user, project, stem) makes
the two halves' completions take turns, so a pair is joined exactly once.
"""

from __future__ import annotations

import os

import asyncpg

IMZML, IBD = ".imzml", ".ibd"


def half(filename: str) -> tuple[str, str] | None:
    """(stem, extension in lower case) of an imzML or ibd file name, else None."""
    stem, ext = os.path.splitext(filename)
    ext = ext.lower()
    return (stem, ext) if ext in (IMZML, IBD) and stem else None


def waiting_for(filename: str) -> str:
    """The file name of the other half (what a lone half waits for)."""
    parts = half(filename)
    assert parts is not None
    stem, ext = parts
    return f"{stem}.ibd" if ext == IMZML else f"{stem}.imzML"


async def take_turns(conn: asyncpg.Connection, upload_id: str) -> None:
    """If ``upload_id`` is one half of a pair, wait for the transaction-scoped
    lock of its (user, project, stem).  Taken BEFORE any upload row is locked:
    both halves then lock in the same order (this lock, own row, partner row),
    so two halves completing at once cannot deadlock."""
    row = await conn.fetchrow("SELECT filename, user_id, project_id FROM uploads WHERE id = $1",
                              upload_id)
    parts = half(row["filename"]) if row is not None else None
    if row is not None and parts is not None:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 19))",
                           f"msi:{row['user_id']}:{row['project_id']}:{parts[0]}")


async def partner(conn: asyncpg.Connection, up: asyncpg.Record) -> asyncpg.Record | None:
    """The other half of ``up`` with all its bytes, locked; None if not there yet.
    Call inside the transaction that ran `take_turns` first."""
    parts = half(up["filename"])
    assert parts is not None
    stem, ext = parts
    other = IBD if ext == IMZML else IMZML
    rows = await conn.fetch(
        """SELECT * FROM uploads
           WHERE id <> $1 AND user_id IS NOT DISTINCT FROM $2
             AND project_id IS NOT DISTINCT FROM $3
             AND completed_at IS NULL AND "offset" = length AND length > 0
             AND lower(filename) = lower($4)
           ORDER BY created_at DESC LIMIT 1 FOR UPDATE""",
        up["id"], up["user_id"], up["project_id"], stem + other)
    return rows[0] if rows else None
