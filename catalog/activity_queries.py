"""Reads of the activity store: replay of one image's events, sessions, project dashboard.

Every query is bounded in time (the partitions it touches) and in rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from microtome.pyramid import errors


def _after(raw: str | None) -> dt.datetime:
    if not raw:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise errors.InvalidRequest("after must be an ISO 8601 time", {"field": "after"}) \
            from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


async def events(pool: asyncpg.Pool, image_id: int, *, session_id: int | None,
                 user_id: int | None, after: str | None, limit: int) -> dict[str, Any]:
    """Events of one image in time order (a replay): page on with ``after`` = ``next``."""
    args: list[Any] = [image_id, _after(after)]
    where = ["e.image_id = $1", "e.at > $2"]
    if session_id is not None:
        args.append(session_id)
        where.append(f"e.session_id = ${len(args)}")
    if user_id is not None:
        args.append(user_id)
        where.append(f"e.user_id = ${len(args)}")
    rows = await pool.fetch(
        f"""SELECT e.at, e.user_id, u.username, e.session_id, e.kind, e.x, e.y, e.w, e.h,
                   e.detail
            FROM activity_events e LEFT JOIN users u ON u.id = e.user_id
            WHERE {' AND '.join(where)} ORDER BY e.at LIMIT {int(limit)}""", *args)
    items = [dict(r) for r in rows]
    return {"items": items, "next": items[-1]["at"] if len(items) == limit else None}


async def sessions(pool: asyncpg.Pool, image_id: int, days: int) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        """SELECT e.session_id, e.user_id, u.username, min(e.at) AS opened_at,
                  max(e.at) FILTER (WHERE e.kind = 'close') AS closed_at,
                  max((e.detail->>'seconds')::float) FILTER (WHERE e.kind = 'close')
                      AS seconds,
                  count(*) FILTER (WHERE e.kind = 'view') AS views
           FROM activity_events e LEFT JOIN users u ON u.id = e.user_id
           WHERE e.image_id = $1 AND e.at > now() - make_interval(days => $2)
             AND e.session_id IS NOT NULL
           GROUP BY e.session_id, e.user_id, u.username
           ORDER BY opened_at DESC LIMIT 500""", image_id, days)
    return [dict(r) for r in rows]


_IMAGES = "SELECT image_id FROM project_images WHERE project_id = $1"


async def dashboard(pool: asyncpg.Pool, project_id: int, days: int) -> dict[str, Any]:
    """Most viewed images, per-user activity and annotation counts per day."""
    since = "now() - make_interval(days => $2)"
    viewed = await pool.fetch(
        f"""SELECT e.image_id, i.name, count(*) FILTER (WHERE e.kind = 'open') AS opens,
                   count(DISTINCT e.user_id) AS viewers,
                   coalesce(sum((e.detail->>'seconds')::float)
                            FILTER (WHERE e.kind = 'close'), 0) AS seconds
            FROM activity_events e JOIN images i ON i.id = e.image_id
            WHERE e.image_id IN ({_IMAGES}) AND e.at > {since} AND e.kind IN ('open', 'close')
            GROUP BY e.image_id, i.name ORDER BY opens DESC, seconds DESC LIMIT 20""",
        project_id, days)
    users = await pool.fetch(
        f"""SELECT e.user_id, u.username,
                   count(*) FILTER (WHERE e.kind = 'open') AS opens,
                   count(DISTINCT e.image_id) AS images,
                   coalesce(sum((e.detail->>'seconds')::float)
                            FILTER (WHERE e.kind = 'close'), 0) AS seconds,
                   count(*) FILTER (WHERE e.kind LIKE 'annotation.%') AS annotation_actions,
                   max(e.at) AS last_seen
            FROM activity_events e LEFT JOIN users u ON u.id = e.user_id
            WHERE e.image_id IN ({_IMAGES}) AND e.at > {since} AND e.kind <> 'view'
              AND e.user_id IS NOT NULL
            GROUP BY e.user_id, u.username ORDER BY last_seen DESC LIMIT 200""",
        project_id, days)
    per_day = await pool.fetch(
        f"""SELECT date_trunc('day', a.created_at AT TIME ZONE 'UTC')::date AS day,
                   count(*) AS count
            FROM annotations a WHERE a.project_id = $1 AND a.created_at > {since}
            GROUP BY 1 ORDER BY 1""", project_id, days)
    opens_per_day = await pool.fetch(
        f"""SELECT date_trunc('day', e.at AT TIME ZONE 'UTC')::date AS day, count(*) AS count
            FROM activity_events e
            WHERE e.image_id IN ({_IMAGES}) AND e.at > {since} AND e.kind = 'open'
            GROUP BY 1 ORDER BY 1""", project_id, days)
    return {"days": days, "most_viewed": [dict(r) for r in viewed],
            "users": [dict(r) for r in users],
            "annotations_per_day": [dict(r) for r in per_day],
            "opens_per_day": [dict(r) for r in opens_per_day]}
