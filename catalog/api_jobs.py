"""Handlers for /api/jobs: conversion status, progress and errors."""

from __future__ import annotations

from aiohttp import web

from microtome.catalog.access import image_role, require_user
from microtome.catalog.db import DB_POOL
from microtome.catalog.jobs import JOB_COLUMNS, job_json
from microtome.catalog.jsonio import page, page_params, path_id
from microtome.core.http import json_response
from microtome.pyramid import errors


async def list_jobs(request: web.Request) -> web.Response:
    principal = await require_user(request)
    limit, offset = page_params(request)
    cond, args = ("TRUE", []) if principal.is_admin else ("user_id = $1", [principal.user_id])
    pool = request.app[DB_POOL]
    rows = await pool.fetch(f"SELECT {JOB_COLUMNS} FROM jobs WHERE {cond}"
                            f" ORDER BY id DESC LIMIT {limit} OFFSET {offset}", *args)
    total = await pool.fetchval(f"SELECT count(*) FROM jobs WHERE {cond}", *args)
    return json_response(page([job_json(r) for r in rows], total, limit, offset))


async def get_job(request: web.Request) -> web.Response:
    job_id = path_id(request, "job_id")
    principal = await require_user(request)
    pool = request.app[DB_POOL]
    row = await pool.fetchrow(f"SELECT {JOB_COLUMNS}, user_id FROM jobs WHERE id = $1", job_id)
    allowed = row is not None and (principal.is_admin or row["user_id"] == principal.user_id)
    if row is not None and not allowed and row["image_id"] is not None:
        allowed = (await image_role(pool, principal, row["image_id"]))[1] is not None
    if row is None or not allowed:
        raise errors.NotFound("job not found")
    return json_response(job_json(row))


def routes() -> list[web.RouteDef]:
    return [web.get("/api/jobs", list_jobs), web.get("/api/jobs/{job_id}", get_job)]
