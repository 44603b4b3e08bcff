"""Review of annotations: who may review, accept / reject, the record, image summaries.

A project may require review (`projects.requires_review`, set by its managers).
Reviewers (the project role between contributor and manager) and managers
accept an annotation (optionally changing its term) or reject it (with a
reason).  `review_status` NULL means not reviewed yet: "pending".  Accepted
annotations form the reviewed layer; an image is "reviewed" when nothing in
it is pending.  Every action is appended to `annotation_reviews`.

Concurrency: a review names the version it saw (the annotation's
`updated_at`); when the annotation changed meanwhile the review is refused
with `StaleAnnotation`, which carries the current row (409 with the current
version).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import asyncpg

from microtome.catalog import access
from microtome.catalog.access import Principal
from microtome.pyramid.errors import Conflict, Forbidden, InvalidRequest, NotFound

from . import store

type Conn = asyncpg.Connection | asyncpg.Pool

ACTIONS = ("accept", "reject")
MAX_REASON = 2000
REVIEWER = "reviewer"


class StaleAnnotation(Conflict):
    """The annotation changed since the reviewer saw it; `row` is the current one."""

    def __init__(self, row: asyncpg.Record) -> None:
        super().__init__("the annotation changed since you saw it: review the current version")
        self.row = row


def may_review(principal: Principal, role: str | None) -> bool:
    return principal.is_admin or access.role_at_least(role, REVIEWER)


async def roles_by_project(request: Any, project_ids: Sequence[int | None]
                           ) -> dict[int | None, str | None]:
    """The caller's role in each distinct project (None for annotations without one)."""
    out: dict[int | None, str | None] = {None: None}
    for pid in {p for p in project_ids if p is not None}:
        out[pid] = await access.project_role(request, pid)
    return out


def check_reviewer(principal: Principal, role: str | None, project_id: int | None) -> None:
    if project_id is None:
        raise Forbidden("annotations outside a project are not reviewed")
    if role is None and not principal.is_admin:
        raise NotFound("annotation not found")
    if not may_review(principal, role):
        raise Forbidden("only the project's reviewers and managers may review annotations")


def parse_action(body: dict[str, Any]) -> tuple[str, str | None]:
    action = body.get("action")
    if action not in ACTIONS:
        raise InvalidRequest("action must be accept or reject", {"field": "action"})
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON
                               or "\x00" in reason):
        raise InvalidRequest(f"reason must be a text of at most {MAX_REASON} characters"
                             " (no NUL)",
                             {"field": "reason"})
    if action == "reject" and not (reason or "").strip():
        raise InvalidRequest("a rejection needs a reason", {"field": "reason"})
    return action, (reason.strip() or None) if reason else None


def parse_version(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise InvalidRequest("updated_at (the version you reviewed) is required",
                             {"field": "updated_at"})
    try:
        v = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest("updated_at must be an ISO 8601 date-time",
                             {"field": "updated_at"}) from None
    return v if v.tzinfo else v.replace(tzinfo=dt.UTC)


async def apply(conn: asyncpg.Connection, ids: Sequence[int], *, reviewer_id: int | None,
                action: str, reason: str | None, term_ids: list[int] | None,
                version: dt.datetime | None = None) -> int:
    """Accept or reject these annotations (in the caller's transaction); record each.

    With `version` (one id only) the row must still have that `updated_at`,
    else `StaleAnnotation`.  Returns how many rows were reviewed.
    """
    status = "accepted" if action == "accept" else "rejected"
    args: list[Any] = [list(ids), status, reviewer_id, reason if action == "reject" else None,
                       term_ids]
    cond = ""
    if version is not None:
        args.append(version)
        cond = f" AND a.updated_at = ${len(args)}"
    rows = await conn.fetch(
        f"""WITH old AS (SELECT a.id, a.term_ids FROM annotations a
                         WHERE a.id = ANY($1::bigint[]){cond} FOR UPDATE)
            UPDATE annotations a SET review_status = $2, reviewed_by = $3, reviewed_at = now(),
                   review_reason = $4, term_ids = COALESCE($5::bigint[], a.term_ids),
                   updated_at = now()
            FROM old WHERE a.id = old.id
            RETURNING a.id, a.image_id, a.project_id, old.term_ids AS before,
                      a.term_ids AS after""", *args)
    if version is not None and not rows:
        raise StaleAnnotation(await store.get(conn, ids[0]))
    await conn.executemany(
        """INSERT INTO annotation_reviews (annotation_id, image_id, project_id, reviewer_id,
               action, terms_before, terms_after, reason)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        [(r["id"], r["image_id"], r["project_id"], reviewer_id, action, r["before"], r["after"],
          reason if action == "reject" else None) for r in rows])
    return len(rows)


async def auto_accept(conn: asyncpg.Connection, ids: Sequence[int], reviewer_id: int) -> None:
    """A reviewer's own new annotations need no one else's review: accepted at once."""
    await apply(conn, ids, reviewer_id=reviewer_id, action="accept", reason=None, term_ids=None)


async def history(conn: Conn, annotation_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT r.id, r.action, r.reviewer_id, u.username AS reviewer, r.terms_before,
                  r.terms_after, r.reason, r.created_at
           FROM annotation_reviews r LEFT JOIN users u ON u.id = r.reviewer_id
           WHERE r.annotation_id = $1 ORDER BY r.id""", annotation_id)
    return [{**dict(r), "terms_before": list(r["terms_before"]),
             "terms_after": list(r["terms_after"]), "created_at": r["created_at"].isoformat()}
            for r in rows]


_COUNTS = """count(*) FILTER (WHERE a.review_status IS NULL) AS pending,
             count(*) FILTER (WHERE a.review_status = 'accepted') AS accepted,
             count(*) FILTER (WHERE a.review_status = 'rejected') AS rejected"""


def _summary(row: Any, image_id: int) -> dict[str, Any]:
    pending = int(row["pending"] or 0) if row else 0
    return {"image_id": image_id, "pending": pending,
            "accepted": int(row["accepted"] or 0) if row else 0,
            "rejected": int(row["rejected"] or 0) if row else 0, "reviewed": pending == 0}


async def image_summary(conn: Conn, image_id: int, project_id: int | None) -> dict[str, Any]:
    """Pending / accepted / rejected counts of an image (in one project, or all)."""
    row = await conn.fetchrow(
        f"SELECT {_COUNTS} FROM annotations a WHERE a.image_id = $1"
        " AND ($2::bigint IS NULL OR a.project_id = $2)", image_id, project_id)
    return _summary(row, image_id)


async def project_summary(conn: Conn, project_id: int) -> dict[str, Any]:
    """The project's setting and, per image of the project, its review counts."""
    requires = await conn.fetchval("SELECT requires_review FROM projects WHERE id = $1",
                                   project_id)
    rows = await conn.fetch(
        f"""SELECT pi.image_id, {_COUNTS} FROM project_images pi
            LEFT JOIN annotations a ON a.image_id = pi.image_id AND a.project_id = $1
            WHERE pi.project_id = $1 GROUP BY pi.image_id ORDER BY pi.image_id""", project_id)
    return {"project_id": project_id, "requires_review": bool(requires),
            "images": [_summary(r, r["image_id"]) for r in rows]}


async def set_requires_review(conn: Conn, project_id: int, value: bool) -> None:
    await conn.execute("UPDATE projects SET requires_review = $2, updated_at = now()"
                       " WHERE id = $1", project_id, value)
