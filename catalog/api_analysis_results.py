"""What an analysis found, summarised and per object: /api/analyses/{id}/summary
(count, per term count and mean/median of each measurement, per measurement
statistics and a histogram) and /api/analyses/{id}/values (one measurement of
every result, for colouring the result layer by it)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from microtome.catalog.api_analyses import visible_analysis
from microtome.catalog.db import DB_POOL
from microtome.core.http import json_response
from microtome.pyramid import errors

BINS = 20
#: Results sent by one /values answer at most (a whole-slide nucleus run has
#: hundreds of thousands; a million pairs is ~20 MB of JSON).
MAX_VALUES = 1_000_000

# Numeric measurements of an analysis' results, one row per (annotation, key).
_VALUES = """SELECT a.id, a.term_ids, m.key, (m.value)::float8 AS x FROM annotations a
    CROSS JOIN LATERAL jsonb_each(a.properties -> 'measurements') AS m(key, value)
    WHERE a.analysis_id = $1 AND jsonb_typeof(a.properties -> 'measurements') = 'object'
      AND jsonb_typeof(m.value) = 'number'"""


async def _per_term(pool: asyncpg.Pool, analysis_id: int) -> list[dict[str, Any]]:
    """Per term: count, and mean and median of every measurement of its results."""
    terms = await pool.fetch(
        """SELECT t.id, t.name, count(*) AS n FROM annotations a
           CROSS JOIN LATERAL unnest(a.term_ids) AS u(tid) JOIN terms t ON t.id = u.tid
           WHERE a.analysis_id = $1 GROUP BY t.id, t.name ORDER BY n DESC, t.name""",
        analysis_id)
    stats = await pool.fetch(
        f"""WITH v AS ({_VALUES})
            SELECT u.tid, v.key, avg(v.x) AS mean,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY v.x) AS median
            FROM v CROSS JOIN LATERAL unnest(v.term_ids) AS u(tid)
            GROUP BY u.tid, v.key ORDER BY v.key""", analysis_id)
    by_term: dict[int, dict[str, Any]] = {}
    for r in stats:
        by_term.setdefault(r["tid"], {})[r["key"]] = {"mean": r["mean"], "median": r["median"]}
    return [{"term_id": t["id"], "name": t["name"], "count": t["n"],
             "measurements": by_term.get(t["id"], {})} for t in terms]


async def analysis_summary(request: web.Request) -> web.Response:
    """Count of results; per term the count and each measurement's mean and median;
    per measurement: mean, median, min, max and a histogram of BINS equal bins
    between min and max."""
    analysis_id = await visible_analysis(request, "viewer")
    pool = request.app[DB_POOL]
    count = await pool.fetchval("SELECT count(*) FROM annotations WHERE analysis_id = $1",
                                analysis_id)
    rows = await pool.fetch(
        f"""WITH v AS ({_VALUES}),
            s AS (SELECT key, count(*) AS n, avg(x) AS mean, min(x) AS lo, max(x) AS hi,
                         percentile_cont(0.5) WITHIN GROUP (ORDER BY x) AS median
                  FROM v GROUP BY key),
            h AS (SELECT v.key, least(width_bucket(v.x, s.lo, s.hi, {BINS}), {BINS}) AS b,
                         count(*) AS n
                  FROM v JOIN s USING (key) WHERE s.hi > s.lo GROUP BY 1, 2)
            SELECT s.*, (SELECT array_agg(ARRAY[h.b, h.n] ORDER BY h.b) FROM h
                         WHERE h.key = s.key) AS hist
            FROM s ORDER BY s.key""", analysis_id)
    measurements = {}
    for r in rows:
        counts = [0] * BINS
        for b, n in r["hist"] or []:
            counts[b - 1] = n
        if r["hist"] is None:
            counts[0] = r["n"]  # every value equal
        measurements[r["key"]] = {"count": r["n"], "mean": r["mean"], "median": r["median"],
                                  "min": r["lo"], "max": r["hi"], "histogram": counts}
    return json_response({"analysis_id": analysis_id, "count": count,
                          "terms": await _per_term(pool, analysis_id),
                          "measurements": measurements})


async def analysis_values(request: web.Request) -> web.Response:
    """One measurement of every result that has it: parallel ``ids`` and ``values``
    (by id), with their min and max: what the viewer colours the layer by."""
    analysis_id = await visible_analysis(request, "viewer")
    key = request.query.get("measurement", "")
    if not key or len(key) > 200 or "\x00" in key:
        raise errors.InvalidRequest("measurement: give the name of a measurement",
                                    {"field": "measurement"})
    rows = await request.app[DB_POOL].fetch(
        """SELECT id, (properties -> 'measurements' ->> $2)::float8 AS x FROM annotations
           WHERE analysis_id = $1
             AND jsonb_typeof(properties -> 'measurements' -> $2) = 'number'
           ORDER BY id LIMIT $3""", analysis_id, key, MAX_VALUES + 1)
    truncated = len(rows) > MAX_VALUES
    rows = rows[:MAX_VALUES]
    values = [r["x"] for r in rows]
    return json_response({"analysis_id": analysis_id, "measurement": key,
                          "ids": [r["id"] for r in rows], "values": values,
                          "min": min(values) if values else None,
                          "max": max(values) if values else None, "truncated": truncated})


def routes() -> list[web.RouteDef]:
    return [web.get("/api/analyses/{analysis_id}/summary", analysis_summary),
            web.get("/api/analyses/{analysis_id}/values", analysis_values)]
