"""The one reader interface every input format implements.

A `SourceReader` describes an image as planes of (t, z) with ``size_c``
channels each, at level-0 resolution, and reads rectangles of it.  RGB
brightfield sources (8-bit, three interleaved samples) set ``rgb``; their
reads return (h, w, 3) uint8.  Everything else returns (h, w, n) in
``dtype`` for the requested channels.  Coordinates are level-0 pixels,
origin top-left, y down, already oriented (EXIF/TIFF orientation applied).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from microtome.pyramid.errors import SourceError

#: Largest side we accept.  Real slides are < 300k px; a header claiming more
#: than a million pixels on a side is damaged or hostile (decompression bomb).
MAX_SIDE = 1 << 20
#: Largest number of pixels in one plane (about 275k x 250k).
MAX_PLANE_PIXELS = 1 << 36
#: Largest number of planes (t * c * z).
MAX_PLANES = 100_000
#: Formats without random access are decoded whole; refuse above this.
MAX_DECODED_BYTES = 3 << 29  # 1.5 GiB


@dataclass
class ChannelInfo:
    name: str
    #: Six hex digits or None (a default colour is chosen).
    color: str | None = None
    #: Display window from the source, if it has one.
    window: tuple[float, float] | None = None
    #: Low values mean bright (TIFF MinIsWhite): stored as they are, shown
    #: inverted through the NGFF omero ``inverted`` flag.
    inverted: bool = False
    #: Fluorescence wavelengths in nm, when the source says.
    excitation_nm: float | None = None
    emission_nm: float | None = None


@dataclass
class SourceInfo:
    """What a reader found: everything `microtome info` prints."""

    format: str
    width: int
    height: int
    dtype: str
    rgb: bool
    size_t: int = 1
    size_c: int = 3
    size_z: int = 1
    vendor: str | None = None
    #: Native resolution levels as (width, height), level 0 first.
    levels: list[tuple[int, int]] = field(default_factory=list)
    pixel_size_um: tuple[float, float] | None = None
    z_spacing_um: float | None = None
    objective_power: float | None = None
    channels: list[ChannelInfo] = field(default_factory=list)
    associated: list[str] = field(default_factory=list)
    #: True when the source pixels were already lossily compressed (JPEG,
    #: lossy JPEG 2000...): storing them as JPEG costs little more.
    lossy: bool = False
    #: True for whole-slide formats (tiled, pyramidal).
    whole_slide: bool = False
    #: Native tile size (for read granularity), 0 if untiled.
    tile_size: int = 0
    #: Free-form notes (e.g. "alpha composited on white").
    notes: list[str] = field(default_factory=list)
    #: Acquisition date and time as the source gives it (ISO 8601 when it can).
    acquired: str | None = None
    #: Scanner or microscope (make, model, serial when known).
    scanner: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format, "vendor": self.vendor,
            "width": self.width, "height": self.height, "dtype": self.dtype,
            "rgb": self.rgb, "size_t": self.size_t, "size_c": self.size_c,
            "size_z": self.size_z, "levels": [list(lv) for lv in self.levels],
            "pixel_size_um": list(self.pixel_size_um) if self.pixel_size_um else None,
            "z_spacing_um": self.z_spacing_um, "objective_power": self.objective_power,
            "channels": [{"name": c.name, "color": c.color,
                          "window": list(c.window) if c.window else None,
                          "excitation_nm": c.excitation_nm, "emission_nm": c.emission_nm}
                         for c in self.channels],
            "acquired": self.acquired, "scanner": self.scanner,
            "associated": list(self.associated), "lossy": self.lossy,
            "whole_slide": self.whole_slide, "tile_size": self.tile_size,
            "notes": list(self.notes),
        }


class SourceReader(ABC):
    """An opened input image.  Reads must be thread-safe."""

    info: SourceInfo

    @abstractmethod
    def read_region(self, x: int, y: int, w: int, h: int, t: int = 0, z: int = 0,
                    channels: list[int] | None = None) -> np.ndarray:
        """Level-0 pixels of a rectangle inside the image: (h, w, n)."""

    def raw_tile(self, x: int, y: int, size: int) -> bytes | None:
        """Level-0 tile at (x, y) of side ``size`` as a standalone baseline JPEG
        whose decode is exactly what `read_region` returns, or None.  Lets
        aligned JPEG sources be copied without decode/encode loss."""
        return None

    def associated_image(self, name: str) -> np.ndarray:
        """An associated image (label, macro, thumbnail) as (h, w, 3|4) uint8."""
        raise KeyError(name)

    def original_metadata(self) -> dict[str, Any]:
        """The source's own metadata, JSON-serialisable."""
        return {}

    def configure(self, **choices: Any) -> None:  # noqa: B027 - optional hook
        """Conversion choices a format needs before ``info`` is final (imzML:
        which m/z become channels).  Unknown choices are ignored."""

    def write_beside(self, root: Path) -> None:  # noqa: B027 - optional hook
        """Write data kept beside the pyramid into the image folder ``root``
        (imzML: the spectra)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self) -> SourceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_dimensions(info: SourceInfo) -> None:
    """Refuse absurd or hostile dimensions before anything is allocated."""
    w, h = info.width, info.height
    if w < 1 or h < 1:
        raise SourceError(f"image has no pixels ({w}x{h})")
    if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PLANE_PIXELS:
        raise SourceError(f"image dimensions {w}x{h} are implausibly large "
                          "(damaged header or decompression bomb)")
    planes = info.size_t * info.size_c * info.size_z
    if min(info.size_t, info.size_c, info.size_z) < 1 or planes > MAX_PLANES:
        raise SourceError(f"implausible plane count t={info.size_t} c={info.size_c} "
                          f"z={info.size_z}")


def check_decoded_size(w: int, h: int, nbytes_per_pixel: int) -> None:
    """For formats decoded whole: refuse what would not fit in memory."""
    if w > MAX_SIDE or h > MAX_SIDE:
        raise SourceError(f"image dimensions {w}x{h} are implausibly large "
                          "(damaged header or decompression bomb)")
    if w * h * nbytes_per_pixel > MAX_DECODED_BYTES:
        raise SourceError(f"image {w}x{h} is too large to decode in memory; "
                          "convert it to a tiled TIFF first")


def clean_json(value: Any, depth: int = 0) -> Any:
    """Make metadata JSON-serialisable (bytes, numpy scalars, enums, NaN...)."""
    if depth > 20:
        return str(value)
    if isinstance(value, dict):
        return {str(k): clean_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v, depth + 1) for v in value[:10000]]
    if isinstance(value, bytes):
        return value[:256].hex() if len(value) > 0 else ""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, int | str | bool) or value is None:
        return value if not isinstance(value, str) else value[:100_000]
    if isinstance(value, np.ndarray):
        return clean_json(value.ravel()[:10000].tolist(), depth + 1)
    return str(value)


#: Messages from reader libraries that show their internals (``self.x=0 < 1``,
#: assertion text, attribute paths) say nothing to a user.
_INTERNAL = re.compile(r"\bself\.|\b\w+=\S+\s*[<>!=]=?|\b[a-z_]+\.[a-z_]+\(|Traceback|"
                       r"object has no attribute|NoneType")


def short_message(e: BaseException, fallback: str = "damaged or unusual file structure") -> str:
    """A library exception as one short line a user can read."""
    text = str(e).strip()
    msg = text.splitlines()[0][:200] if text else type(e).__name__
    return fallback if _INTERNAL.search(msg) else msg
