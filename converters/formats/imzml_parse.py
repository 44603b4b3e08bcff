"""imzML (mass spectrometry imaging) metadata: the XML half of an .imzML +
.ibd pair, parsed with our own streaming reader (pyimzML is the independent
reference in the tests).

Only what the conversion needs is kept: the mode (continuous: one m/z axis
for every pixel; processed: one per pixel), the UUID the .ibd must start
with, the pixel grid, the pixel size, and for each spectrum its position and
where its m/z and intensity arrays are in the .ibd.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from microtome.pyramid.errors import SourceError

#: Binary data types (PSI-MS / imagingMS accessions).
_DTYPES = {"MS:1000521": "<f4", "MS:1000523": "<f8", "IMS:1100000": "<i4",
           "IMS:1100001": "<i8", "MS:1000519": "<i4", "MS:1000522": "<i8",
           "IMS:1000141": "<i4", "IMS:1000142": "<i8"}
_MZ, _INTENSITY = "MS:1000514", "MS:1000515"
_CONTINUOUS, _PROCESSED = "IMS:1000030", "IMS:1000031"
_UUID, _POS_X, _POS_Y = "IMS:1000080", "IMS:1000050", "IMS:1000051"
_OFFSET, _LENGTH, _ENCODED = "IMS:1000102", "IMS:1000103", "IMS:1000104"
_PIXEL_X, _PIXEL_Y = "IMS:1000046", "IMS:1000047"
_NO_COMPRESSION = "MS:1000576"
_COMPRESSIONS = {"MS:1000574": "zlib", "MS:1002312": "MS-Numpress"}
#: Largest pixel grid accepted (positions are 1-based integers from the file).
MAX_PIXELS = 1 << 26


@dataclass(frozen=True)
class ArrayRef:
    offset: int
    length: int
    dtype: str


@dataclass
class Spectrum:
    x: int  # 0-based column
    y: int  # 0-based row
    mz: ArrayRef
    intensity: ArrayRef


@dataclass
class ImzmlDoc:
    mode: str  # "continuous" | "processed"
    uuid: str  # 32 lowercase hex digits
    width: int
    height: int
    pixel_size_um: tuple[float, float] | None
    spectra: list[Spectrum]
    params: dict[str, Any] = field(default_factory=dict)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _params(elem: ET.Element, groups: dict[str, dict[str, str]]) -> dict[str, str]:
    """cvParams of an element, with its referenced param groups merged in."""
    out: dict[str, str] = {}
    for child in elem:
        name = _local(child.tag)
        if name == "referenceableParamGroupRef":
            out.update(groups.get(child.get("ref", ""), {}))
        elif name == "cvParam":
            out[child.get("accession", "")] = child.get("value", "")
    return out


def _int(value: str | None, what: str) -> int:
    try:
        return int(float(value or ""))
    except ValueError:
        raise SourceError(f"imzML: {what} is not a number") from None


def _array(params: dict[str, str]) -> tuple[str, ArrayRef]:
    kind = "mz" if _MZ in params else "intensity" if _INTENSITY in params else ""
    for acc, name in _COMPRESSIONS.items():
        if acc in params:
            raise SourceError(f"imzML: {name}-compressed spectra are not supported")
    dtype = next((d for acc, d in _DTYPES.items() if acc in params), None)
    if dtype is None:
        raise SourceError("imzML: a binary array has no known data type")
    if _OFFSET not in params or _LENGTH not in params:
        raise SourceError("imzML: a spectrum does not say where its data is in the .ibd")
    ref = ArrayRef(_int(params[_OFFSET], "external offset"),
                   _int(params[_LENGTH], "external array length"), dtype)
    if ref.offset < 0 or ref.length < 0:
        raise SourceError("imzML: negative offset or length")
    return kind, ref


def normalise_uuid(value: str) -> str:
    return re.sub(r"[^0-9a-f]", "", value.lower())


def parse_imzml(path: Path) -> ImzmlDoc:
    """The metadata of an .imzML file (streamed: spectra lists can be large)."""
    groups: dict[str, dict[str, str]] = {}
    file_params: dict[str, str] = {}
    settings: dict[str, str] = {}
    spectra: list[Spectrum] = []
    extra: dict[str, str] = {}
    try:
        for event, elem in ET.iterparse(path, events=("start", "end")):
            name = _local(elem.tag)
            if event == "start":
                if name == "run" and elem.get("startTimeStamp"):
                    extra["acquired"] = str(elem.get("startTimeStamp"))
                continue
            if name == "instrumentConfiguration" and "instrument" not in extra:
                # the first cvParam without a value names the instrument model
                model = next((c.get("name", "") for c in elem if _local(c.tag) == "cvParam"
                              and not c.get("value")), "")
                if model:
                    extra["instrument"] = model
            if name == "referenceableParamGroup":
                groups[elem.get("id", "")] = _params(elem, groups)
            elif name == "fileContent":
                file_params = _params(elem, groups)
            elif name == "scanSettings":
                settings.update(_params(elem, groups))
            elif name == "spectrum":
                spectra.append(_spectrum(elem, groups))
                elem.clear()
    except ET.ParseError as e:
        raise SourceError(f"imzML: not well-formed XML ({e})") from None
    doc = _doc(file_params, settings, spectra)
    doc.params.update(extra)
    return doc


def _spectrum(elem: ET.Element, groups: dict[str, dict[str, str]]) -> Spectrum:
    pos: dict[str, str] = {}
    arrays: dict[str, ArrayRef] = {}
    for scan in elem.iter():
        if _local(scan.tag) == "scan":
            pos = _params(scan, groups)
        elif _local(scan.tag) == "binaryDataArray":
            kind, ref = _array(_params(scan, groups))
            if kind:
                arrays[kind] = ref
    if _POS_X not in pos or _POS_Y not in pos:
        raise SourceError("imzML: a spectrum has no pixel position")
    if "mz" not in arrays or "intensity" not in arrays:
        raise SourceError("imzML: a spectrum lacks its m/z or intensity array")
    return Spectrum(_int(pos[_POS_X], "position x") - 1, _int(pos[_POS_Y], "position y") - 1,
                    arrays["mz"], arrays["intensity"])


def _doc(file_params: dict[str, str], settings: dict[str, str],
         spectra: list[Spectrum]) -> ImzmlDoc:
    if _CONTINUOUS in file_params:
        mode = "continuous"
    elif _PROCESSED in file_params:
        mode = "processed"
    else:
        raise SourceError("imzML: neither continuous nor processed mode is declared")
    uuid = normalise_uuid(file_params.get(_UUID, ""))
    if len(uuid) != 32:
        raise SourceError("imzML: the file has no valid UUID (IMS:1000080)")
    if not spectra:
        raise SourceError("imzML: the file lists no spectra")
    xs = [s.x for s in spectra]
    ys = [s.y for s in spectra]
    # Some instruments number pixels from their stage origin: the image
    # starts at the first pixel measured (the offset is kept in the metadata).
    x0, y0 = min(xs), min(ys)
    if x0 < -1 or y0 < -1:
        raise SourceError("imzML: negative pixel positions")
    if x0 or y0:
        for s in spectra:
            s.x -= x0
            s.y -= y0
    width, height = max(xs) - x0 + 1, max(ys) - y0 + 1
    if width * height > MAX_PIXELS:
        raise SourceError(f"imzML: pixel grid {width}x{height} is implausibly large")
    px = None
    try:
        sx = float(settings.get(_PIXEL_X) or "nan")
        sy = float(settings.get(_PIXEL_Y) or settings.get(_PIXEL_X) or "nan")
        if np.isfinite(sx) and np.isfinite(sy) and sx > 0 and sy > 0:
            px = (sx, sy)
    except ValueError:
        px = None
    return ImzmlDoc(mode, uuid, width, height, px, spectra,
                    params={"file": file_params, "scan_settings": settings,
                            "first_pixel_position": [x0 + 1, y0 + 1]})


def read_array(fh: Any, ref: ArrayRef, ibd_size: int) -> np.ndarray:
    """One array from the open .ibd file."""
    itemsize = np.dtype(ref.dtype).itemsize
    end = ref.offset + ref.length * itemsize
    if end > ibd_size:
        raise SourceError("the .ibd file is shorter than the imzML says (truncated?)")
    fh.seek(ref.offset)
    data = fh.read(ref.length * itemsize)
    return np.frombuffer(data, dtype=ref.dtype)
