"""Where a catalogued image's files live: the one module that knows the layout.

``<images_dir>/<id>/`` holds everything of image ``id``: the pyramid
(``image.ome.zarr``), conversion partials and the kept original.  The
``storage_path`` column stores the pyramid's path relative to ``images_dir``.
"""

from __future__ import annotations

from pathlib import Path

STORE_NAME = "image.ome.zarr"


def storage_relpath(image_id: int) -> str:
    """The pyramid of image `image_id`, relative to the images folder."""
    return f"{int(image_id)}/{STORE_NAME}"


def image_dir(images_dir: Path, image_id: int) -> Path:
    """The folder holding every file of image `image_id`."""
    return images_dir / str(int(image_id))


def pyramid_path(images_dir: Path, image_id: int, storage_path: str | None = None) -> Path:
    """The stored pyramid; a missing or escaping `storage_path` falls back to the layout."""
    rel = storage_path
    if not rel or rel.startswith("/") or ".." in rel.split("/"):
        rel = storage_relpath(image_id)
    return images_dir / rel


ATTACHMENTS = "attachments"


def attachment_path(images_dir: Path, image_id: int, attachment_id: int) -> Path:
    """An attached file (report, table) of image `image_id`, kept beside its pyramid."""
    return image_dir(images_dir, image_id) / ATTACHMENTS / str(int(attachment_id))
