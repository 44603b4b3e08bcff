"""`microtome user add` and `microtome import`: catalog administration from the shell."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from microtome.core.settings import Settings, from_env
from microtome.pyramid import errors

if TYPE_CHECKING:
    from microtome.converters.inputs import Source


async def open_db(settings: Settings) -> asyncpg.Pool:
    """The catalog pool (embedded server unless DATABASE_URL), migrated."""
    # microtome.app here, not at the top: `microtome convert` loads this
    # module for its parser and must not pay for importing the web application.
    from microtome.app import MIGRATION_DIRS
    from microtome.catalog.db import create_pool, start_embedded
    from microtome.catalog.migrate import migrate

    dsn = settings.database_url or await start_embedded(settings.var_dir)
    pool = await create_pool(dsn, min_size=1, max_size=4)
    await migrate(pool, MIGRATION_DIRS)
    return pool


def _dsn_of(pool: asyncpg.Pool) -> str:
    # asyncpg keeps the connect arguments; the first one is the DSN we gave it.
    return str(pool._connect_args[0])  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- user add

def _read_password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        print("error: no terminal to ask for a password; use --password-stdin", file=sys.stderr)
        return None
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        print("error: the passwords differ", file=sys.stderr)
        return None
    return first


async def _user_add(settings: Settings, name: str, password: str, admin: bool) -> int:
    from microtome.catalog.api_auth import create_user
    from microtome.catalog.jsonio import check

    try:
        check("UserCreate", {"username": name, "password": password, "is_admin": admin})
    except errors.InvalidRequest as exc:
        print(f"error: {exc.message.replace('invalid request body: ', '')}", file=sys.stderr)
        return 2
    pool = await open_db(settings)
    try:
        row = await create_user(pool, name, password, admin)
    except errors.Conflict as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await pool.close()
    print(f"created {'administrator' if admin else 'user'} {row['username']} (id {row['id']})")
    return 0


def run_user_add(args: argparse.Namespace) -> int:
    password = _read_password(args)
    if password is None:
        return 2
    return asyncio.run(_user_add(from_env(), args.name, password, args.admin))


# --------------------------------------------------------------------------- import

def _sources(folder: Path) -> list[Source]:
    """What to convert under `folder`: every file, walked like `microtome convert` does
    (a DICOM series given as several files is one source)."""
    from microtome.converters.inputs import gather_sources

    return gather_sources([folder])[0]


async def _ensure_project(conn: asyncpg.Connection, name: str, public: bool) -> int:
    row = await conn.fetchrow("SELECT id FROM projects WHERE lower(name) = lower($1)", name)
    if row is not None:
        return int(row["id"])
    return int(await conn.fetchval(
        "INSERT INTO projects (name, public) VALUES ($1, $2) RETURNING id", name, public))


class UsageError(Exception):
    """Bad command-line input found once the catalog is open (exit status 2)."""


async def _owner_id(conn: asyncpg.Connection, owner: str) -> int:
    row = await conn.fetchrow(
        "SELECT id, disabled_at FROM users WHERE lower(username) = lower($1)", owner)
    if row is None:
        raise UsageError(f"--owner: no user named {owner!r} (create it first with "
                         f"`microtome user add {owner}`)")
    if row["disabled_at"] is not None:
        raise UsageError(f"--owner: the account {owner!r} is disabled")
    return int(row["id"])


async def enqueue_folder(pool: asyncpg.Pool, folder: Path, project: str, public: bool = False,
                         owner: str | None = None
                         ) -> tuple[int, list[tuple[str, int | None, str]]]:
    """Queue a conversion per file; (project id, [(file name, job id or None, note)]).

    `owner` (a user name) becomes a manager of the project and the images'
    uploader; without one, the project has no member until an admin adds one.
    """
    from microtome.catalog import images, jobs

    queued: list[tuple[str, int | None, str]] = []
    async with pool.acquire() as conn, conn.transaction():
        owner_id = await _owner_id(conn, owner) if owner is not None else None
        project_id = await _ensure_project(conn, project, public)
        if owner_id is not None:
            await conn.execute(
                """INSERT INTO project_members (project_id, user_id, role)
                   VALUES ($1, $2, 'manager')
                   ON CONFLICT (project_id, user_id) DO UPDATE SET role = 'manager'""",
                project_id, owner_id)
        for source in _sources(folder):
            src = source.paths[0]
            path = str(src.resolve())
            name = src.name if len(source.paths) == 1 else (
                f"{src.stem} (DICOM series, {len(source.paths)} files)")
            # Re-running an import does not duplicate what is queued or done.
            # A file that already failed is not retried until it changes, so
            # `make run` stays fast and does not pile up failed images.
            seen = await conn.fetchrow(
                """SELECT j.id, j.status FROM jobs j
                   WHERE j.source_path = $1 AND j.project_id = $2
                     AND (j.status IN ('queued', 'running')
                          OR (j.status = 'done' AND j.image_id IS NOT NULL)
                          OR (j.status = 'failed' AND j.created_at > to_timestamp($3)))
                   ORDER BY j.id DESC LIMIT 1""", path, project_id, src.stat().st_mtime)
            if seen:
                note = "already imported" if seen["status"] != "failed" else "failed before"
                queued.append((name, int(seen["id"]), note))
                continue
            image_id = await images.create_pending(
                conn, name=name, source_filename=src.name, owner_id=owner_id,
                project_id=project_id)
            job_id = await jobs.enqueue(
                conn, image_id=image_id, source_path=path, project_id=project_id,
                extra_paths=[str(p.resolve()) for p in source.paths[1:]])
            queued.append((name, job_id, ""))
    return project_id, queued


async def _watch(pool: asyncpg.Pool, entries: list[tuple[str, int | None, str]],
                 quiet: bool) -> dict[int, asyncpg.Record]:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    ids = [j for _, j, _ in entries if j is not None]
    final = ("done", "failed", "cancelled")
    rows: dict[int, asyncpg.Record] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  TextColumn("{task.fields[status]}"), disable=quiet) as bar:
        tasks = {j: bar.add_task(name[:40], total=1.0, status="queued")
                 for name, j, _ in entries if j is not None}
        while True:
            for r in await pool.fetch(
                    "SELECT id, status, progress, error FROM jobs WHERE id = ANY($1::bigint[])",
                    ids):
                rows[r["id"]] = r
                bar.update(tasks[r["id"]], completed=float(r["progress"]), status=r["status"])
            if all(rows.get(j) is not None and rows[j]["status"] in final for j in ids):
                return rows
            await asyncio.sleep(0.5)


async def _import(settings: Settings, folder: Path, project: str, workers: int,
                  quiet: bool, public: bool = False, owner: str | None = None) -> int:
    from microtome.catalog.worker import WorkerPool

    pool = await open_db(settings)
    workers_pool = None
    try:
        project_id, entries = await enqueue_folder(pool, folder, project, public, owner)
        if not entries:
            print(f"nothing to import in {folder}")
            return 0
        if workers > 0:
            workers_pool = WorkerPool(_dsn_of(pool), settings, workers, db=pool)
            await workers_pool.start()
        rows = await _watch(pool, entries, quiet)
    finally:
        if workers_pool is not None:
            await workers_pool.stop()
        await pool.close()
    return _summary(entries, rows, project, project_id)


def _summary(entries: list[tuple[str, int | None, str]], rows: dict[int, Any],
             project: str, project_id: int) -> int:
    ok = failed = 0
    for name, job_id, note in entries:
        row = rows.get(job_id) if job_id is not None else None
        status = row["status"] if row is not None else "skipped"
        if status == "done":
            ok += 1
        else:
            failed += 1
            reason = (row["error"] if row is not None else None) or note or status
            print(f"{name}: {status}: {reason}", file=sys.stderr)
    print(f"imported {ok} of {len(entries)} file(s) into project {project!r} (id {project_id})"
          + (f"; {failed} failed" if failed else ""))
    return 1 if failed else 0


def main_import(folder: Path, project: str, *, settings: Settings | None = None,
                workers: int = 1, quiet: bool = False, public: bool = False,
                owner: str | None = None) -> int:
    """`microtome import` as a function (used by `make run` for the samples).

    Returns 0 when every file converted, 1 when some failed (each reported on
    one line), 2 for a usage error or when the catalog cannot be reached.
    `public` applies only when the project is created: anyone may view it.
    """
    if not folder.is_dir():
        print(f"error: {folder} is not a directory", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_import(settings or from_env(), folder, project, workers, quiet,
                                   public, owner))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, asyncpg.PostgresError, RuntimeError) as exc:
        print(f"error: the catalog database cannot be reached: {exc}", file=sys.stderr)
        return 2


def run_import(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    if not folder.is_dir():
        print(f"error: {args.dir} is not a directory", file=sys.stderr)
        return 2
    if not args.project.strip() or len(args.project) > 200:
        print("error: --project needs a name of 1-200 characters", file=sys.stderr)
        return 2
    owner = args.owner.strip() if args.owner is not None else None
    if owner is not None and not 1 <= len(owner) <= 64:
        print("error: --owner needs a user name of 1-64 characters", file=sys.stderr)
        return 2
    return main_import(folder, args.project.strip(), workers=args.workers, quiet=args.quiet,
                       public=args.public, owner=owner)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", metavar="ACTION")
    add = user_sub.add_parser("add", help="create a user (e.g. the first administrator)")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="make the user an administrator")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of stdin")
    add.set_defaults(func=run_user_add)

    imp = sub.add_parser("import", help="convert every file of a folder into a project")
    imp.add_argument("dir")
    imp.add_argument("--project", required=True, help="project name (created if missing)")
    imp.add_argument("--workers", type=int, default=1,
                     help="conversion processes to run here (0: leave it to `serve`)")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.add_argument("--public", action="store_true",
                     help="when creating the project, let anyone (even without an account) "
                          "view it")
    imp.add_argument("--owner", metavar="USER",
                     help="this existing user becomes a manager of the project and the "
                          "uploader of its images (without it the project has no member "
                          "until an administrator adds one)")
    imp.set_defaults(func=run_import)

