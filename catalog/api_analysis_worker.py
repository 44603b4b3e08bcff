"""The worker side of analyses: claim, heart-beat with progress, finish.

Workers talk HTTP only (an administrator's API key; no database credentials).
A worker writes its results with the ordinary annotation import, tagged
``producer = "analysis:<id>/<attempt>"``; finishing links them to the analysis
(``analysis_id``) in the same transaction that marks it done, so a result
layer is either complete and linked or removed. A running analysis whose
worker stopped heart-beating is re-queued (its partial results removed) up to
MAX_ATTEMPTS, then failed with the reason.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson
from aiohttp import web
from jsonschema import Draft202012Validator

from microtome.catalog.access import require_admin
from microtome.catalog.analysis_wakeup import WAKEUP
from microtome.catalog.api_analyses import COLUMNS, analysis_json, drop_results, producer
from microtome.catalog.db import DB_POOL
from microtome.catalog.jsonio import MAX_BODY, path_id
from microtome.catalog.openapi_analyses import SCHEMAS
from microtome.core.http import json_response
from microtome.pyramid import errors

#: Seconds without a heart-beat after which a running analysis is re-queued.
STALE_AFTER_S = 60
MAX_ATTEMPTS = 3
MAX_LOG = 64 * 1024
#: Longest a claim is held open: under the 30 s that HTTP clients and proxies
#: commonly allow a request (a worker simply claims again).
LONG_POLL_MAX_S = 25.0


async def _body(request: web.Request, schema: str) -> dict[str, Any]:
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise errors.TooLarge("request body too large", {"limit": MAX_BODY})
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        raise errors.InvalidRequest("malformed JSON body") from None
    err = next(iter(Draft202012Validator(SCHEMAS[schema]).iter_errors(body)), None)
    if err is not None or b"\\u0000" in raw:  # jsonb/text cannot hold NUL
        where = "/".join(str(p) for p in err.absolute_path) if err else "body"
        raise errors.InvalidRequest(f"invalid request body: {where}: "
                                    f"{err.message[:200] if err else 'NUL character'}")
    return body  # type: ignore[no-any-return]


async def requeue_stale(conn: asyncpg.Connection) -> None:
    """Running analyses whose worker went silent: queued again, or failed after
    MAX_ATTEMPTS; the results of the dead attempt are removed either way."""
    rows = await conn.fetch(
        f"""UPDATE analyses SET
              status = CASE WHEN attempts >= {MAX_ATTEMPTS} THEN 'failed' ELSE 'queued' END,
              error = CASE WHEN attempts >= {MAX_ATTEMPTS}
                      THEN 'the worker stopped responding ({MAX_ATTEMPTS} attempts)' END,
              finished_at = CASE WHEN attempts >= {MAX_ATTEMPTS} THEN now() END,
              progress = 0
            WHERE status = 'running'
              AND heartbeat_at < now() - interval '{STALE_AFTER_S} seconds'
            RETURNING id""")
    await drop_results(conn, [r["id"] for r in rows])


async def claim(request: web.Request) -> web.Response:
    """The oldest queued analysis, now running for this worker; with ``wait`` > 0 a
    long-poll: an empty queue answers 204 only after that many seconds, and a
    newly queued analysis is handed out as soon as its NOTIFY arrives; ``wait`` is
    capped at LONG_POLL_MAX_S."""
    principal = await require_admin(request)
    body = await _body(request, "AnalysisClaim")
    apps = body.get("apps") or None
    wakeup = request.app[WAKEUP]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(float(body.get("wait") or 0), LONG_POLL_MAX_S)
    while True:
        event = wakeup.current()  # taken before looking: no notification is missed
        row = await _claim_one(request.app[DB_POOL], apps, body.get("worker"),
                               principal.user_id)
        remaining = deadline - loop.time()
        if row is not None or remaining <= 0:
            break
        await wakeup.wait(event, remaining)
    if row is None:
        return web.Response(status=204)
    return json_response(analysis_json(row, manager=True))


async def _claim_one(pool: asyncpg.Pool, apps: list[str] | None,
                     worker: str | None, executor_id: int | None) -> asyncpg.Record | None:
    """The worker's account and name are recorded as the executor; the analysis'
    user_id (who asked) stays the author of its results."""
    async with pool.acquire() as conn, conn.transaction():
        await requeue_stale(conn)
        row = await conn.fetchrow(
            f"""UPDATE analyses SET status = 'running', attempts = attempts + 1,
                       started_at = now(), heartbeat_at = now(), progress = 0,
                       executor_id = $3, executor = $4,
                       log = log || $2
                WHERE id = (SELECT id FROM analyses WHERE status = 'queued'
                              AND ($1::text[] IS NULL OR app = ANY($1::text[]))
                            ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
                RETURNING {COLUMNS}""",
            apps, f"claimed by {worker or 'a worker'}\n", executor_id, worker)
        if row is not None:
            await drop_results(conn, [row["id"]])  # leftovers of an earlier attempt
    return row


async def progress(request: web.Request) -> web.Response:
    """Heart-beat: progress and log lines in, the analysis (maybe 'cancelled') out."""
    await require_admin(request)
    analysis_id = path_id(request, "analysis_id")
    body = await _body(request, "AnalysisProgress")
    row = await request.app[DB_POOL].fetchrow(
        f"""UPDATE analyses SET progress = CASE WHEN status = 'running' THEN $2 ELSE progress
                                           END,
                   heartbeat_at = now(),
                   log = right(log || $3, {MAX_LOG})
            WHERE id = $1 RETURNING {COLUMNS}""",
        analysis_id, body["progress"], body.get("log") or "")
    if row is None:
        raise errors.NotFound("analysis not found")
    return json_response(analysis_json(row, manager=True))


async def finish(request: web.Request) -> web.Response:
    await require_admin(request)
    analysis_id = path_id(request, "analysis_id")
    body = await _body(request, "AnalysisFinish")
    async with request.app[DB_POOL].acquire() as conn, conn.transaction():
        cur = await conn.fetchrow(
            "SELECT status, attempts FROM analyses WHERE id = $1 FOR UPDATE", analysis_id)
        status = cur["status"] if cur else None
        current = cur is not None and status == "running" and cur["attempts"] == body["attempt"]
        if current:
            row = await _finish_running(conn, analysis_id, body)
        else:
            # Cancelled, re-queued or deleted while this worker was writing: what it
            # imported goes (committed: the error is raised after the transaction).
            await conn.execute("DELETE FROM annotations WHERE producer = $1",
                               producer(analysis_id, body["attempt"]))
            if status != "running":
                await drop_results(conn, [analysis_id])
    if cur is None:
        raise errors.NotFound("analysis not found")
    if not current:
        raise errors.Conflict(f"the analysis is {status}"
                              + ("" if status != "running" else " by a newer attempt")
                              + "; results discarded")
    return json_response(analysis_json(row, manager=True))


async def _finish_running(conn: asyncpg.Connection, analysis_id: int,
                          body: dict[str, Any]) -> asyncpg.Record:
    done = body["status"] == "done"
    count = None
    if done:
        # The worker imported them under its own account: linking gives them to the
        # person who asked for the run (NULL if that account was deleted meanwhile).
        count = await conn.fetchval(
            """WITH linked AS (UPDATE annotations SET analysis_id = $1,
                                   user_id = (SELECT user_id FROM analyses WHERE id = $1)
                               WHERE producer = $2 RETURNING 1)
               SELECT count(*) FROM linked""", analysis_id, producer(analysis_id, body["attempt"]))
    else:
        await drop_results(conn, [analysis_id])
    return await conn.fetchrow(
        f"""UPDATE analyses SET status = $2, error = $3, result_count = $4, progress =
                   CASE WHEN $2 = 'done' THEN 1 ELSE progress END,
                   finished_at = now(), log = right(log || $5, {MAX_LOG}), traceback = $6
            WHERE id = $1 RETURNING {COLUMNS}""",
        analysis_id, body["status"], None if done else (body.get("error") or "failed"),
        count, body.get("log") or "", None if done else body.get("traceback"))


def routes() -> list[web.RouteDef]:
    return [web.post("/api/analysis-queue/claim", claim),
            web.post("/api/analyses/{analysis_id}/progress", progress),
            web.post("/api/analyses/{analysis_id}/finish", finish)]
