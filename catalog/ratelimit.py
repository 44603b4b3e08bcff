"""Login throttling: failed attempts counted per user name and per client address.

Counters live in PostgreSQL (table ``throttle_counters``), so every ``serve``
process behind a load balancer counts into the same budget: a name locked by
failures on one process is locked on all of them.  A window opens with the
first failure and lasts ``window`` seconds; once it holds ``limit`` failures
every further attempt is refused (HTTP 429 with ``Retry-After``) until it
closes — the password is not even checked, so the refusal reveals nothing
about it or about whether the user exists.

An attempt is counted *before* the password is verified (argon2 takes a
while), in one transaction that locks the counter rows it reads, so
concurrent guesses — on one process or on several — cannot all slip through
an open window; a successful login clears its user name's counter and gives
its attempt back to the client's.  Rows of closed windows are deleted by
``cleanup`` (run now and then by the counting itself): the table holds at
most the keys that failed within one window.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import asyncpg
from aiohttp import web

from microtome.pyramid import errors

#: Failed logins allowed per user name (whatever the client) per window.
USER_LIMIT = 5
#: Failed logins allowed per client address (whatever the names) per window;
#: higher, because several people may share one address (NAT, proxy).
CLIENT_LIMIT = 20
#: Seconds a window lasts from its first failure.
WINDOW = 300.0
#: One counting call in this many also deletes the rows of closed windows.
CLEANUP_ONE_IN = 50

# Seconds left in a window that is full (NULL when the key may try now).
_WAIT_SQL = """
SELECT kind, key, failures, extract(epoch FROM window_end - now())::float8 AS left_s
  FROM throttle_counters
 WHERE (kind, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))
   AND window_end > now()
 ORDER BY kind, key
   FOR UPDATE"""

# Add `delta` to each (kind, key); a closed window restarts at now().  A
# negative delta never creates a row and never goes below zero.
_ADD_SQL = """
INSERT INTO throttle_counters AS t (kind, key, failures, window_end)
SELECT k, v, $3, now() + make_interval(secs => $4)
  FROM unnest($1::text[], $2::text[]) AS u(k, v)
 WHERE $3 > 0
ON CONFLICT (kind, key) DO UPDATE SET
    failures = CASE WHEN t.window_end <= now() THEN excluded.failures
                    ELSE t.failures + excluded.failures END,
    window_end = CASE WHEN t.window_end <= now() THEN excluded.window_end
                      ELSE t.window_end END"""

_REFUND_SQL = """
UPDATE throttle_counters SET failures = greatest(0, failures + $3)
 WHERE (kind, key) IN (SELECT * FROM unnest($1::text[], $2::text[])) AND window_end > now()"""

type Pool = asyncpg.Pool | asyncpg.Connection


class FailureCounter:
    """Failures per key of one kind, in fixed windows that expire (shared, in PostgreSQL)."""

    def __init__(self, kind: str, limit: int, window: float = WINDOW) -> None:
        self.kind = kind
        self.limit = limit
        self.window = window

    async def retry_after(self, db: Pool, key: object) -> float | None:
        """Seconds until `key` may try again, or None when it may try now."""
        row = await db.fetchrow(
            "SELECT failures, extract(epoch FROM window_end - now())::float8 AS left_s"
            " FROM throttle_counters WHERE kind = $1 AND key = $2 AND window_end > now()",
            self.kind, str(key))
        if row is None or row["failures"] < self.limit:
            return None
        return max(0.0, float(row["left_s"]))

    async def add(self, db: Pool, key: object, delta: int = 1) -> None:
        await _add(db, [(self.kind, str(key))], delta, self.window)

    async def clear(self, db: Pool, key: object) -> None:
        await db.execute("DELETE FROM throttle_counters WHERE kind = $1 AND key = $2",
                         self.kind, str(key))


async def _add(db: Pool, keys: Sequence[tuple[str, str]], delta: int, window: float) -> None:
    kinds, values = [k for k, _ in keys], [v for _, v in keys]
    if delta > 0:
        await db.execute(_ADD_SQL, kinds, values, delta, window)
    elif delta < 0:
        await db.execute(_REFUND_SQL, kinds, values, delta)
    if random.randrange(CLEANUP_ONE_IN) == 0:
        await cleanup(db)


async def cleanup(db: Pool) -> int:
    """Delete the counters of closed windows; returns how many went."""
    status = await db.execute("DELETE FROM throttle_counters WHERE window_end <= now()")
    return int(status.split()[-1])


#: Unknown names a manager may try when adding members, per window.
MEMBER_LOOKUP_LIMIT = 20
MEMBER_LOOKUPS: web.AppKey[FailureCounter] = web.AppKey("member_lookups", FailureCounter)


def too_many(what: str, seconds: float) -> errors.TooManyRequests:
    wait = max(1, math.ceil(seconds))  # rounded up, never 0
    return errors.TooManyRequests(f"too many {what}; try again in {wait} s",
                                  {"retry_after": wait}, retry_after=wait)


class LoginThrottle:
    """The two counters of ``POST /api/session``: per user name and per client."""

    def __init__(self, user_limit: int = USER_LIMIT, client_limit: int = CLIENT_LIMIT,
                 window: float = WINDOW) -> None:
        self.limits = {"user": user_limit, "client": client_limit}
        self.window = window

    @staticmethod
    def _keys(username: str, client: str) -> list[tuple[str, str]]:
        # User names are unique case-insensitively (and logins ignore case).
        return [("user", username.lower()), ("client", client)]

    async def begin(self, pool: asyncpg.Pool, username: str, client: str) -> None:
        """Count an attempt, or raise TooManyRequests when either counter is full."""
        keys = self._keys(username, client)
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_WAIT_SQL, [k for k, _ in keys], [v for _, v in keys])
            waits = [r["left_s"] for r in rows if r["failures"] >= self.limits[r["kind"]]]
            if waits:
                raise too_many("failed logins", max(waits))
            await _add(conn, keys, 1, self.window)

    async def succeeded(self, pool: asyncpg.Pool, username: str, client: str) -> None:
        """The password was right: forget the name's failures, refund the client."""
        user, client_key = self._keys(username, client)
        await pool.execute("DELETE FROM throttle_counters WHERE kind = $1 AND key = $2", *user)
        await _add(pool, [client_key], -1, self.window)

    async def abandoned(self, pool: asyncpg.Pool, username: str, client: str) -> None:
        """The attempt ended without a verdict (e.g. database down): refund both."""
        await _add(pool, self._keys(username, client), -1, self.window)


LOGIN_THROTTLE: web.AppKey[LoginThrottle] = web.AppKey("catalog_login_throttle", LoginThrottle)


def client_address(request: web.Request) -> str:
    """The peer address.  Forwarded-for headers are not trusted: anyone can send them
    (unless the peer is a trusted proxy: core.http's forwarded middleware)."""
    return request.remote or "unknown"
