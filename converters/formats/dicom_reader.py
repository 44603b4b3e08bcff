"""DICOM WSI (VL Whole Slide Microscopy Image) series through wsidicom.

The source is a folder or several ``.dcm`` files of one series.  Only the
default focal plane and optical path are converted (noted in the info).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from pyramid.errors import SourceError

from ..base import SourceInfo, SourceReader, clean_json

WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"


def is_dicom_file(path: Path) -> bool:
    try:
        if not path.is_file():  # a FIFO would block open() until a writer comes
            return False
        with open(path, "rb") as fh:
            head = fh.read(132)
        return len(head) == 132 and head[128:132] == b"DICM"
    except OSError:
        return False


def dicom_files(paths: list[Path]) -> list[Path]:
    """Expand folders; keep files that carry the DICOM preamble."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and is_dicom_file(f)))
        elif is_dicom_file(p):
            out.append(p)
    return out


class DicomReader(SourceReader):
    def __init__(self, paths: list[Path]) -> None:
        from wsidicom import WsiDicom

        files = dicom_files(paths)
        if not files:
            raise SourceError("no DICOM files found")
        try:
            self._wsi = WsiDicom.open(files)
        except Exception as e:
            if "not found" in str(e).lower():
                raise SourceError("incomplete DICOM WSI series: no full-resolution "
                                  "(VOLUME) instance, instances are missing") from e
            raise SourceError(f"cannot open DICOM WSI series: {_short(e)}") from e
        self._lock = threading.Lock()
        wsi = self._wsi
        w, h = wsi.size.width, wsi.size.height
        mpp = wsi.mpp
        assoc = []
        if wsi.labels:
            assoc.append("label")
        if wsi.overviews:
            assoc.append("macro")
        base = wsi.levels[0]
        ts = base.tile_size.width
        lossy = "jpeg" in str(getattr(base, "transfer_syntax", "")).lower() or True
        self.info = SourceInfo(
            format="dicom", vendor="dicom", width=w, height=h, dtype="uint8", rgb=True,
            size_c=3, levels=[(lv.size.width, lv.size.height) for lv in wsi.levels],
            pixel_size_um=(float(mpp.width), float(mpp.height)) if mpp else None,
            associated=assoc, lossy=lossy, whole_slide=True, tile_size=ts,
        )
        try:
            import pydicom

            from .vendor_meta import dicom_meta
            ds = pydicom.dcmread(files[0], stop_before_pixels=True)
            self.info.acquired, self.info.scanner = dicom_meta(ds)
        except Exception:
            pass  # metadata is a courtesy: the image itself opened fine

    def read_region(self, x: int, y: int, w: int, h: int, t: int = 0, z: int = 0,
                    channels: list[int] | None = None) -> np.ndarray:
        try:
            with self._lock:
                im = self._wsi.read_region((x, y), 0, (w, h))
            arr = np.asarray(im.convert("RGB"))
        except Exception as e:
            raise SourceError(f"damaged or missing DICOM frames near ({x},{y}): "
                              f"{_short(e)}") from e
        return arr

    def associated_image(self, name: str) -> np.ndarray:
        with self._lock:
            im = self._wsi.read_label() if name == "label" else self._wsi.read_overview()
        return np.asarray(im.convert("RGB"))

    def original_metadata(self) -> dict[str, Any]:
        try:
            import dataclasses
            meta: Any = self._wsi.metadata
            if dataclasses.is_dataclass(meta) and not isinstance(meta, type):
                return clean_json(dataclasses.asdict(meta))
            return {"metadata": str(meta)}
        except Exception:
            return {}

    def close(self) -> None:
        self._wsi.close()


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:200]
