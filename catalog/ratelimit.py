"""Login throttling: failed attempts counted per user name and per client address.

Counters live in memory, in bounded LRU caches whose entries expire with their
window (``TTLCache``), so a flood of made-up names cannot grow memory.  A
window opens with the first failure and lasts ``window`` seconds; once it
holds ``limit`` failures every further attempt is refused (HTTP 429 with
``Retry-After``) until it closes — the password is not even checked, so the
refusal reveals nothing about it or about whether the user exists.

An attempt is counted *before* the password is verified (argon2 takes a
while), so concurrent guesses cannot all slip through an open window; a
successful login clears its user name's counter and gives its attempt back
to the client's.  The limits are per process: with several ``serve``
processes an attacker gets that many times the budget, still bounded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable

from aiohttp import web

from catalog.ttlcache import TTLCache
from pyramid import errors

#: Failed logins allowed per user name (whatever the client) per window.
USER_LIMIT = 5
#: Failed logins allowed per client address (whatever the names) per window;
#: higher, because several people may share one address (NAT, proxy).
CLIENT_LIMIT = 20
#: Seconds a window lasts from its first failure.
WINDOW = 300.0
#: Counters kept per kind; the least recently used go first beyond this.
MAX_KEYS = 10_000


class FailureCounter:
    """Failures per key in fixed windows that expire; bounded in size."""

    def __init__(self, limit: int, window: float, maxsize: int = MAX_KEYS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        #: key -> (failures, end of the window on `clock`)
        self._counts: TTLCache[tuple[int, float]] = TTLCache(maxsize, window, clock)

    def retry_after(self, key: Hashable) -> float | None:
        """Seconds until `key` may try again, or None when it may try now."""
        item = self._counts.get(key)
        if item is None or item[0] < self.limit:
            return None
        return max(0.0, item[1] - self._clock())

    def add(self, key: Hashable, delta: int = 1) -> None:
        now = self._clock()
        item = self._counts.get(key)
        failures, end = item if item is not None else (0, now + self.window)
        failures = max(0, failures + delta)
        if failures == 0:
            self._counts.pop(key)
        else:
            self._counts.set(key, (failures, end), ttl=max(0.0, end - now))

    def clear(self, key: Hashable) -> None:
        self._counts.pop(key)

    def __len__(self) -> int:
        return len(self._counts)


#: Unknown names a manager may try when adding members, per window.
MEMBER_LOOKUP_LIMIT = 20
MEMBER_LOOKUPS: web.AppKey[FailureCounter] = web.AppKey("member_lookups", FailureCounter)


class LoginThrottle:
    """The two counters of ``POST /api/session``: per user name and per client."""

    def __init__(self, user_limit: int = USER_LIMIT, client_limit: int = CLIENT_LIMIT,
                 window: float = WINDOW, maxsize: int = MAX_KEYS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.users = FailureCounter(user_limit, window, maxsize, clock)
        self.clients = FailureCounter(client_limit, window, maxsize, clock)

    @staticmethod
    def _user(username: str) -> str:
        # User names are unique case-insensitively (and logins ignore case).
        return username.lower()

    def begin(self, username: str, client: str) -> None:
        """Count an attempt, or raise TooManyRequests when either counter is full."""
        user = self._user(username)
        waits = [w for w in (self.users.retry_after(user), self.clients.retry_after(client))
                 if w is not None]
        if waits:
            seconds = max(1, math.ceil(max(waits)))
            raise errors.TooManyRequests(
                f"too many failed logins; try again in {seconds} s",
                {"retry_after": seconds}, retry_after=seconds)
        self.users.add(user)
        self.clients.add(client)

    def succeeded(self, username: str, client: str) -> None:
        """The password was right: forget the name's failures, refund the client."""
        self.users.clear(self._user(username))
        self.clients.add(client, -1)

    def abandoned(self, username: str, client: str) -> None:
        """The attempt ended without a verdict (e.g. database down): refund both."""
        self.users.add(self._user(username), -1)
        self.clients.add(client, -1)


LOGIN_THROTTLE: web.AppKey[LoginThrottle] = web.AppKey("catalog_login_throttle", LoginThrottle)


def client_address(request: web.Request) -> str:
    """The peer address.  Forwarded-for headers are not trusted: anyone can send them."""
    return request.remote or "unknown"
