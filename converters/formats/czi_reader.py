"""Zeiss CZI through Zeiss's own libCZI (pylibCZIrw).

One scene is one image (the first by default; ``--scene N`` picks another).
Mosaics are stitched by libCZI from the tiles' stage positions: a region read
in scene coordinates composes whichever subblocks cover it.  Channels keep
their names, colours and wavelengths; z and t become planes; the pixel size,
objective, acquisition date and microscope come from the XML metadata, which
is kept whole as the vendor blob.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from microtome.pyramid.errors import SourceError
from microtome.pyramid.optional import missing_extra_message

from ..base import ChannelInfo, SourceInfo, SourceReader, clean_json, short_message

_GREY = {"Gray8": "uint8", "Gray16": "uint16", "Gray32Float": "float32"}
_COLOUR = {"Bgr24": "uint8", "Bgr48": "uint16", "Bgra32": "uint8"}


def is_czi(head: bytes) -> bool:
    return head[:16].startswith(b"ZISRAWFILE")


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if isinstance(doc, list):
            doc = doc[0] if doc else None
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [] if v is None else [v]


def _float(v: Any) -> float | None:
    try:
        f = float(v["#text"] if isinstance(v, dict) else v)
    except (TypeError, ValueError, KeyError):
        return None
    return f if np.isfinite(f) and f > 0 else None


class CziReader(SourceReader):
    def __init__(self, path: Path) -> None:
        try:
            from pylibCZIrw import czi as pyczi
        except ImportError as e:
            raise SourceError(missing_extra_message("czi")) from e

        self._lock = threading.Lock()
        try:
            self._cm = pyczi.open_czi(str(path))
            self._czi = self._cm.__enter__()
            self._box = dict(self._czi.total_bounding_box)
            self._scenes = dict(self._czi.scenes_bounding_rectangle)
            self._types = dict(self._czi.pixel_types)
            self._meta = self._czi.metadata
        except SourceError:
            raise
        except Exception as e:
            raise SourceError(f"damaged or unreadable CZI: {short_message(e)}") from e
        types = set(self._types.values())
        if len(types) != 1:
            raise SourceError(f"CZI channels of different pixel types ({sorted(types)}) "
                              "are not supported")
        self._ptype = types.pop()
        if self._ptype not in _GREY and self._ptype not in _COLOUR:
            raise SourceError(f"unsupported CZI pixel type {self._ptype}")
        self.scene = 0
        self.configure()

    @property
    def scene_ids(self) -> list[int]:
        return sorted(self._scenes)

    def configure(self, **choices: Any) -> None:
        scene = choices.get("scene")
        names = sorted(self._scenes) or [None]
        if scene is not None and scene not in self._scenes:
            raise SourceError(f"CZI has no scene {scene} (scenes: "
                              f"{', '.join(str(s) for s in names)})")
        self.scene = scene if scene is not None else names[0]
        self._set_info(len(names))

    def _rect(self) -> tuple[int, int, int, int]:
        r = self._scenes.get(self.scene) if self.scene is not None else None
        r = r or self._czi.total_bounding_rectangle
        return int(r.x), int(r.y), int(r.w), int(r.h)

    def _set_info(self, nscenes: int) -> None:
        _x, _y, w, h = self._rect()
        size_c = self._box.get("C", (0, 1))[1] - self._box.get("C", (0, 1))[0]
        size_z = self._box.get("Z", (0, 1))[1] - self._box.get("Z", (0, 1))[0]
        size_t = self._box.get("T", (0, 1))[1] - self._box.get("T", (0, 1))[0]
        colour = self._ptype in _COLOUR
        rgb = colour and self._ptype != "Bgr48" and size_c == 1
        dtype = _COLOUR[self._ptype] if colour else _GREY[self._ptype]
        channels = [] if rgb else self._channels(size_c, colour)
        md = _get(self._meta, "ImageDocument", "Metadata") or {}
        info = _get(md, "Information") or {}
        px = self._scaling(md)
        self.info = SourceInfo(
            format="czi", vendor="zeiss", width=w, height=h, dtype=dtype, rgb=rgb,
            size_t=max(1, size_t), size_c=3 if rgb else len(channels),
            size_z=max(1, size_z), levels=[(w, h)],
            pixel_size_um=(px[0], px[1]) if px else None,
            z_spacing_um=px[2] if px and len(px) > 2 else None,
            objective_power=_float(_get(info, "Instrument", "Objectives", "Objective",
                                        "NominalMagnification")),
            channels=channels, whole_slide=False,
            acquired=_text(_get(info, "Image", "AcquisitionDateAndTime")),
            scanner=_microscope(info))
        if nscenes > 1:
            self.info.notes.append(f"scene {self.scene} of {nscenes} (--scene N for another)")

    def _channels(self, size_c: int, colour: bool) -> list[ChannelInfo]:
        if colour:  # Bgr48: one colour image kept 16-bit
            return [ChannelInfo(n, c) for n, c in (("Red", "FF0000"), ("Green", "00FF00"),
                                                   ("Blue", "0000FF"))]
        found = _as_list(_get(self._meta, "ImageDocument", "Metadata", "Information", "Image",
                              "Dimensions", "Channels", "Channel"))
        display = _as_list(_get(self._meta, "ImageDocument", "Metadata", "DisplaySetting",
                                "Channels", "Channel"))
        out = []
        for i in range(size_c):
            ch = found[i] if i < len(found) and isinstance(found[i], dict) else {}
            ds = display[i] if i < len(display) and isinstance(display[i], dict) else {}
            name = ch.get("@Name") or ch.get("Fluor") or ds.get("@Name") or f"C{i}"
            color = _argb(ch.get("Color") or ds.get("Color"))
            out.append(ChannelInfo(str(name), color,
                                   excitation_nm=_float(ch.get("ExcitationWavelength")),
                                   emission_nm=_float(ch.get("EmissionWavelength"))))
        return out

    @staticmethod
    def _scaling(md: Any) -> tuple[float, ...] | None:
        items = {d.get("@Id"): _float(d.get("Value"))
                 for d in _as_list(_get(md, "Scaling", "Items", "Distance"))
                 if isinstance(d, dict)}
        sx = items.get("X")
        if not sx:
            return None
        x = sx * 1e6  # metres -> µm
        y = (items.get("Y") or sx) * 1e6
        z = items.get("Z")
        return (x, y, z * 1e6) if z else (x, y)

    def read_region(self, x: int, y: int, w: int, h: int, t: int = 0, z: int = 0,
                    channels: list[int] | None = None) -> np.ndarray:
        x0, y0, _w, _h = self._rect()
        roi = (x0 + x, y0 + y, w, h)
        plane = {"T": t + self._box.get("T", (0, 1))[0], "Z": z + self._box.get("Z", (0, 1))[0]}
        try:
            if self.info.rgb or self._ptype == "Bgr48":
                with self._lock:
                    block = self._czi.read(roi=roi, plane={**plane, "C": 0}, scene=self.scene)
                block = block[..., 2::-1]  # BGR(A) -> RGB
                if channels is not None and not self.info.rgb:
                    block = block[..., channels]
                return np.ascontiguousarray(block)
            wanted = channels if channels is not None else list(range(self.info.size_c))
            c0 = self._box.get("C", (0, 1))[0]
            planes = []
            for c in wanted:
                with self._lock:
                    planes.append(self._czi.read(roi=roi, plane={**plane, "C": c + c0},
                                                 scene=self.scene)[..., 0])
        except Exception as e:
            raise SourceError(f"damaged CZI data near ({x},{y}): {short_message(e)}") from e
        return np.ascontiguousarray(np.stack(planes, axis=-1))

    def original_metadata(self) -> dict[str, Any]:
        return {"xml": str(self._czi.raw_metadata)[:4_000_000],
                "metadata": clean_json(self._meta)}

    def close(self) -> None:
        cm = getattr(self, "_cm", None)
        if cm is not None:
            self._cm = None
            cm.__exit__(None, None, None)


def _text(v: Any) -> str | None:
    if isinstance(v, dict):
        v = v.get("#text")
    return str(v) if v not in (None, "") else None


def _argb(v: Any) -> str | None:
    """CZI colours are '#AARRGGBB' (or '#RRGGBB')."""
    m = re.fullmatch(r"#?(?:[0-9A-Fa-f]{2})?([0-9A-Fa-f]{6})", str(v or ""))
    return m.group(1).upper() if m else None


def _microscope(info: Any) -> str | None:
    m = _get(info, "Instrument", "Microscopes", "Microscope")
    if isinstance(m, dict):
        name = m.get("@Name") or m.get("System")
        if name:
            return str(name)
    return None
