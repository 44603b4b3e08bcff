"""Per-application catalog state: settings and the in-memory caches of the tile path."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from microtome.catalog.ttlcache import TTLCache
from microtome.core.settings import Settings

#: How long an image's (path, version) and a user's access to it are trusted
#: without asking the database again.
IMAGE_TTL = 10.0


@dataclass
class CatalogState:
    settings: Settings
    #: image id -> (storage path, version, status)
    images: TTLCache[Any] = field(default_factory=lambda: TTLCache(20_000, IMAGE_TTL))
    #: (principal key, image id) -> allowed?
    access: TTLCache[bool] = field(default_factory=lambda: TTLCache(100_000, IMAGE_TTL))
    #: (credential key, image id) -> the tile resolution last granted to that
    #: credential.  Only consulted while the database is unreachable; kept for
    #: settings.outage_grace_s after the last successful check.
    granted: TTLCache[Any] = field(init=False)

    def __post_init__(self) -> None:
        self.granted = TTLCache(100_000, self.settings.outage_grace_s)

    #: Set by catalog.web: evict here and tell the other processes (catalog.events).
    publish: Callable[[str, Any], None] | None = None

    def drop_image(self, image_id: int) -> None:
        self.images.pop(image_id)
        self.access.evict(lambda k: isinstance(k, tuple) and k[-1] == image_id)
        self.granted.evict(lambda k: isinstance(k, tuple) and k[-1] == image_id)

    def forget_image(self, image_id: int) -> None:
        """The image changed, moved between projects or went: in every process."""
        if self.publish is not None:
            self.publish("image", image_id)
        else:
            self.drop_image(image_id)

    def forget_access(self) -> None:
        """After membership or visibility changes: every cached decision, everywhere."""
        if self.publish is not None:
            self.publish("access", None)
        else:
            self.drop_access()

    def drop_access(self) -> None:
        self.access.clear()
        self.granted.clear()

    def forget_credential(self, key: Hashable | None) -> None:
        """A credential was revoked (None: possibly any): no outage grace for it."""
        if key is None:
            self.granted.clear()
        else:
            self.granted.evict(lambda k: isinstance(k, tuple) and k[0] == key)


CATALOG: web.AppKey[CatalogState] = web.AppKey("catalog_state", CatalogState)
