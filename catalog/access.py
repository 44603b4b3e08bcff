"""Who is calling, and what they may do.

Credentials, in the order they are looked at:

1. ``Authorization: Bearer mt_...``: an API key (scripts).  A wrong or
   revoked key is a 401, never silently anonymous.
2. A share-link token (``X-Share-Token`` header or ``?share=``): read-only
   access to one image or one project, for people without an account.
3. The ``microtome_session`` cookie (browsers).  Writes authenticated by the
   cookie must also send ``X-CSRF-Token`` with the value returned by
   ``POST /api/session`` / ``GET /api/session`` (a cross-site form cannot read
   it), otherwise 403.

Principals are cached in memory for a few seconds by credential digest so
that hot paths (tiles) do not query the database per request.
"""

from __future__ import annotations

import datetime as dt
import hmac
import time
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from microtome.catalog import security
from microtome.catalog.db import DB_POOL
from microtome.catalog.state import CATALOG
from microtome.catalog.ttlcache import TTLCache
from microtome.core.settings import Settings
from microtome.pyramid import errors

SESSION_COOKIE = "microtome_session"
CSRF_HEADER = "X-CSRF-Token"
SHARE_HEADER = "X-Share-Token"
#: In rank order.  A reviewer is a contributor who also accepts or rejects the
#: annotations of others (annotations/review.py).
ROLES = ("viewer", "contributor", "reviewer", "manager")
_RANK = {r: i for i, r in enumerate(ROLES)}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: How long another process may keep honouring a revoked credential when the
#: change notification (catalog.events) does not reach it.
PRINCIPAL_TTL = 10.0
#: SQL suffix on ``users`` lookups: disabled accounts are nobody.
_ACTIVE = " AND disabled_at IS NULL"
#: What a user who must change their password may still do (method, path).
PASSWORD_CHANGE_ROUTES = frozenset({
    ("GET", "/api/session"), ("DELETE", "/api/session"), ("POST", "/api/account/password"),
    ("GET", "/api/account/sessions"), ("DELETE", "/api/account/sessions")})
#: ``detail.reason`` of the 403 answered to everything else meanwhile.
PASSWORD_CHANGE_REASON = "password_change_required"


@dataclass(frozen=True)
class ShareScope:
    share_id: int
    image_id: int | None
    project_id: int | None


@dataclass(frozen=True)
class Principal:
    user_id: int | None
    username: str | None
    is_admin: bool
    via: str  # "session" | "apikey" | "share" | "anonymous"
    #: Set for share-link principals: what the link grants (read-only).
    share: ShareScope | None = None
    #: For session principals: the CSRF token the client must echo on writes.
    csrf_token: str | None = None
    #: Session or API key row id (logout, key revocation).
    credential_id: int | None = None
    #: An administrator reset the account: nothing but the password change (and
    #: the session itself) works until the user sets a new password.
    must_change: bool = False


@dataclass
class AccessState:
    settings: Settings
    principals: TTLCache[Principal | None]


ACCESS: web.AppKey[AccessState] = web.AppKey("catalog_access", AccessState)
#: Cache sentinel: "not looked up yet" (None is a cached "no such credential").
_MISS = Principal(None, None, False, "miss")
_REQ_KEY: web.RequestKey[Principal | None] = web.RequestKey("catalog_principal", object)  # type: ignore[arg-type]


def setup_access(app: web.Application, settings: Settings) -> None:
    app[ACCESS] = AccessState(settings, TTLCache(maxsize=10_000, ttl=PRINCIPAL_TTL))


def _pool(request: web.Request) -> asyncpg.Pool:
    return request.app[DB_POOL]


def forget_credential(app: web.Application, token_digest: bytes) -> None:
    """One session or key ended: here and in every other process."""
    publish = app[CATALOG].publish
    if publish is not None:
        publish("cred", token_digest.hex())
    else:
        app[ACCESS].principals.pop(token_digest)


def forget_all(app: web.Application) -> None:
    """After revocations whose token we do not have (key ids, user deletion)."""
    publish = app[CATALOG].publish
    if publish is not None:
        publish("all", None)
    else:
        app[ACCESS].principals.clear()
        app[CATALOG].access.clear()


async def _from_api_key(pool: asyncpg.Pool, key: str) -> Principal | None:
    row = await pool.fetchrow(
        """UPDATE api_keys k SET last_used_at = now()
           FROM users u WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND u.id = k.user_id
             AND u.disabled_at IS NULL
           RETURNING k.id, u.id AS user_id, u.username, u.is_admin,
                     u.must_change_password""",
        security.digest(key))
    if row is None:
        return None
    return Principal(row["user_id"], row["username"], row["is_admin"], "apikey",
                     credential_id=row["id"], must_change=row["must_change_password"])


async def _from_session(pool: asyncpg.Pool, token: str, idle_minutes: int) -> Principal | None:
    # Each lookup (at most one per PRINCIPAL_TTL per process) marks the session as
    # used; one idle for longer than the timeout is over.
    row = await pool.fetchrow(
        """UPDATE sessions s SET last_seen_at = now()
           FROM users u
           WHERE s.token_hash = $1 AND u.id = s.user_id AND s.expires_at > now()
             AND s.last_seen_at > now() - make_interval(mins => $2)
             AND u.disabled_at IS NULL
           RETURNING s.id, s.csrf_token, u.id AS user_id, u.username, u.is_admin,
                     u.must_change_password""",
        security.digest(token), idle_minutes)
    if row is None:
        return None
    return Principal(row["user_id"], row["username"], row["is_admin"], "session",
                     csrf_token=row["csrf_token"], credential_id=row["id"],
                     must_change=row["must_change_password"])


async def share_principal(app: web.Application, token: str) -> Principal | None:
    """The read-only principal of a valid, unexpired, unrevoked share token."""
    state = app[ACCESS]
    payload = security.verify(state.settings.secret_key, token, "share")
    if payload is None:
        return None
    key = ("share", payload["i"])
    cached = state.principals.get(key, _MISS)
    if cached is not _MISS:
        return cached
    # One round trip checks the link and records its use (for the links page).
    row = await app[DB_POOL].fetchrow(
        """UPDATE share_links SET last_used_at = now()
           WHERE id = $1 AND revoked_at IS NULL AND expires_at > now()
           RETURNING id, image_id, project_id, created_by""", payload["i"])
    principal = None
    if row is not None and await _creator_may_share(app, row):
        principal = Principal(None, None, False, "share",
                              share=ShareScope(row["id"], row["image_id"], row["project_id"]))
    # Never cache past the link's own expiry.
    ttl = max(0.0, min(PRINCIPAL_TTL, payload["e"] - time.time()))
    state.principals.set(key, principal, ttl=ttl)
    return principal



async def _creator_may_share(app: web.Application, row: asyncpg.Record) -> bool:
    """A share link lives only as long as its creator may still create it."""
    if row["created_by"] is None:
        return False
    creator = await user_principal(app, row["created_by"])
    if creator is None:
        return False
    pool = app[DB_POOL]
    if row["image_id"] is not None:
        return role_at_least((await image_access(pool, creator, row["image_id"])).role,
                             "contributor")
    return role_at_least((await _role_for(pool, creator, row["project_id"]))[1], "manager")


async def user_principal(app: web.Application, user_id: int) -> Principal | None:
    """The user with this id as a principal (None if gone or disabled), cached: signed
    URLs and share links act with their creator's current rights."""
    state = app[ACCESS]
    key = ("uid", user_id)
    cached = state.principals.get(key, _MISS)
    if cached is _MISS:
        row = await app[DB_POOL].fetchrow(
            f"SELECT id, username, is_admin FROM users WHERE id = $1{_ACTIVE}", user_id)
        cached = None if row is None else Principal(row["id"], row["username"],
                                                    row["is_admin"], "creator")
        state.principals.set(key, cached)
    return cached


def _remember_user(state: AccessState, p: Principal | None) -> None:
    if p is not None and p.user_id is not None:
        state.principals.set(("uid", p.user_id), Principal(p.user_id, p.username, p.is_admin,
                                                           "creator"))


def _token_text(value: str) -> bool:
    """Our tokens are printable ASCII; header bytes that are not (non-UTF-8, control
    characters) can never match one and must not reach encoders or the database."""
    return value.isascii() and value.isprintable()


def bearer_token(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if not auth.isascii():
        # Other schemes (Basic from a proxy) are not ours and are ignored; bytes
        # that are no scheme at all are a broken client.
        raise errors.Unauthenticated("malformed Authorization header")
    if auth[:7].lower() == "bearer ":
        token = auth[7:].strip()
        if not _token_text(token):
            raise errors.Unauthenticated("invalid or revoked API key")
        return token
    return None


def share_token_of(request: web.Request) -> str | None:
    token = request.headers.get(SHARE_HEADER) or request.query.get("share") or None
    if token is not None and not _token_text(token):
        raise errors.Unauthenticated("share link invalid, expired or revoked")
    return token


def session_cookie(request: web.Request) -> str | None:
    """The session cookie, if it can be one (garbage is treated as no cookie)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    return cookie if cookie and _token_text(cookie) else None


async def _lookup(request: web.Request) -> Principal | None:
    app = request.app
    state = app[ACCESS]
    key = bearer_token(request)
    if key is not None:
        d = security.digest(key)
        cached = state.principals.get(d, _MISS)
        if cached is _MISS:
            cached = await _from_api_key(_pool(request), key)
            state.principals.set(d, cached)
            _remember_user(state, cached)
        if cached is None:
            raise errors.Unauthenticated("invalid or revoked API key")
        return cached
    share = share_token_of(request)
    if share is not None:
        principal = await share_principal(app, share)
        if principal is None:
            raise errors.Unauthenticated("share link invalid, expired or revoked")
        return principal
    cookie = session_cookie(request)
    if cookie:
        d = security.digest(cookie)
        cached = state.principals.get(d, _MISS)
        if cached is _MISS:
            cached = await _from_session(_pool(request), cookie,
                                         state.settings.session_idle_minutes)
            state.principals.set(d, cached)
            _remember_user(state, cached)
        # An expired or unknown cookie is simply anonymous (the UI shows login).
        return cached
    return None


async def get_principal(request: web.Request) -> Principal | None:
    """The caller, or None when anonymous.  Enforces CSRF for cookie writes."""
    if _REQ_KEY in request:
        return request[_REQ_KEY]
    principal = await _lookup(request)
    if (principal is not None and principal.via == "session"
            and request.method not in _SAFE_METHODS):
        sent = request.headers.get(CSRF_HEADER, "").encode("utf-8", "surrogateescape")
        if not principal.csrf_token or not hmac.compare_digest(
                sent, principal.csrf_token.encode()):
            raise errors.Forbidden("missing or wrong X-CSRF-Token header")
    if (principal is not None and principal.must_change
            and (request.method, request.path) not in PASSWORD_CHANGE_ROUTES):
        raise errors.Forbidden("an administrator reset this account: set a new password"
                               " first (POST /api/account/password)",
                               {"reason": PASSWORD_CHANGE_REASON})
    request[_REQ_KEY] = principal
    return principal


async def require_user(request: web.Request) -> Principal:
    """A logged-in user (session or API key); share links and anonymous are refused."""
    principal = await get_principal(request)
    if principal is None:
        raise errors.Unauthenticated("login required")
    if principal.user_id is None:
        raise errors.Forbidden("a share link only allows viewing")
    return principal


async def require_admin(request: web.Request) -> Principal:
    principal = await require_user(request)
    if not principal.is_admin:
        raise errors.Forbidden("administrator only")
    return principal


def role_at_least(role: str | None, minimum: str) -> bool:
    return role is not None and _RANK[role] >= _RANK[minimum]


async def _role_for(pool: asyncpg.Pool, principal: Principal | None,
                    project_id: int) -> tuple[bool, str | None]:
    """(project exists, role)."""
    row = await pool.fetchrow(
        """SELECT p.public, m.role FROM projects p
           LEFT JOIN project_members m ON m.project_id = p.id AND m.user_id = $2
           WHERE p.id = $1""",
        project_id, principal.user_id if principal else None)
    if row is None:
        return False, None
    if principal is not None and principal.is_admin:
        return True, "manager"
    if principal is not None and principal.share is not None:
        return True, "viewer" if principal.share.project_id == project_id else None
    if row["role"] is not None:
        return True, row["role"]
    return True, "viewer" if row["public"] else None


async def project_role(request: web.Request, project_id: int) -> str | None:
    """'manager' | 'reviewer' | 'contributor' | 'viewer' | None for the caller on this project."""
    principal = await get_principal(request)
    return (await _role_for(_pool(request), principal, project_id))[1]


def _deny(principal: Principal | None, role: str | None, what: str) -> errors.MicrotomeError:
    if principal is None:
        return errors.Unauthenticated("login required")
    if role is None:
        # Outsiders cannot tell a private object from a missing one.
        return errors.NotFound(f"{what} not found")
    return errors.Forbidden(f"this needs a higher role on the {what}")


def _anonymous() -> Principal:
    return Principal(None, None, False, "anonymous")


async def require_project_role(request: web.Request, project_id: int, minimum: str) -> Principal:
    principal = await get_principal(request)
    exists, role = await _role_for(_pool(request), principal, project_id)
    if not exists:
        if principal is None:
            raise errors.Unauthenticated("login required")
        raise errors.NotFound("project not found")
    if not role_at_least(role, minimum):
        raise _deny(principal, role, "project")
    if minimum != "viewer" and (principal is None or principal.user_id is None):
        raise _deny(principal, None, "project")
    return principal or _anonymous()


@dataclass(frozen=True)
class ImageAccess:
    """What one caller may do with one image.

    ``role`` is the effective role.  Anything above 'viewer' comes only from
    the image's *home* project (the one it was uploaded into), from being its
    uploader, or from being an admin: a project the image was merely linked
    into, or a public project, grants reading and nothing more.  ``home_read``
    says whether reading comes from that owner side (signed URLs need it);
    ``may_link`` whether the caller may link it into another project.
    """

    exists: bool
    role: str | None = None
    home_read: bool = False
    may_link: bool = False


_IMAGE_ACCESS_SQL = """
SELECT i.owner_id,
       (SELECT m.role FROM project_images pi JOIN project_members m
          ON m.project_id = pi.project_id AND m.user_id = $2
         WHERE pi.image_id = i.id AND pi.project_id = i.home_project_id) AS home_role,
       (SELECT max(CASE m.role WHEN 'manager' THEN 2 WHEN 'viewer' THEN 0 ELSE 1 END)
          FROM project_images pi JOIN project_members m
            ON m.project_id = pi.project_id AND m.user_id = $2
         WHERE pi.image_id = i.id) AS rank,
       EXISTS (SELECT 1 FROM project_images pi JOIN projects p ON p.id = pi.project_id
                WHERE pi.image_id = i.id AND p.public) AS public,
       EXISTS (SELECT 1 FROM project_images pi
                WHERE pi.image_id = i.id AND pi.project_id = $3) AS in_shared
FROM images i WHERE i.id = $1"""


async def image_access(pool: asyncpg.Pool | asyncpg.Connection, principal: Principal | None,
                       image_id: int) -> ImageAccess:
    user_id = principal.user_id if principal else None
    row = await pool.fetchrow(
        _IMAGE_ACCESS_SQL, image_id, user_id,
        principal.share.project_id if principal and principal.share else None)
    if row is None:
        return ImageAccess(False)
    if principal is not None and principal.is_admin:
        return ImageAccess(True, "manager", True, True)
    if principal is not None and principal.share is not None:
        s = principal.share
        ok = s.image_id == image_id or (s.project_id is not None and row["in_shared"])
        return ImageAccess(True, "viewer" if ok else None)
    owner: list[str] = []
    if row["home_role"] is not None:
        owner.append(row["home_role"])
    uploader = user_id is not None and row["owner_id"] == user_id
    if uploader:
        owner.append("contributor")
    owner_role = max(owner, key=_RANK.__getitem__) if owner else None
    readable = owner_role is not None or row["rank"] is not None or row["public"]
    return ImageAccess(True, owner_role or ("viewer" if readable else None),
                       home_read=owner_role is not None,
                       may_link=uploader or (row["rank"] or 0) >= 1)


async def image_role(pool: asyncpg.Pool | asyncpg.Connection, principal: Principal | None,
                     image_id: int) -> tuple[bool, str | None]:
    """(image exists, effective role of the caller on it); see `ImageAccess`."""
    acc = await image_access(pool, principal, image_id)
    return acc.exists, acc.role


def _check_image(principal: Principal | None, acc: ImageAccess, minimum: str) -> Principal:
    if not acc.exists:
        if principal is None:
            raise errors.Unauthenticated("login required")
        raise errors.NotFound("image not found")
    if not role_at_least(acc.role, minimum):
        raise _deny(principal, acc.role, "image")
    if minimum != "viewer" and (principal is None or principal.user_id is None):
        raise _deny(principal, None, "image")
    return principal or _anonymous()


async def require_image_role(request: web.Request, image_id: int, minimum: str) -> Principal:
    principal = await get_principal(request)
    return _check_image(principal, await image_access(_pool(request), principal, image_id),
                        minimum)


async def require_image_home(request: web.Request, image_id: int) -> Principal:
    """Read access that comes from the image's home project, its uploader or an admin
    (signed URLs: a project the image was linked into cannot mint them)."""
    principal = await get_principal(request)
    acc = await image_access(_pool(request), principal, image_id)
    _check_image(principal, acc, "viewer")
    if not acc.home_read or principal is None or principal.user_id is None:
        raise errors.Forbidden("only members of the image's home project can do this")
    return principal


async def require_image_link(request: web.Request, image_id: int) -> Principal:
    """May the caller link this image into another project?  Contributor or above in
    a project already holding it, its uploader, or an admin; readers get 403."""
    principal = await get_principal(request)
    acc = await image_access(_pool(request), principal, image_id)
    _check_image(principal, acc, "viewer")
    if not acc.may_link or principal is None or principal.user_id is None:
        raise errors.Forbidden("linking an image needs contributor rights in a project"
                               " that holds it")
    return principal


async def require_image_access(request: web.Request, image_id: int,
                               write: bool = False) -> Principal:
    """Read (viewer) or write (contributor) access to one image."""
    return await require_image_role(request, image_id, "contributor" if write else "viewer")


def session_expiry(now: dt.datetime | None = None, hours: int = 14 * 24) -> dt.datetime:
    return (now or dt.datetime.now(dt.UTC)) + dt.timedelta(hours=hours)
