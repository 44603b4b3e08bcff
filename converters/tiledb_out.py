"""``microtome convert --format tiledb``: the converted OME-Zarr pyramid, written again as
TileDB arrays (pyramid/tiledbstore.py) with exactly its decoded pixels.

The conversion itself (readers, pyramid levels, JPEG/zstd chunks) is the
OME-Zarr one; its result is then read level by level and written as TileDB
dense arrays into ``<stem>.tdb.partial``, renamed to ``<stem>.tdb`` when
complete (a failed transcode leaves no image behind).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from microtome.pyramid.errors import Conflict, StorageError
from microtome.pyramid.reader import open_pyramid
from microtome.pyramid.tiledbstore import SUFFIX, write_pyramid


def tiledb_missing() -> str | None:
    """Why ``--format tiledb`` cannot work here (the extra not installed), or None."""
    try:
        import tiledb  # noqa: F401
    except ImportError:
        return "--format tiledb needs TileDB: pip install 'microtome[tiledb]'"
    return None


def tiledb_path(zarr_path: Path) -> Path:
    """``x.ome.zarr`` → ``x.tdb`` in the same folder."""
    return zarr_path.with_name(zarr_path.name.removesuffix(".ome.zarr") + SUFFIX)


def transcode(zarr_dir: Path, dst: Path, overwrite: bool = False) -> int:
    """Write the OME-Zarr image ``zarr_dir`` as the TileDB image ``dst``; returns bytes."""
    if dst.exists() and not overwrite:
        raise Conflict("output already exists (use --overwrite)")
    partial = dst.with_name(dst.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        nbytes = write_pyramid(open_pyramid(zarr_dir), partial)
    except BaseException as e:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(e, OSError):
            raise StorageError(f"cannot write the TileDB image ({e.strerror or e})") from e
        raise
    if dst.exists():
        shutil.rmtree(dst)
    partial.rename(dst)
    return nbytes
