"""Live viewers and follow mode across `serve` processes, over PostgreSQL NOTIFY.

Every process's LiveHub (catalog/live.py) publishes what the others need to
know: where its leaders are ("view": user, name, image, position), that one
left ("gone"), and how many of its own followers wait for a leader who is
not its own ("followers").  Messages travel on the channel `microtome_live`
of the access-change listener's connection (catalog/events.py): one listening
connection per process.  A process that (re)connects says "hello" and the
others announce what they hold.

Positions are sent only while followers exist elsewhere, and each leader's
viewer is rate-limited (5 a second), so the database carries at most the
followed leaders' positions, not everyone's.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from microtome.catalog.events import AccessEvents, Channel
from microtome.catalog.live import LiveHub

log = logging.getLogger("microtome.catalog.live_relay")

CHANNEL = "microtome_live"
KINDS = ("hello", "view", "gone", "followers")
#: NOTIFY payloads are limited to 8000 bytes; names are short, this is a guard.
MAX_PAYLOAD = 7000


def _valid(msg: Any) -> bool:
    """The shape of each kind (a foreign or broken message is dropped, never applied)."""
    if not isinstance(msg, dict) or msg.get("t") not in KINDS:
        return False
    if msg["t"] == "hello":
        return True
    uid = msg.get("u")
    if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
        return False
    if msg["t"] == "view":
        view = msg.get("v")
        return (isinstance(msg.get("n"), str) and isinstance(msg.get("i"), int)
                and (view is None or (isinstance(view, list) and len(view) == 4
                                      and all(isinstance(x, int | float) for x in view))))
    if msg["t"] == "followers":
        c = msg.get("c")
        return isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 1_000_000
    return True


class LiveRelay(Channel):
    def __init__(self, hub: LiveHub, events: AccessEvents) -> None:
        self.hub, self.events = hub, events
        self.origin = events.origin
        hub.publish = self.publish
        events.channels[CHANNEL] = self

    def publish(self, msg: dict[str, Any]) -> None:
        payload = orjson.dumps({**msg, "o": self.origin}).decode()
        if len(payload) > MAX_PAYLOAD:
            log.warning("live message too large for NOTIFY, not relayed")
            return
        self.events.notify(CHANNEL, payload)

    def received(self, payload: str) -> None:
        try:
            msg = orjson.loads(payload)
        except orjson.JSONDecodeError:
            msg = None
        if not _valid(msg) or not isinstance(msg.get("o"), str):
            log.warning("ignoring a malformed live notification")
            return
        if msg["o"] != self.origin:
            self.hub.apply_remote(msg["o"], msg)

    def connected(self) -> None:
        self.publish({"t": "hello"})
