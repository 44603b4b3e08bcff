"""DICOM WSI (VL Whole Slide Microscopy Image) series through wsidicom.

The source is a folder, a zip or several ``.dcm`` files of one series
(TILED_FULL or TILED_SPARSE).  Focal planes become z; the optical paths of
monochrome (fluorescence) data become channels; of several colour optical
paths the first is converted (noted in the info).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from microtome.pyramid.errors import SourceError

from ..base import ChannelInfo, SourceInfo, SourceReader, clean_json

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
        ds = _volume_dataset(files)
        # Focal planes are z; optical paths of monochrome data are channels
        # (fluorescence), in the order the instance lists them.
        self._z = sorted(float(v) for v in getattr(base, "focal_planes", [0.0]) or [0.0])
        ids = [str(p) for p in getattr(base, "optical_paths", []) or []]
        listed = [str(op.get("OpticalPathIdentifier", "")) for op in
                  (ds.get("OpticalPathSequence", []) if ds is not None else [])]
        ids = sorted(ids, key=lambda p: listed.index(p) if p in listed else len(listed))
        self._paths: list[str | None] = list(ids) or [None]
        mono = ds is not None and int(ds.get("SamplesPerPixel", 3)) == 1
        self._mono = mono
        bits = int(ds.get("BitsAllocated", 8)) if ds is not None else 8
        channels = []
        if mono:
            waves = {str(op.get("OpticalPathIdentifier", "")): op.get("IlluminationWaveLength")
                     for op in ds.get("OpticalPathSequence", [])}
            channels = [ChannelInfo(str(p), None, excitation_nm=_nm(waves.get(str(p))))
                        for p in self._paths]
        zsp = (float(np.median(np.diff(self._z)))  # focal planes are in µm
               if len(self._z) > 1 else None)
        self.info = SourceInfo(
            format="dicom", vendor="dicom", width=w, height=h,
            dtype="uint16" if mono and bits > 8 else "uint8", rgb=not mono,
            size_c=len(channels) if mono else 3, size_z=len(self._z),
            levels=[(lv.size.width, lv.size.height) for lv in wsi.levels],
            pixel_size_um=(float(mpp.width), float(mpp.height)) if mpp else None,
            z_spacing_um=zsp, associated=assoc, lossy=lossy, whole_slide=True, tile_size=ts,
            channels=channels,
        )
        if not mono and len(self._paths) > 1:
            self.info.notes.append(f"first of {len(self._paths)} colour optical paths converted")
        if ds is not None:
            from .vendor_meta import dicom_meta
            self.info.acquired, self.info.scanner = dicom_meta(ds)

    def read_region(self, x: int, y: int, w: int, h: int, t: int = 0, z: int = 0,
                    channels: list[int] | None = None) -> np.ndarray:
        zval = self._z[z] if len(self._z) > 1 else None
        try:
            if self._mono:
                wanted = channels if channels is not None else range(len(self._paths))
                planes = []
                for c in wanted:
                    with self._lock:
                        planes.append(np.asarray(self._wsi.read_region(
                            (x, y), 0, (w, h), z=zval, path=self._paths[c], as_array=True)))
                return np.ascontiguousarray(np.stack([p.reshape(h, w) for p in planes], -1))
            with self._lock:
                im = self._wsi.read_region((x, y), 0, (w, h), z=zval, path=self._paths[0])
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


def _volume_dataset(files: list[Path]) -> Any:
    """The first full-resolution (VOLUME) instance's header, or None."""
    import pydicom

    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception:
            continue
        if "VOLUME" in [str(v) for v in ds.get("ImageType", [])]:
            return ds
    return None


def _nm(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f > 0 else None


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:200]
