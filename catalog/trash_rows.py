"""Moving rows into the trash and back, following the database's foreign keys.

A project, image or set of annotations is deleted for real (so no query
anywhere can show it by mistake), but first every row that the delete will
take with it is copied into `trash_rows`: the rows of the root table, then,
recursively, of every table that references captured rows with
``ON DELETE CASCADE``.  References that ``ON DELETE SET NULL`` will clear are
noted in `trash_nulls`.  The walk reads the foreign keys from the catalog at
run time, so tables added by other packages (analyses, descriptors...) are
kept and restored without this module knowing them.

Restoring inserts the rows back, parents before children, with their own ids
(``OVERRIDING SYSTEM VALUE``).  A row whose parent has gone meanwhile (a
user deleted, a project purged) is dropped where the delete would have
cascaded and gets NULL where it would have been set to NULL — exactly what
the database would have done had the row still been there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from asyncpg import Connection

#: Tables kept up to date by triggers from others: never captured, they are
#: rebuilt when their sources come back (annotation_density from annotations;
#: retrieval_queue lists annotations whose descriptors are to be computed).
DERIVED = frozenset({"annotation_density", "retrieval_queue"})



@dataclass(frozen=True)
class ForeignKey:
    child: str
    cols: tuple[str, ...]
    parent: str
    refcols: tuple[str, ...]
    on_delete: str  # 'c' cascade, 'n' set null, 'a'/'r' refuse, 'd' set default


@dataclass
class Schema:
    """The current schema's tables: columns (insertable), their types, primary keys, FKs."""

    columns: dict[str, list[str]] = field(default_factory=dict)
    types: dict[tuple[str, str], str] = field(default_factory=dict)
    pkeys: dict[str, list[str]] = field(default_factory=dict)
    fks: list[ForeignKey] = field(default_factory=list)

    def children(self, table: str) -> list[ForeignKey]:
        return [f for f in self.fks if f.parent == table]

    def parents(self, table: str) -> list[ForeignKey]:
        return [f for f in self.fks if f.child == table]


_FK_SQL = """
SELECT c.conrelid::regclass::text AS child, c.confrelid::regclass::text AS parent,
       c.confdeltype::text AS on_delete,
       ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n
             ORDER BY k.o) AS cols,
       ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n
             ORDER BY k.o) AS refcols
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
WHERE c.contype = 'f' AND t.relnamespace = current_schema()::regnamespace"""

_COL_SQL = """
SELECT c.oid::regclass::text AS tbl, a.attname::text AS col,
       format_type(a.atttypid, a.atttypmod) AS type, a.attgenerated::text AS generated
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.oid, a.attnum"""

_PK_SQL = """
SELECT c.conrelid::regclass::text AS tbl,
       ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n
             ORDER BY k.o) AS cols
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
WHERE c.contype = 'p' AND t.relnamespace = current_schema()::regnamespace"""


async def load_schema(conn: Connection) -> Schema:
    """Read fresh each time: cheap next to a delete, and never stale after a migration."""
    s = Schema()
    for r in await conn.fetch(_COL_SQL):
        s.types[(r["tbl"], r["col"])] = r["type"]
        if r["generated"] == "":  # generated columns are computed, not inserted
            s.columns.setdefault(r["tbl"], []).append(r["col"])
    s.pkeys = {r["tbl"]: list(r["cols"]) for r in await conn.fetch(_PK_SQL)}
    s.fks = [ForeignKey(r["child"], tuple(r["cols"]), r["parent"], tuple(r["refcols"]),
                        r["on_delete"]) for r in await conn.fetch(_FK_SQL)]
    return s


def _q(name: str) -> str:
    """A column name as SQL (names come from the catalog, not from users).  Table
    names are used as `regclass::text` wrote them: already valid SQL."""
    return '"' + name.replace('"', '""') + '"'


def _key_expr(schema: Schema, table: str, alias: str) -> str:
    """Text identifying one row: its primary key, else the whole row."""
    cols = schema.pkeys.get(table)
    if not cols:
        return f"to_jsonb({alias})::text"
    return "jsonb_build_array(" + ", ".join(f"{alias}.{_q(c)}" for c in cols) + ")::text"


def _captured(schema: Schema, table: str, cols: tuple[str, ...]) -> str:
    """SQL: the values of `cols` over the rows of `table` already captured (trash $1)."""
    typed = ", ".join(f"(r.data->>'{c}')::{schema.types[(table, c)]}" for c in cols)
    return f"SELECT {typed} FROM trash_rows r WHERE r.trash_id = $1 AND r.tbl = '{table}'"


async def capture(conn: Connection, trash_id: int, table: str, ids: list[int]) -> Schema:
    """Copy the rows `table.id = ANY(ids)` and everything their delete takes along."""
    schema = await load_schema(conn)
    await conn.execute(
        f"""INSERT INTO trash_rows (trash_id, tbl, pk, data)
            SELECT $1, '{table}', {_key_expr(schema, table, 't')}, to_jsonb(t)
            FROM {table} t WHERE t.id = ANY($2::bigint[])""", trash_id, ids)
    await _capture_children(conn, schema, trash_id, table)
    return schema


async def _capture_children(conn: Connection, schema: Schema, trash_id: int, parent: str) -> None:
    for fk in schema.children(parent):
        if fk.child in DERIVED or fk.child.startswith("trash"):
            continue
        cols = ", ".join(f"t.{_q(c)}" for c in fk.cols)
        match = f"({cols}) IN ({_captured(schema, parent, fk.refcols)})"
        if fk.on_delete == "c":
            status = await conn.execute(
                f"""INSERT INTO trash_rows (trash_id, tbl, pk, data)
                    SELECT $1, '{fk.child}', {_key_expr(schema, fk.child, 't')}, to_jsonb(t)
                    FROM {fk.child} t WHERE {match}
                    ON CONFLICT DO NOTHING""", trash_id)
            if not status.endswith(" 0"):
                await _capture_children(conn, schema, trash_id, fk.child)
        elif fk.on_delete == "n" and len(fk.cols) == 1:
            await conn.execute(
                f"""INSERT INTO trash_nulls (trash_id, tbl, pk, col, val)
                    SELECT $1, '{fk.child}', {_key_expr(schema, fk.child, 't')},
                           '{fk.cols[0]}', t.{_q(fk.cols[0])}::text
                    FROM {fk.child} t WHERE {match}""", trash_id)


def restore_order(schema: Schema, tables: set[str]) -> list[str]:
    """`tables` with every referenced table before the tables referencing it."""
    order: list[str] = []
    pending = set(tables)
    while pending:
        ready = sorted(t for t in pending if not any(
            fk.parent in pending and fk.parent != t for fk in schema.parents(t)))
        if not ready:  # a cycle between tables: insert in any order, FKs decide
            ready = sorted(pending)
        order.extend(ready)
        pending -= set(ready)
    return order


@dataclass
class Outcome:
    """What a restore could not bring back: {table: rows dropped} and the missing
    parents that caused it, as {table: [ids]}."""

    dropped: dict[str, int] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)


def _exists(fk: ForeignKey, alias: str) -> str:
    """SQL: the parent referenced by `alias` exists (now, or is being restored
    in this same statement when the table references itself)."""
    cond = " AND ".join(f"p.{_q(rc)} = {alias}.{_q(c)}" for c, rc in zip(fk.cols, fk.refcols,
                                                                         strict=True))
    return f"EXISTS (SELECT 1 FROM {fk.parent} p WHERE {cond})"


async def restore(conn: Connection, trash_id: int) -> Outcome:
    """Insert the captured rows back (inside the caller's transaction)."""
    schema = await load_schema(conn)
    tables = {r["tbl"] for r in await conn.fetch(
        "SELECT DISTINCT tbl FROM trash_rows WHERE trash_id = $1", trash_id)}
    out = Outcome()
    for table in restore_order(schema, tables):
        if table not in schema.columns:
            continue  # a table dropped by a later migration: nothing to put back
        await _restore_table(conn, schema, trash_id, table, out)
    await _restore_nulls(conn, schema, trash_id)
    return out


async def _restore_table(conn: Connection, schema: Schema, trash_id: int, table: str,
                         out: Outcome) -> None:
    cols = schema.columns[table]
    keep: list[str] = []
    values = {c: f"r.{_q(c)}" for c in cols}
    for fk in schema.parents(table):
        nulls = " OR ".join(f"r.{_q(c)} IS NULL" for c in fk.cols)
        ok = f"({nulls} OR {_exists(fk, 'r')}"
        if fk.parent == table:  # parent restored by this same statement
            inner = ", ".join(f"r.{_q(c)}" for c in fk.cols)
            ok += f" OR ({inner}) IN ({_captured(schema, table, fk.refcols)})"
        ok += ")"
        missing = await conn.fetch(
            f"""SELECT DISTINCT concat_ws(',', {", ".join(f"r.{_q(c)}" for c in fk.cols)}) AS v
                FROM {_rows(table)} WHERE NOT {ok}""", trash_id)
        if not missing:
            continue
        out.missing.setdefault(fk.parent, []).extend(str(m["v"]) for m in missing)
        if fk.on_delete == "n" and len(fk.cols) == 1:
            values[fk.cols[0]] = f"CASE WHEN {ok} THEN r.{_q(fk.cols[0])} END"
        else:
            keep.append(ok)
    where = " AND ".join(keep) or "TRUE"
    if keep:
        lost = await conn.fetchval(f"SELECT count(*) FROM {_rows(table)} WHERE NOT ({where})",
                                   trash_id)
        out.dropped[table] = int(lost)
    names = ", ".join(_q(c) for c in cols)
    await conn.execute(
        f"""INSERT INTO {table} ({names}) OVERRIDING SYSTEM VALUE
            SELECT {", ".join(values[c] for c in cols)} FROM {_rows(table)} WHERE {where}""",
        trash_id)


def _rows(table: str) -> str:
    """SQL: the captured rows of `table` as a relation `r` typed like the table."""
    return (f"(SELECT (jsonb_populate_record(NULL::{table}, data)).* FROM trash_rows"
            f" WHERE trash_id = $1 AND tbl = '{table}') r")


async def _restore_nulls(conn: Connection, schema: Schema, trash_id: int) -> None:
    for r in await conn.fetch("SELECT DISTINCT tbl, col FROM trash_nulls WHERE trash_id = $1",
                              trash_id):
        table, col = r["tbl"], r["col"]
        if (table, col) not in schema.types:
            continue
        type_ = schema.types[(table, col)]
        fk = next((f for f in schema.parents(table) if f.cols == (col,)), None)
        cond = "" if fk is None else (
            f"AND EXISTS (SELECT 1 FROM {fk.parent} p WHERE p.{_q(fk.refcols[0])}"
            f" = n.val::{type_})")
        await conn.execute(
            f"""UPDATE {table} t SET {_q(col)} = n.val::{type_}
                FROM trash_nulls n
                WHERE n.trash_id = $1 AND n.tbl = '{table}' AND n.col = '{col}'
                  AND n.pk = {_key_expr(schema, table, 't')} AND t.{_q(col)} IS NULL {cond}""",
            trash_id)
