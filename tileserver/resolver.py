"""Image id → stored pyramid: the one seam between the tile server and its host.

`Resolver` is the protocol; `FolderResolver` serves a folder of
``*.ome.zarr`` (and TileDB ``*.tdb``) directories (``microtome tiles``); the catalog provides its
own resolver for ``microtome serve``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

from aiohttp import web

from microtome.core.imageref import ImageRef
from microtome.pyramid.errors import InvalidRequest, NotFound, Unavailable
from microtome.pyramid.stores import ObjectMissing, is_remote, join, open_store

__all__ = ["SUFFIX", "FolderResolver", "ImageRef", "Resolver", "check_id"]

SUFFIX = ".ome.zarr"
#: Images stored as TileDB arrays: ``<id>.tdb`` with its document (pyramid/tiledbstore.py).
TILEDB_SUFFIX = ".tdb"
TILEDB_DOC = "microtome.json"
#: Longest accepted image id, characters.
MAX_ID_LENGTH = 1024


class Resolver(Protocol):
    async def resolve(self, request: web.Request, image_id: str) -> ImageRef:
        """Raise NotFound / Unauthenticated / Forbidden (pyramid.errors) when not served."""
        ...


def check_id(image_id: str) -> list[str]:
    """Validate a folder-mode id and split it into path segments.

    Rejects everything that could escape the root or mean something
    different on another OS: NUL, backslashes, absolute paths, ``.``/``..``
    segments, empty segments.  Messages never echo the id.
    """
    if not image_id or len(image_id) > MAX_ID_LENGTH:
        raise NotFound("image not found")
    if "\x00" in image_id or "\\" in image_id:
        raise InvalidRequest("invalid image id")
    if image_id.startswith("/") or image_id.startswith("~"):
        raise InvalidRequest("invalid image id")
    parts = image_id.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidRequest("invalid image id")
    return parts


class FolderResolver:
    """Standalone mode: the id is the path under ``root`` without ``.ome.zarr``.

    Resolutions are cached for ``ttl`` seconds so the hot path costs no
    filesystem call; the version is derived from the group document's inode
    and mtime, which change when a conversion atomically replaces the image.
    """

    def __init__(self, root: Path | str, ttl: float = 2.0, max_entries: int = 4096) -> None:
        #: A local folder, or an object store URL (``s3://bucket/prefix``).
        self.root: Path | str = root if is_remote(root) else Path(root).resolve()
        self.store = open_store(self.root) if is_remote(root) else None
        self.ttl = ttl
        self.max_entries = max_entries
        self._cache: OrderedDict[str, tuple[float, ImageRef]] = OrderedDict()
        #: Lookups in flight: when an entry expires under load, the concurrent requests
        #: of that image share one lookup (one HEAD on object storage, not one each).
        self._inflight: dict[str, asyncio.Future[ImageRef]] = {}

    def peek(self, request: web.Request, image_id: str) -> ImageRef | None:
        """The cached resolution while it is fresh, else None (then call `resolve`)."""
        hit = self._cache.get(image_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    async def resolve(self, request: web.Request, image_id: str) -> ImageRef:
        now = time.monotonic()
        hit = self._cache.get(image_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        parts = check_id(image_id)
        fut = self._inflight.get(image_id)
        if fut is None:
            loop = asyncio.get_running_loop()
            fut = asyncio.ensure_future(loop.run_in_executor(None, self._lookup, parts))
            self._inflight[image_id] = fut
            fut.add_done_callback(lambda done: self._inflight.pop(image_id, None)
                                  if self._inflight.get(image_id) is done else None)
        try:
            # Shielded: one cancelled request must not cancel the others' lookup.
            ref = await asyncio.shield(fut)
        except Unavailable:
            if hit is None:
                raise
            # Remote storage is down: keep serving what we knew (cached tiles
            # still answer) rather than failing every request of the image.
            return hit[1]
        if hit is not None and hit[1] == ref:
            ref = hit[1]  # unchanged: keep the object (and its cached key)
        self._cache[image_id] = (now + self.ttl, ref)
        self._cache.move_to_end(image_id)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return ref

    def _lookup(self, parts: list[str]) -> ImageRef:
        if self.store is not None:
            return self._lookup_remote(parts)
        assert isinstance(self.root, Path)
        path = self.root.joinpath(*parts[:-1], parts[-1] + SUFFIX)
        try:
            real = path.resolve()
            # A symlink pointing outside the root is treated as absent.
            if not real.is_relative_to(self.root):
                raise NotFound("image not found")
            try:
                st = os.stat(real / "zarr.json")
            except FileNotFoundError:
                try:
                    st = os.stat(real / ".zattrs")  # NGFF 0.4 (zarr v2)
                except FileNotFoundError:
                    return self._lookup_tiledb(parts)
        except (OSError, ValueError):
            raise NotFound("image not found") from None
        return ImageRef(path=real, version=f"{st.st_ino:x}-{st.st_mtime_ns:x}")

    def _lookup_tiledb(self, parts: list[str]) -> ImageRef:
        """``<id>.tdb``: an image stored as TileDB arrays (pyramid/tiledbstore.py)."""
        assert isinstance(self.root, Path)
        try:
            real = self.root.joinpath(*parts[:-1], parts[-1] + TILEDB_SUFFIX).resolve()
            if not real.is_relative_to(self.root):
                raise NotFound("image not found")
            st = os.stat(real / TILEDB_DOC)
        except (OSError, ValueError):
            raise NotFound("image not found") from None
        return ImageRef(path=real, version=f"{st.st_ino:x}-{st.st_mtime_ns:x}")

    def _lookup_remote(self, parts: list[str]) -> ImageRef:
        """The image's group document decides existence and version (its ETag changes
        when a conversion publishes a new image: the document is uploaded last)."""
        assert self.store is not None
        rel = "/".join([*parts[:-1], parts[-1] + SUFFIX])
        try:
            version = self.store.version(f"{rel}/zarr.json")
        except ObjectMissing:
            try:
                version = self.store.version(f"{rel}/.zattrs")  # NGFF 0.4 (zarr v2)
            except ObjectMissing:
                rel = "/".join([*parts[:-1], parts[-1] + TILEDB_SUFFIX])
                try:
                    version = self.store.version(f"{rel}/{TILEDB_DOC}")
                except ObjectMissing:
                    raise NotFound("image not found") from None
        url = join(self.root, rel)
        return ImageRef(path=url, version=version.strip('"'))
