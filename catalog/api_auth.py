"""Handlers for first-run setup, sessions (login/logout/me), users and API keys.

Session cookie: ``microtome_session``, HttpOnly, SameSite=Lax, Secure when
the request came over HTTPS; the database keeps only its SHA-256.  The CSRF
token returned with the session must be sent back as ``X-CSRF-Token`` on
cookie-authenticated writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Any

import asyncpg
from aiohttp import web

from microtome.catalog import security, upload_files
from microtome.catalog.access import (
    SESSION_COOKIE,
    forget_all,
    forget_credential,
    get_principal,
    require_admin,
    require_user,
    session_cookie,
    session_expiry,
)
from microtome.catalog.db import DB_POOL
from microtome.catalog.images import log_activity
from microtome.catalog.jsonio import CREDENTIALS_BODY, page, page_params, path_id, read_json
from microtome.catalog.ratelimit import LOGIN_THROTTLE, client_address
from microtome.catalog.state import CATALOG
from microtome.core.http import json_response
from microtome.pyramid import errors

USER_COLUMNS = ("id, username, is_admin, created_at, disabled_at, last_login_at,"
                " must_change_password")
KEY_COLUMNS = "id, name, prefix, created_at, last_used_at, revoked_at"
#: Shortest password accepted anywhere (first run included).
MIN_PASSWORD = 8


def _user(row: asyncpg.Record) -> dict[str, Any]:
    out = {k: row[k] for k in ("id", "username", "is_admin", "created_at")}
    out["disabled"] = row["disabled_at"] is not None
    out["last_login_at"] = row["last_login_at"]
    out["must_change_password"] = row["must_change_password"]
    return out


async def end_reset_links(conn: asyncpg.Pool | asyncpg.Connection, user_id: int) -> None:
    """The user's unused reset links stop working (a newer one, or a new password)."""
    await conn.execute("UPDATE password_resets SET revoked_at = now() WHERE user_id = $1"
                       " AND used_at IS NULL AND revoked_at IS NULL", user_id)


async def create_user(pool: asyncpg.Pool | asyncpg.Connection, username: str, password: str,
                      is_admin: bool = False, must_change: bool = False) -> asyncpg.Record:
    if username.lower() in security.RESERVED_USERNAMES:
        raise errors.InvalidRequest(f"the user name {username!r} is reserved for the system")
    # argon2 is deliberately slow: hash in a thread, not on the event loop.
    hashed = await asyncio.to_thread(security.hash_password, password)
    try:
        row = await pool.fetchrow(
            f"""INSERT INTO users (username, password_hash, is_admin, must_change_password)
                VALUES ($1, $2, $3, $4) RETURNING {USER_COLUMNS}""",
            username, hashed, is_admin, must_change)
    except asyncpg.UniqueViolationError:
        raise errors.Conflict("a user with this name already exists") from None
    assert row is not None
    return row


async def _start_session(request: web.Request, user: asyncpg.Record) -> web.Response:
    token, csrf = security.new_token(), security.new_token(16)
    hours = request.app[CATALOG].settings.session_hours
    expires = session_expiry(hours=hours)
    async with request.app[DB_POOL].acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO sessions (token_hash, csrf_token, user_id, expires_at)
               VALUES ($1, $2, $3, $4)""", security.digest(token), csrf, user["id"], expires)
        await conn.execute("UPDATE users SET last_login_at = now() WHERE id = $1", user["id"])
    resp = json_response({"user": _user(user), "csrf_token": csrf, "expires_at": expires},
                         status=201 if request.path == "/api/setup" else 200)
    resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Lax", path="/",
                    secure=request.secure, max_age=hours * 3600)
    return resp


async def setup_status(request: web.Request) -> web.Response:
    count = await request.app[DB_POOL].fetchval("SELECT count(*) FROM users")
    return json_response({"needs_setup": count == 0})


async def setup_first_admin(request: web.Request) -> web.Response:
    body = await read_json(request, "Credentials", CREDENTIALS_BODY)
    # The same rule as for every other password (UserCreate, PasswordReset...).
    if len(body["password"]) < MIN_PASSWORD:
        raise errors.InvalidRequest(f"the password needs at least {MIN_PASSWORD} characters")
    pool = request.app[DB_POOL]
    async with pool.acquire() as conn, conn.transaction():
        # Serialise concurrent first-run requests: only one admin is created.
        await conn.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
        if await conn.fetchval("SELECT count(*) FROM users"):
            raise errors.Conflict("setup already done; log in instead")
        user = await create_user(conn, body["username"], body["password"], is_admin=True)
    return await _start_session(request, user)


async def login(request: web.Request) -> web.Response:
    body = await read_json(request, "Credentials", CREDENTIALS_BODY)
    throttle, client = request.app[LOGIN_THROTTLE], client_address(request)
    pool = request.app[DB_POOL]
    # 429 once too many attempts failed, counted in the database: on every process.
    await throttle.begin(pool, body["username"], client)
    try:
        row = await pool.fetchrow(
            f"SELECT {USER_COLUMNS}, password_hash FROM users"
            " WHERE lower(username) = lower($1)", body["username"])
        stored = row["password_hash"] if row else None
        ok = await asyncio.to_thread(security.verify_password, stored, body["password"])
    except BaseException:
        # Database gone mid-attempt: the refund may fail too (the window then ends it).
        with contextlib.suppress(Exception):
            await asyncio.shield(throttle.abandoned(pool, body["username"], client))
        raise
    if row is None or not ok:
        raise errors.Unauthenticated("wrong user name or password")
    if row["disabled_at"] is not None:
        raise errors.Forbidden("this account is disabled; ask an administrator")
    await throttle.succeeded(pool, body["username"], client)
    return await _start_session(request, row)


async def me(request: web.Request) -> web.Response:
    principal = await require_user(request)
    row = await request.app[DB_POOL].fetchrow(
        f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", principal.user_id)
    if row is None:
        raise errors.Unauthenticated("login required")
    expires = None
    if principal.via == "session":
        expires = await request.app[DB_POOL].fetchval(
            "SELECT expires_at FROM sessions WHERE id = $1", principal.credential_id)
    return json_response({"user": _user(row), "csrf_token": principal.csrf_token or "",
                          "expires_at": expires or dt.datetime.now(dt.UTC)})


async def logout(request: web.Request) -> web.Response:
    principal = await get_principal(request)
    token = session_cookie(request)
    if principal is not None and principal.via == "session" and token:
        await request.app[DB_POOL].execute("DELETE FROM sessions WHERE id = $1",
                                           principal.credential_id)
        forget_credential(request.app, security.digest(token))
    resp = web.Response(status=204)
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp


async def list_users(request: web.Request) -> web.Response:
    await require_admin(request)
    limit, offset = page_params(request)
    pool = request.app[DB_POOL]
    rows = await pool.fetch(f"SELECT {USER_COLUMNS} FROM users ORDER BY id"
                            f" LIMIT {limit} OFFSET {offset}")
    total = await pool.fetchval("SELECT count(*) FROM users")
    return json_response(page([_user(r) for r in rows], total, limit, offset))


async def add_user(request: web.Request) -> web.Response:
    await require_admin(request)
    body = await read_json(request, "UserCreate")
    row = await create_user(request.app[DB_POOL], body["username"], body["password"],
                            bool(body.get("is_admin", False)),
                            must_change=bool(body.get("must_change_password", False)))
    return json_response(_user(row), status=201)


async def get_user(request: web.Request) -> web.Response:
    user_id = path_id(request, "user_id")
    principal = await require_user(request)
    if not principal.is_admin and principal.user_id != user_id:
        raise errors.NotFound("user not found")
    row = await request.app[DB_POOL].fetchrow(
        f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", user_id)
    if row is None:
        raise errors.NotFound("user not found")
    return json_response(_user(row))


async def delete_user(request: web.Request) -> web.Response:
    user_id = path_id(request, "user_id")
    principal = await require_admin(request)
    if principal.user_id == user_id:
        raise errors.Conflict("you cannot delete yourself")
    pool = request.app[DB_POOL]
    async with pool.acquire() as conn, conn.transaction():
        partial = await upload_files.unfinished_of(conn, user_id=user_id)
        status = await conn.execute("DELETE FROM users WHERE id = $1", user_id)
    if status.endswith(" 0"):
        raise errors.NotFound("user not found")
    await upload_files.remove_files(request.app[CATALOG].settings.uploads_dir, partial)
    await log_activity(pool, "user.delete", user_id=principal.user_id,
                       detail={"deleted_user": user_id})
    forget_all(request.app)
    return web.Response(status=204)


async def _end_access(conn: asyncpg.Pool | asyncpg.Connection, user_id: int, *,
                      keep_session: int | None = None, keys: bool = True) -> None:
    """End the user's sessions (but `keep_session`) and, with `keys`, their API keys."""
    await conn.execute("DELETE FROM sessions WHERE user_id = $1 AND id IS DISTINCT FROM $2",
                       user_id, keep_session)
    if keys:
        await conn.execute("UPDATE api_keys SET revoked_at = now()"
                           " WHERE user_id = $1 AND revoked_at IS NULL", user_id)


async def change_password(request: web.Request) -> web.Response:
    """The caller's own password; their other sessions end (this one stays), and so
    does a forced change after an administrator's reset."""
    principal = await require_user(request)
    assert principal.user_id is not None  # require_user
    body = await read_json(request, "PasswordChange", CREDENTIALS_BODY)
    pool = request.app[DB_POOL]
    stored = await pool.fetchval("SELECT password_hash FROM users WHERE id = $1",
                                 principal.user_id)
    if not await asyncio.to_thread(security.verify_password, stored, body["current_password"]):
        raise errors.Forbidden("the current password is wrong")
    hashed = await asyncio.to_thread(security.hash_password, body["new_password"])
    keep = principal.credential_id if principal.via == "session" else None
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE users SET password_hash = $2, must_change_password = false"
                           " WHERE id = $1", principal.user_id, hashed)
        await end_reset_links(conn, principal.user_id)
        await _end_access(conn, principal.user_id, keep_session=keep, keys=False)
        await log_activity(conn, "user.password", user_id=principal.user_id)
    forget_all(request.app)
    return web.Response(status=204)


async def reset_password(request: web.Request) -> web.Response:
    """An administrator sets a temporary password: every session and API key of the
    user ends, and they must choose their own password at the next sign-in."""
    user_id = path_id(request, "user_id")
    admin = await require_admin(request)
    body = await read_json(request, "PasswordReset", CREDENTIALS_BODY)
    hashed = await asyncio.to_thread(security.hash_password, body["password"])
    async with request.app[DB_POOL].acquire() as conn, conn.transaction():
        status = await conn.execute("UPDATE users SET password_hash = $2,"
                                    " must_change_password = true WHERE id = $1",
                                    user_id, hashed)
        if status.endswith(" 0"):
            raise errors.NotFound("user not found")
        await end_reset_links(conn, user_id)
        await _end_access(conn, user_id)
        await log_activity(conn, "user.password_reset", user_id=admin.user_id,
                           detail={"user": user_id})
    forget_all(request.app)
    return web.Response(status=204)


async def update_user(request: web.Request) -> web.Response:
    """Disable (sessions and API keys end at once) or re-enable an account, or make
    it an administrator or not; admin only."""
    user_id = path_id(request, "user_id")
    admin = await require_admin(request)
    body = await read_json(request, "UserUpdate")
    disabled, make_admin = body.get("disabled"), body.get("is_admin")
    if user_id == admin.user_id and disabled:
        raise errors.Conflict("you cannot disable yourself")
    if user_id == admin.user_id and make_admin is False:
        raise errors.Conflict("you cannot take away your own administrator role")
    async with request.app[DB_POOL].acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"""UPDATE users SET
                  disabled_at = CASE WHEN $2::boolean IS NULL THEN disabled_at
                                     WHEN $2 THEN COALESCE(disabled_at, now()) ELSE NULL END,
                  is_admin = COALESCE($3::boolean, is_admin)
                WHERE id = $1 RETURNING {USER_COLUMNS}""", user_id, disabled, make_admin)
        if row is None:
            raise errors.NotFound("user not found")
        if disabled:
            await _end_access(conn, user_id)
        if disabled is not None:
            await log_activity(conn, "user.disable" if disabled else "user.enable",
                               user_id=admin.user_id, detail={"user": user_id})
        if make_admin is not None:
            await log_activity(conn, "user.role", user_id=admin.user_id,
                               detail={"user": user_id, "is_admin": make_admin})
    forget_all(request.app)
    return json_response(_user(row))


async def list_keys(request: web.Request) -> web.Response:
    principal = await require_user(request)
    limit, offset = page_params(request)
    pool = request.app[DB_POOL]
    rows = await pool.fetch(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = $1"
                            f" ORDER BY id LIMIT {limit} OFFSET {offset}", principal.user_id)
    total = await pool.fetchval("SELECT count(*) FROM api_keys WHERE user_id = $1",
                                principal.user_id)
    return json_response(page([dict(r) for r in rows], total, limit, offset))


async def create_key(request: web.Request) -> web.Response:
    principal = await require_user(request)
    body = await read_json(request, "ApiKeyCreate")
    key = security.new_api_key()
    row = await request.app[DB_POOL].fetchrow(
        f"""INSERT INTO api_keys (user_id, name, prefix, key_hash) VALUES ($1, $2, $3, $4)
            RETURNING {KEY_COLUMNS}""",
        principal.user_id, body["name"], key[:10], security.digest(key))
    assert row is not None
    return json_response({**dict(row), "key": key}, status=201)


async def revoke_key(request: web.Request) -> web.Response:
    key_id = path_id(request, "key_id")
    principal = await require_user(request)
    status = await request.app[DB_POOL].execute(
        """UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())
           WHERE id = $1 AND (user_id = $2 OR $3)""",
        key_id, principal.user_id, principal.is_admin)
    if status.endswith(" 0"):
        raise errors.NotFound("API key not found")
    # We do not know the key itself, only its id: drop every cached principal.
    forget_all(request.app)
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/setup", setup_status),
        web.post("/api/setup", setup_first_admin),
        web.get("/api/session", me),
        web.post("/api/session", login),
        web.delete("/api/session", logout),
        web.get("/api/users", list_users),
        web.post("/api/users", add_user),
        web.get("/api/users/{user_id}", get_user),
        web.delete("/api/users/{user_id}", delete_user),
        web.patch("/api/users/{user_id}", update_user),
        web.post("/api/users/{user_id}/password", reset_password),
        web.post("/api/account/password", change_password),
        web.get("/api/api-keys", list_keys),
        web.post("/api/api-keys", create_key),
        web.delete("/api/api-keys/{key_id}", revoke_key),
    ]
