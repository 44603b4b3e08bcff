"""A zip holding one slide: MRXS (the .mrxs file and its data folder), a
DICOM WSI series, or a single image of any supported format.

The archive is checked (size, zip bomb ratio, free disk) and extracted into
a private temporary folder that is removed on close.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from microtome.pyramid.errors import SourceError

from ..base import SourceReader

#: Refuse archives that expand more than this in total.
MAX_UNZIPPED = 200 << 30
#: Slides are already compressed; a large ratio means a zip bomb.
MAX_RATIO = 200


class ZipSource(SourceReader):
    def __init__(self, path: Path) -> None:
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise SourceError(f"damaged zip archive: {e}") from e
        with zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            _check_archive(path, infos)
            self._tmp = Path(tempfile.mkdtemp(prefix="microtome-zip-"))
            try:
                _check_space(self._tmp, sum(i.file_size for i in infos))
                zf.extractall(self._tmp)
            except zipfile.BadZipFile as e:
                self.close()
                raise SourceError(f"damaged zip archive: {e}") from e
            except OSError as e:
                self.close()
                raise SourceError(f"cannot extract zip: {e.strerror or e}") from e
            except BaseException:
                self.close()
                raise
        try:
            self._inner = _open_inner(self._tmp)
        except BaseException:
            self.close()
            raise
        self.info = self._inner.info
        self.info.notes.append(f"from zip: {self.info.format}")

    def read_region(self, x: int, y: int, w: int, h: int, t: int = 0, z: int = 0,
                    channels: list[int] | None = None) -> np.ndarray:
        return self._inner.read_region(x, y, w, h, t, z, channels)

    def raw_tile(self, x: int, y: int, size: int) -> bytes | None:
        return self._inner.raw_tile(x, y, size)

    def associated_image(self, name: str) -> np.ndarray:
        return self._inner.associated_image(name)

    def original_metadata(self) -> dict[str, Any]:
        return self._inner.original_metadata()

    def configure(self, **choices: Any) -> None:
        self._inner.configure(**choices)
        if self.info is not self._inner.info:
            self.info = self._inner.info
            self.info.notes.append(f"from zip: {self.info.format}")

    def write_beside(self, root: Path) -> None:
        self._inner.write_beside(root)

    def close(self) -> None:
        inner = getattr(self, "_inner", None)
        if inner is not None:
            inner.close()
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _check_archive(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    if not infos:
        raise SourceError("zip archive is empty")
    total = sum(i.file_size for i in infos)
    packed = max(1, sum(i.compress_size for i in infos))
    if total > MAX_UNZIPPED or (total > (64 << 20) and total / packed > MAX_RATIO):
        raise SourceError("zip archive expands implausibly (zip bomb?)")
    if any(i.flag_bits & 0x1 for i in infos):
        raise SourceError("zip archive is encrypted")


def _check_space(folder: Path, need: int) -> None:
    free = shutil.disk_usage(folder).free
    if need > free:
        raise SourceError("not enough free disk space to extract the zip")


def _open_inner(root: Path) -> SourceReader:
    """Find the slide inside an extracted archive, most specific first."""
    from ..sources import _detect, _probe_for, open_source
    from .dicom_reader import dicom_files

    files = sorted(p for p in root.rglob("*") if p.is_file()
                   and not p.name.startswith(".") and "__MACOSX" not in p.parts)
    # MRXS / VMS: an index file next to its data folder, found by OpenSlide.
    from .openslide_reader import openslide_vendor
    for f in files:
        if f.suffix.lower() in (".mrxs", ".vms", ".vmu") and openslide_vendor(f):
            return open_source(f)
    imzml = [f for f in files if f.suffix.lower() == ".imzml"]
    if len(imzml) == 1:
        return open_source(imzml[0])  # its .ibd is found beside it
    dcm = dicom_files([root])
    if dcm:
        return open_source(dcm)
    candidates = []
    for f in files:
        try:
            _fmt, name = _detect(_probe_for(f))
        except SourceError:
            continue
        if name != "zip":
            candidates.append(f)
    if not candidates:
        raise SourceError("zip archive contains no recognised slide")
    # Several images: the largest file is the slide (others are usually
    # previews or labels).
    best = max(candidates, key=lambda f: f.stat().st_size)
    return open_source(best)
