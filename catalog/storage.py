"""Where a catalogued image's files live: the one module that knows the layout.

``<images_dir>/<id>/`` holds everything of image ``id``: the pyramid
(``image.ome.zarr``, or ``image.tdb`` when conversions write TileDB:
MICROTOME_STORE_FORMAT), conversion partials and the kept original.  The
``storage_path`` column stores the pyramid's path relative to ``images_dir``.

With ``MICROTOME_STORAGE=s3://bucket/prefix`` the pyramid lives at
``s3://bucket/prefix/<id>/image.ome.zarr`` instead (same relative path);
conversion partials and kept originals stay in ``<images_dir>/<id>/``.
"""

from __future__ import annotations

from pathlib import Path

from microtome.pyramid.stores import join, open_store

STORE_NAME = "image.ome.zarr"
#: The pyramid's name when conversions write TileDB (MICROTOME_STORE_FORMAT=tiledb).
TILEDB_NAME = "image.tdb"


def store_name(store_format: str) -> str:
    """The pyramid's folder name for a store format (core.settings.STORE_FORMATS)."""
    return TILEDB_NAME if store_format == "tiledb" else STORE_NAME


def storage_relpath(image_id: int, name: str = STORE_NAME) -> str:
    """The pyramid of image `image_id`, relative to the images folder."""
    return f"{int(image_id)}/{name}"


def image_dir(images_dir: Path, image_id: int) -> Path:
    """The folder holding every file of image `image_id`."""
    return images_dir / str(int(image_id))


def pyramid_path(images_dir: Path, image_id: int, storage_path: str | None = None,
                 remote: str | None = None) -> Path | str:
    """The stored pyramid (a local path, or a URL under the `remote` store); a missing or
    escaping `storage_path` falls back to the layout."""
    rel = storage_path
    if not rel or rel.startswith("/") or ".." in rel.split("/"):
        rel = storage_relpath(image_id)
    return join(remote, rel) if remote else images_dir / rel


def remote_image_location(remote: str, image_id: int) -> str:
    """Everything of image `image_id` in the remote store (a URL prefix)."""
    return str(join(remote, str(int(image_id))))


def remote_pyramid(remote: str, image_id: int, name: str = STORE_NAME) -> str:
    """Where a conversion publishes the pyramid of `image_id` in the remote store."""
    return str(join(remote, storage_relpath(image_id, name)))


def delete_remote(remote: str, image_id: int) -> None:
    """Blocking: remove the image's objects from the remote store (root document first,
    so readers see "not found" rather than a partial image)."""
    store = open_store(remote_image_location(remote, image_id))
    store.delete_prefix(f"{STORE_NAME}/zarr.json")
    store.delete_prefix(f"{TILEDB_NAME}/microtome.json")  # a TileDB image's root document
    store.delete_prefix("")


ATTACHMENTS = "attachments"


def attachment_path(images_dir: Path, image_id: int, attachment_id: int) -> Path:
    """An attached file (report, table) of image `image_id`, kept beside its pyramid."""
    return image_dir(images_dir, image_id) / ATTACHMENTS / str(int(attachment_id))
