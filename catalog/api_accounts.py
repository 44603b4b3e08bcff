"""Accounts a lab can run: one-time password reset links and my own sessions.

An administrator makes a reset link (``POST /api/users/{id}/reset-link``): a
random token of which only the SHA-256 is stored, valid for
``MICROTOME_RESET_LINK_HOURS``, once, and only while it is the user's newest
link and the password has not been changed since.  Making it ends the user's
sessions and API keys and marks the account ``must_change_password``: until a
new password is set (through the link, or with the old one on
``POST /api/account/password``) every other request of theirs is a 403 whose
``detail.reason`` is ``password_change_required`` (catalog.access).

Whoever holds the link sets the password (``POST /api/password-reset``); a
wrong, used or superseded token is a 404 and counts as a failure of the
caller's address in the shared throttle table, like a failed login.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from microtome.catalog import security
from microtome.catalog.access import SESSION_COOKIE, forget_all, require_admin, require_user
from microtome.catalog.api_auth import _end_access, end_reset_links
from microtome.catalog.db import DB_POOL
from microtome.catalog.images import log_activity
from microtome.catalog.jsonio import (
    CREDENTIALS_BODY,
    page,
    page_params,
    path_id,
    read_json,
    read_no_body,
)
from microtome.catalog.ratelimit import FailureCounter, client_address, too_many
from microtome.catalog.state import CATALOG
from microtome.core.http import json_response
from microtome.pyramid import errors

#: Wrong reset tokens allowed per client address per window (the tokens have 256
#: random bits: this only keeps a scanner from filling the logs and the CPU).
RESET_FAILURES = FailureCounter("reset", limit=20)
RESET_PAGE = "/reset"


async def create_reset_link(request: web.Request) -> web.Response:
    user_id = path_id(request, "user_id")
    admin = await require_admin(request)
    await read_no_body(request)
    if user_id == admin.user_id:
        raise errors.Conflict("change your own password on the My account page instead")
    hours = request.app[CATALOG].settings.reset_link_hours
    token = security.new_token()
    async with request.app[DB_POOL].acquire() as conn, conn.transaction():
        user = await conn.fetchrow(
            "UPDATE users SET must_change_password = true WHERE id = $1"
            " RETURNING id, username", user_id)
        if user is None:
            raise errors.NotFound("user not found")
        await end_reset_links(conn, user_id)
        expires = await conn.fetchval(
            """INSERT INTO password_resets (user_id, token_hash, created_by, expires_at)
               VALUES ($1, $2, $3, now() + make_interval(hours => $4)) RETURNING expires_at""",
            user_id, security.digest(token), admin.user_id, hours)
        await _end_access(conn, user_id)
        await log_activity(conn, "user.reset_link", user_id=admin.user_id,
                           detail={"user": user_id})
    forget_all(request.app)
    # The token rides in the fragment: browsers send it to no server and no Referer.
    path = f"{RESET_PAGE}#token={token}"
    return json_response({"user_id": user_id, "username": user["username"], "token": token,
                          "path": path, "url": f"{request.scheme}://{request.host}{path}",
                          "expires_at": expires}, status=201)


async def _link(request: web.Request, token: str) -> dict[str, Any]:
    """The open link of this token (user name, expiry), or a 404 counted as a failure."""
    pool, client = request.app[DB_POOL], client_address(request)
    wait = await RESET_FAILURES.retry_after(pool, client)
    if wait is not None:
        raise too_many("wrong reset links", wait)
    row = await pool.fetchrow(
        """SELECT r.id, r.user_id, r.expires_at, r.expires_at <= now() AS expired,
                  r.used_at, r.revoked_at, u.username, u.disabled_at
             FROM password_resets r JOIN users u ON u.id = r.user_id
            WHERE r.token_hash = $1""", security.digest(token))
    if row is None or row["used_at"] is not None or row["revoked_at"] is not None:
        await RESET_FAILURES.add(pool, client)
        reason = "unknown" if row is None else "used" if row["used_at"] else "superseded"
        raise errors.NotFound("this reset link is not valid (already used, or replaced by a"
                              " newer one); ask an administrator for a new link",
                              {"reason": reason})
    if row["expired"]:
        raise errors.NotFound("this reset link has expired; ask an administrator for a new"
                              " one", {"reason": "expired"})
    if row["disabled_at"] is not None:
        raise errors.Forbidden("this account is disabled; ask an administrator")
    return dict(row)


async def check_reset_link(request: web.Request) -> web.Response:
    body = await read_json(request, "ResetLinkCheck", CREDENTIALS_BODY)
    link = await _link(request, body["token"])
    return json_response({"username": link["username"], "expires_at": link["expires_at"]})


async def use_reset_link(request: web.Request) -> web.Response:
    body = await read_json(request, "ResetLinkUse", CREDENTIALS_BODY)
    link = await _link(request, body["token"])
    hashed = await asyncio.to_thread(security.hash_password, body["new_password"])
    async with request.app[DB_POOL].acquire() as conn, conn.transaction():
        # Single use even when two requests race: only one marks it used.
        used = await conn.fetchval(
            """UPDATE password_resets SET used_at = now()
               WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
               RETURNING user_id""", link["id"])
        if used is None:
            raise errors.NotFound("this reset link is not valid (already used, or replaced"
                                  " by a newer one)", {"reason": "used"})
        await conn.execute("UPDATE users SET password_hash = $2, must_change_password = false"
                           " WHERE id = $1", used, hashed)
        await end_reset_links(conn, used)
        await _end_access(conn, used, keys=False)
        await log_activity(conn, "user.password_set_by_link", user_id=used)
    forget_all(request.app)
    return web.Response(status=204)


async def list_my_sessions(request: web.Request) -> web.Response:
    principal = await require_user(request)
    limit, offset = page_params(request)
    pool = request.app[DB_POOL]
    current = principal.credential_id if principal.via == "session" else None
    rows = await pool.fetch(
        f"""SELECT id, created_at, last_seen_at, expires_at, id = $2 AS current
              FROM sessions WHERE user_id = $1 AND expires_at > now()
             ORDER BY last_seen_at DESC, id LIMIT {limit} OFFSET {offset}""",
        principal.user_id, current)
    total = await pool.fetchval(
        "SELECT count(*) FROM sessions WHERE user_id = $1 AND expires_at > now()",
        principal.user_id)
    return json_response(page([{**dict(r), "current": bool(r["current"])} for r in rows],
                              total, limit, offset))


async def end_my_sessions(request: web.Request) -> web.Response:
    """Sign out everywhere: every session of the caller ends, this one included."""
    principal = await require_user(request)
    assert principal.user_id is not None  # require_user
    await read_no_body(request)
    async with request.app[DB_POOL].acquire() as conn, conn.transaction():
        await _end_access(conn, principal.user_id, keys=False)
        await log_activity(conn, "user.sign_out_everywhere", user_id=principal.user_id)
    forget_all(request.app)
    resp = web.Response(status=204)
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/users/{user_id}/reset-link", create_reset_link),
        web.post("/api/password-reset/check", check_reset_link),
        web.post("/api/password-reset", use_reset_link),
        web.get("/api/account/sessions", list_my_sessions),
        web.delete("/api/account/sessions", end_my_sessions),
    ]
