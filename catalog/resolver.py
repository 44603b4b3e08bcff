"""Image id → stored pyramid for the tile server, with access control off the database.

Tile URLs name the image either as ``42`` or as ``42~<token>``: the token
rides inside the id so that every URL a third-party viewer derives from
``info.json`` / the ``.dzi`` still carries it.  (``?token=`` works too for
single requests.)  Accepted, cheapest first:

- a signed tile token (HMAC over image id, version, expiry, scope, creator):
  verified with the secret key, then the creator's read access is checked
  like a session's (cached, evicted at once on changes via catalog.events);
- a share-link token: the link row is cached for a few seconds;
- the caller's session cookie / API key / ``?share=``: the principal and the
  (principal, image) decision are cached for a few seconds.

The image row (path, version, status) is cached too, so a hot tile path does
no database round-trip.  It implements ``tileserver``'s `Resolver` protocol
without importing ``tileserver`` (nothing does): `ImageRef` lives in ``core``.

A resolution that went through those checks is remembered for at most
`MEMO_TTL` seconds under the request's raw credential material (image id,
Cookie, Authorization, X-Share-Token headers and the raw query, which holds
``?token=``/``?share=``), so a warm tile costs a dictionary lookup instead of
cookie parsing, an HMAC and three cache lookups.  The memo never outlives a
token's own expiry, and any eviction from the caches it was built from (a
revocation, logout, membership or image change here or notified by another
process) makes every memo entry stale at once.  Only the fallback bound for a
revocation whose notification never arrives grows, by `MEMO_TTL`.

While the database is unreachable, a credential (cookie, API key, share
token, signed URL, or none) keeps reading the images it was last granted, for
``settings.outage_grace_s`` after that grant was last confirmed; anything
else is a 503.  Revocations made through this process end the grace at once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from aiohttp import web

from microtome.catalog import security
from microtome.catalog.access import (
    ACCESS,
    SESSION_COOKIE,
    SHARE_HEADER,
    Principal,
    bearer_token,
    get_principal,
    image_role,
    share_principal,
    share_token_of,
    user_principal,
)
from microtome.catalog.db import DB_POOL, unavailable
from microtome.catalog.state import CATALOG
from microtome.catalog.storage import pyramid_path
from microtome.core.imageref import ImageRef
from microtome.pyramid import errors


def split_id(image_id: str) -> tuple[int, str | None]:
    """``"42"`` → (42, None); ``"42~tok"`` → (42, "tok"); anything else → NotFound."""
    head, sep, token = image_id.partition("~")
    if not (head.isascii() and head.isdigit()) or len(head) > 18 or (sep and not token):
        raise errors.NotFound("image not found")
    return int(head), token or None


def _principal_key(p: Principal | None) -> tuple[Any, ...]:
    if p is None:
        return ("anon",)
    if p.share is not None:
        return ("share", p.share.share_id)
    return ("user", p.user_id, p.is_admin)


def credential_key(request: web.Request, token: str | None) -> Any:
    """Who is asking, without the database: the same keys the principal cache uses
    (credential digest, or ("share", link id)), in the order access.py looks."""
    if token is None:
        bearer = bearer_token(request)
        if bearer is not None:
            return security.digest(bearer)
        token = share_token_of(request)
        if token is None:
            cookie = request.cookies.get(SESSION_COOKIE)
            return security.digest(cookie) if cookie else ("anon",)
    return ("share-token", security.digest(token))


#: Longest reuse of a checked tile resolution for the same credential material, s.
MEMO_TTL = 1.0
#: Resolutions remembered; past that the oldest are forgotten first.
MEMO_SIZE = 4096


def _memo_key(request: web.Request, image_id: str) -> tuple[str | None, ...]:
    """Everything `_checked` reads from the request, raw (nothing parsed)."""
    headers = request.headers
    return (image_id, request.method, headers.get("Cookie"), headers.get("Authorization"),
            headers.get(SHARE_HEADER), request.raw_path.partition("?")[2])


class CatalogResolver:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        #: memo key -> (monotonic deadline, cache changes when made, the resolution)
        self._memo: dict[tuple[str | None, ...], tuple[float, int, ImageRef]] = {}

    def _changes(self) -> int:
        state = self.app[CATALOG]
        return state.images.changes + state.access.changes + self.app[ACCESS].principals.changes

    def peek(self, request: web.Request, image_id: str) -> ImageRef | None:
        """The resolution checked shortly before for the same credentials, if still
        valid (see the module docstring), else None: then call `resolve`."""
        hit = self._memo.get(_memo_key(request, image_id))
        if hit is None or hit[0] < time.monotonic() or hit[1] != self._changes():
            return None
        return hit[2]

    def _remember(self, request: web.Request, image_id: str, token: str | None,
                  changes: int, ref: ImageRef) -> None:
        state = self.app[CATALOG]
        ttl = min(MEMO_TTL, state.images.ttl, state.access.ttl,
                  self.app[ACCESS].principals.ttl)
        tokens = [token] if token is not None else []
        share = request.headers.get(SHARE_HEADER) or request.query.get("share")
        if share:
            tokens.append(share)
        for t in tokens:  # never past a token's own expiry
            payload = (security.verify(state.settings.secret_key, t, "tile")
                       or security.verify(state.settings.secret_key, t, "share"))
            if payload is not None:
                ttl = min(ttl, payload["e"] - time.time())
        if ttl <= 0:
            return
        memo = self._memo
        memo[_memo_key(request, image_id)] = (time.monotonic() + ttl, changes, ref)
        if len(memo) > MEMO_SIZE:
            del memo[next(iter(memo))]

    async def _image(self, image_id: int) -> tuple[str | None, str, str]:
        state = self.app[CATALOG]
        hit = state.images.get(image_id)
        if hit is not None:
            return hit  # type: ignore[no-any-return]
        row = await self.app[DB_POOL].fetchrow(
            "SELECT storage_path, version, status FROM images WHERE id = $1", image_id)
        if row is None:
            raise errors.NotFound("image not found")
        entry = (row["storage_path"], row["version"], row["status"])
        state.images.set(image_id, entry)
        return entry

    def _path(self, image_id: int, storage_path: str | None) -> Path | str:
        settings = self.app[CATALOG].settings
        remote = settings.storage.url if settings.storage else None
        return pyramid_path(settings.images_dir, image_id, storage_path, remote)

    async def _allowed(self, principal: Principal | None, image_id: int) -> bool:
        state = self.app[CATALOG]
        key = (*_principal_key(principal), image_id)
        hit = state.access.get(key)
        if hit is None:
            _, role = await image_role(self.app[DB_POOL], principal, image_id)
            hit = role is not None
            state.access.set(key, hit)
        return hit

    async def _signed(self, payload: dict[str, Any], iid: int) -> ImageRef:
        """A signed URL acts with its creator's *current* read access (cached like any
        decision, evicted at once by catalog.events): it stops when they lose it."""
        if payload.get("i") != iid:
            raise errors.Forbidden("this token is for another image")
        storage_path, version, status = await self._image(iid)  # deleted: 404
        creator_id = payload.get("u")
        creator = (await user_principal(self.app, creator_id)
                   if isinstance(creator_id, int) else None)
        if creator is None or not await self._allowed(creator, iid):
            raise errors.Unauthenticated("signed URL no longer valid; ask for a new one")
        if status != "ready":
            raise errors.NotFound("image not ready")
        return ImageRef(self._path(iid, storage_path), version, private=True)

    async def resolve(self, request: web.Request, image_id: str) -> ImageRef:
        iid, token = split_id(image_id)
        token = token or request.query.get("token")
        state = self.app[CATALOG]
        key = (credential_key(request, token), iid)
        changes = self._changes()  # before the checks: a change during them wins
        try:
            ref = await self._checked(request, iid, token)
        except Exception as exc:
            if not unavailable(exc):
                raise
            granted = state.granted.get(key)
            if granted is None:
                raise errors.Unavailable(
                    "database unavailable; only images opened shortly before are served"
                ) from None
            return granted  # type: ignore[no-any-return]
        state.granted.set(key, ref)
        self._remember(request, image_id, token, changes, ref)
        return ref

    async def _checked(self, request: web.Request, iid: int, token: str | None) -> ImageRef:
        """The normal path: credentials and access checked (through the caches)."""
        if token is not None:
            payload = security.verify(self.app[CATALOG].settings.secret_key, token, "tile")
            if payload is not None:
                return await self._signed(payload, iid)
            principal = await share_principal(self.app, token)
            if principal is None:
                raise errors.Unauthenticated("tile URL token invalid or expired")
        else:
            principal = await get_principal(request)
        if not await self._allowed(principal, iid):
            if principal is None:
                raise errors.Unauthenticated("login required")
            raise errors.NotFound("image not found")
        storage_path, version, status = await self._image(iid)
        if status != "ready":
            raise errors.NotFound("image not ready")
        private = principal is not None and principal.via != "anonymous"
        return ImageRef(self._path(iid, storage_path), version, private=private)
