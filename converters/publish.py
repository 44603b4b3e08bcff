"""Publish a finished local pyramid to a store URL (``s3://bucket/prefix/x.ome.zarr``).

Object stores have no atomic rename of a folder, so atomicity comes from the
order: every object is uploaded first and the root metadata document
(``zarr.json``, or ``.zattrs`` for NGFF 0.4) last.  Readers find an image by
that document (the tile server's resolver, `open_pyramid`), so they see either
no image or the complete one, never a half-written image.  Replacing an image
removes its root document first: during the replacement readers get
"not found", never a mix of two images.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from microtome.pyramid.errors import Conflict
from microtome.pyramid.stores import Store, open_store

#: Root documents, uploaded last (the group's existence means "complete");
#: ``microtome.json`` is a TileDB image's (pyramid/tiledbstore.py).
ROOT_DOCS = ("zarr.json", ".zattrs", "microtome.json")
#: Parallel uploads (object stores reward concurrency; each shard is one PUT).
UPLOAD_THREADS = 16


def image_exists(store: Store) -> bool:
    return any(store.exists(doc) for doc in ROOT_DOCS)


def publish(local: Path, url: str, overwrite: bool = False) -> int:
    """Upload the image folder ``local`` to ``url``; returns the bytes uploaded.

    Conflict when an image is already there and ``overwrite`` is false.
    Storage failures propagate (Unavailable); the root document then was never
    written, so nothing half-done is visible.
    """
    store = open_store(url)
    if image_exists(store):
        if not overwrite:
            raise Conflict("output already exists (use --overwrite)")
        for doc in ROOT_DOCS:  # the old image disappears first, as a whole
            if store.exists(doc):
                store.delete_prefix(doc)
        store.delete_prefix("")
    files = sorted(p for p in local.rglob("*") if p.is_file())
    rel = {p: p.relative_to(local).as_posix() for p in files}
    last = [p for p in files if rel[p] in ROOT_DOCS]
    body = [p for p in files if rel[p] not in ROOT_DOCS]
    with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="upload") as pool:
        list(pool.map(lambda p: store.put_file(rel[p], p), body))
    for p in sorted(last, key=lambda p: rel[p] == ".zattrs"):  # .zattrs after .zgroup
        store.put_file(rel[p], p)
    return sum(p.stat().st_size for p in files)
