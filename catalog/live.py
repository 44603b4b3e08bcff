"""Live viewers: who looks at which image, and who follows whom.

Pure in-memory state, no aiohttp.  Fan-out is bounded twice: a user has at
most `max_followers` followers (per process), and each follower holds at most
one pending position (a newer one replaces it), so a slow follower gets fewer
updates instead of making the leader, the server or the other followers wait.

Across processes (several `serve` behind one address) the hub speaks through
`publish` (catalog/live_relay.py carries it over PostgreSQL NOTIFY) and
`apply_remote`: each process announces its leaders ("view", "gone") and how
many of its followers wait for each leader ("followers").  A leader's
positions go out only while followers elsewhere exist, so an unfollowed
viewer costs the database nothing but its opening and closing.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from microtome.pyramid import errors


@dataclass
class TokenBucket:
    """`rate` messages a second on average, bursts of `burst`."""

    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float = 0.0

    def take(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if self.tokens < 0:
            self.tokens, self.stamp = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def parse_view(msg: Any) -> tuple[float, float, float, float]:
    """(x, y, w, h) in level-0 pixels from a viewer's message; InvalidRequest otherwise."""
    if not isinstance(msg, dict):
        raise errors.InvalidRequest("a view message is an object {x, y, w, h}")
    try:
        vals = tuple(float(msg[k]) for k in ("x", "y", "w", "h"))
    except (KeyError, TypeError, ValueError):
        raise errors.InvalidRequest("a view message needs numbers x, y, w, h") from None
    if not all(math.isfinite(v) and abs(v) < 1e9 for v in vals) or vals[2] <= 0 or vals[3] <= 0:
        raise errors.InvalidRequest("x, y, w, h must be finite, w and h positive")
    return vals  # type: ignore[return-value]


class Follower:
    """One follower's mailbox: the latest message only."""

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1)

    def offer(self, msg: dict[str, Any]) -> None:
        if self.queue.full():
            self.queue.get_nowait()  # latest wins: an old position is worthless
        self.queue.put_nowait(msg)


@dataclass
class Presence:
    """A user's current live view (their most recently active viewer tab)."""

    user_id: int
    username: str
    image_id: int
    session_id: int
    since: float
    view: tuple[float, float, float, float] | None = None
    sockets: int = 0
    followers: set[Follower] = field(default_factory=set)
    #: Followers on other processes (their counts, summed).
    remote_followers: int = 0
    #: Called with the follower count when it changes (the leader's sockets are told).
    watchers: list[Callable[[int], None]] = field(default_factory=list)

    def tell(self) -> None:
        for cb in list(self.watchers):
            cb(len(self.followers) + self.remote_followers)

    def message(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "view", "user_id": self.user_id,
                               "username": self.username, "image_id": self.image_id}
        if self.view is not None:
            out.update(zip(("x", "y", "w", "h"), self.view, strict=True))
        return out


class LiveHub:
    def __init__(self, max_followers: int = 50, max_sockets_per_user: int = 16) -> None:
        self.max_followers = max_followers
        self.max_sockets_per_user = max_sockets_per_user
        self.presence: dict[int, Presence] = {}
        #: Followers waiting for a user who is not live (yet).
        self.waiting: dict[int, set[Follower]] = {}
        #: Leaders live on other processes (followed from here through them).
        self.remote: dict[int, Presence] = {}
        #: Our leaders' followers elsewhere: leader → {process: count}.
        self.remote_counts: dict[int, dict[str, int]] = {}
        #: Sends a message to the other processes (set by the relay; None: alone).
        self.publish: Callable[[dict[str, Any]], None] | None = None

    def _send(self, msg: dict[str, Any]) -> None:
        if self.publish is not None:
            self.publish(msg)

    def _announce(self, p: Presence) -> None:
        self._send({"t": "view", "u": p.user_id, "n": p.username, "i": p.image_id,
                    "v": list(p.view) if p.view is not None else None})

    def open(self, user_id: int, username: str, image_id: int, session_id: int,
             watcher: Callable[[int], None] | None = None) -> Presence:
        p = self.presence.get(user_id)
        if p is not None and p.sockets >= self.max_sockets_per_user:
            raise errors.TooManyRequests("too many live viewers open for this user",
                                         retry_after=10)
        if p is None:
            p = self.presence[user_id] = Presence(user_id, username, image_id, session_id,
                                                  time.time())
            p.followers |= self.waiting.pop(user_id, set())
            p.remote_followers = sum(self.remote_counts.get(user_id, {}).values())
        p.sockets += 1
        if watcher is not None:
            p.watchers.append(watcher)
            if p.followers:
                watcher(len(p.followers))
        self.move(user_id, image_id, session_id, None)
        return p

    def move(self, user_id: int, image_id: int, session_id: int,
             view: tuple[float, float, float, float] | None) -> None:
        """The user's latest view (the tab that spoke last is the one followed)."""
        p = self.presence.get(user_id)
        if p is None:
            return
        moved = p.image_id != image_id or view is None
        p.image_id, p.session_id = image_id, session_id
        if view is not None or p.view is None:
            p.view = view
        msg = p.message()
        for f in p.followers:
            f.offer(msg)
        # Everyone learns where a leader is (the lists of whom to follow); the
        # positions themselves only while someone elsewhere follows.
        if moved or p.remote_followers:
            self._announce(p)

    def close(self, user_id: int, watcher: Callable[[int], None] | None = None) -> None:
        p = self.presence.get(user_id)
        if p is None:
            return
        if watcher is not None and watcher in p.watchers:
            p.watchers.remove(watcher)
        p.sockets -= 1
        if p.sockets <= 0:
            del self.presence[user_id]
            self._send({"t": "gone", "u": user_id})
            if p.followers:
                self.waiting[user_id] = p.followers
                for f in p.followers:
                    f.offer({"type": "offline", "user_id": user_id})

    def _leader(self, leader_id: int) -> Presence | None:
        """The leader as seen from here: live in this process, else in another."""
        return self.presence.get(leader_id) or self.remote.get(leader_id)

    def _send_followers(self, leader_id: int) -> None:
        """Tell the other processes how many here follow a leader who is not ours."""
        if leader_id in self.presence:
            return
        p = self.remote.get(leader_id)
        group = p.followers if p is not None else self.waiting.get(leader_id, set())
        self._send({"t": "followers", "u": leader_id, "c": len(group)})

    def follow(self, leader_id: int, follower: Follower) -> None:
        p = self._leader(leader_id)
        group = p.followers if p is not None else self.waiting.setdefault(leader_id, set())
        if len(group) >= self.max_followers:
            raise errors.TooManyRequests("this user has as many followers as allowed",
                                         {"max": self.max_followers}, retry_after=30)
        group.add(follower)
        follower.offer(p.message() if p is not None
                       else {"type": "offline", "user_id": leader_id})
        if p is not None:
            p.tell()
        self._send_followers(leader_id)

    def unfollow(self, leader_id: int, follower: Follower) -> None:
        p = self._leader(leader_id)
        if p is not None and follower in p.followers:
            p.followers.discard(follower)
            p.tell()
        waiting = self.waiting.get(leader_id)
        if waiting is not None:
            waiting.discard(follower)
            if not waiting:
                del self.waiting[leader_id]
        self._send_followers(leader_id)

    # -- other processes ----------------------------------------------------------------
    def apply_remote(self, origin: str, msg: dict[str, Any]) -> None:
        """A message another process published (catalog/live_relay.py checked its shape)."""
        kind, uid = msg["t"], int(msg.get("u") or 0)
        if kind == "hello":
            # A process (re)joined: it knows nothing; tell it what we have.
            for p in self.presence.values():
                self._announce(p)
            for leader in {*self.remote, *self.waiting}:
                self._send_followers(leader)
        elif kind == "view":
            rp = self.remote.get(uid)
            if rp is None:
                rp = self.remote[uid] = Presence(uid, msg["n"], msg["i"], 0, time.time())
                if uid not in self.presence:
                    rp.followers |= self.waiting.pop(uid, set())
            rp.username, rp.image_id = msg["n"], msg["i"]
            v = msg["v"]
            rp.view = (float(v[0]), float(v[1]), float(v[2]), float(v[3])) if v else None
            if uid not in self.presence:
                out = rp.message()
                for f in rp.followers:
                    f.offer(out)
        elif kind == "gone":
            gone = self.remote.pop(uid, None)
            if gone is not None and gone.followers and uid not in self.presence:
                self.waiting.setdefault(uid, set()).update(gone.followers)
                for f in gone.followers:
                    f.offer({"type": "offline", "user_id": uid})
        elif kind == "followers":
            counts = self.remote_counts.setdefault(uid, {})
            if msg["c"]:
                counts[origin] = msg["c"]
            else:
                counts.pop(origin, None)
                if not counts:
                    del self.remote_counts[uid]
            local = self.presence.get(uid)
            if local is not None:
                local.remote_followers = sum(counts.values())
                local.tell()
                if msg["c"]:
                    self._announce(local)  # the new follower's first position

    def forget_process(self, origin: str) -> None:
        """Another process's follower counts (when it is known to have gone)."""
        for uid in list(self.remote_counts):
            self.apply_remote(origin, {"t": "followers", "u": uid, "c": 0})

    def live(self) -> list[Presence]:
        """Everyone live: here, then elsewhere (a leader live in both counts once)."""
        return [*self.presence.values(),
                *(p for uid, p in self.remote.items() if uid not in self.presence)]

    def followers(self, user_id: int) -> int:
        p = self.presence.get(user_id)
        return len(p.followers) if p is not None else 0
