"""Two LiveHubs wired to each other as the NOTIFY relay wires processes (in order,
synchronously): leaders on one, followers on the other."""

from __future__ import annotations

from typing import Any

import orjson

from microtome.catalog.live import Follower, LiveHub
from microtome.catalog.live_relay import _valid


def _pair() -> tuple[LiveHub, LiveHub, list[dict[str, Any]]]:
    a, b = LiveHub(), LiveHub()
    wire: list[dict[str, Any]] = []

    def to(other: LiveHub, origin: str) -> Any:
        def send(msg: dict[str, Any]) -> None:
            # Through JSON, as NOTIFY carries it, and through the relay's shape check.
            msg = orjson.loads(orjson.dumps(msg))
            assert _valid(msg), msg
            wire.append(msg)
            other.apply_remote(origin, msg)
        return send

    a.publish, b.publish = to(b, "A"), to(a, "B")
    return a, b, wire


def _drain(f: Follower) -> list[dict[str, Any]]:
    out = []
    while not f.queue.empty():
        out.append(f.queue.get_nowait())
    return out


def test_follow_a_leader_of_another_process() -> None:
    a, b, wire = _pair()
    counts: list[int] = []
    a.open(7, "teacher", 3, 1, counts.append)
    assert [p.user_id for p in b.live()] == [7]  # announced: listed for following on B
    assert wire == [{"t": "view", "u": 7, "n": "teacher", "i": 3, "v": None}]
    a.move(7, 3, 1, (1, 2, 3, 4))
    a.move(7, 3, 1, (5, 6, 7, 8))
    assert len(wire) == 1  # nobody follows elsewhere: positions stay in A
    f = Follower(9)
    b.follow(7, f)
    assert counts[-1] == 1  # A's leader learns of B's follower
    assert _drain(f)[-1] == {"type": "view", "user_id": 7, "username": "teacher",
                             "image_id": 3, "x": 5, "y": 6, "w": 7, "h": 8}
    a.move(7, 4, 1, (10, 20, 30, 40))
    assert _drain(f) == [{"type": "view", "user_id": 7, "username": "teacher",
                          "image_id": 4, "x": 10, "y": 20, "w": 30, "h": 40}]
    b.unfollow(7, f)
    assert counts[-1] == 0
    b.follow(7, f)
    a.close(7, counts.append)
    assert _drain(f)[-1] == {"type": "offline", "user_id": 7}
    assert b.live() == [] and 7 in b.waiting
    # The leader comes back: the waiting follower follows again.
    a.open(7, "teacher", 3, 2)
    assert _drain(f)[-1]["type"] == "view"


def test_a_process_joining_late_learns_what_the_others_hold() -> None:
    a, b, _ = _pair()
    a.open(7, "teacher", 3, 1)
    b.remote.clear()  # B restarted its listener and missed the announcement
    b.publish({"t": "hello"})
    assert [p.username for p in b.live()] == ["teacher"]


def test_malformed_relay_messages_are_refused() -> None:
    for msg in ({"t": "view", "u": 1}, {"t": "view", "u": True, "n": "x", "i": 1, "v": None},
                {"t": "followers", "u": 1, "c": -1}, {"t": "boom"}, [], {"t": "gone", "u": 0},
                {"t": "view", "u": 1, "n": "x", "i": 1, "v": [1, 2, "3", 4]}):
        assert not _valid(msg), msg
