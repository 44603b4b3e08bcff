"""Acquisition date and scanner from each vendor's own metadata, normalised:
dates as ISO 8601 when they can be parsed (else as given), scanners as
"make model [serial]".  Pure functions over the already-read metadata."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

_FORMATS = ("%m/%d/%y %H:%M:%S", "%m/%d/%Y %H:%M:%S", "%Y:%m:%d %H:%M:%S",
            "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S", "%Y%m%d", "%m/%d/%y",
            "%Y-%m-%d")


def iso_date(raw: Any) -> str | None:
    """A vendor date string as ISO 8601, or the string itself if unknown."""
    if raw is None:
        return None
    text = str(raw).strip()
    if not text:
        return None
    for fmt in _FORMATS:
        try:
            return datetime.strptime(text.split(".")[0], fmt).isoformat()
        except ValueError:
            continue
    return text[:64]


def _join(*parts: Any) -> str | None:
    words = [str(p).strip() for p in parts if p is not None and str(p).strip()]
    return " ".join(words)[:200] if words else None


def openslide_meta(props: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(acquired, scanner) from OpenSlide properties, whatever the vendor."""
    g = props.get
    acquired = None
    if g("aperio.Date"):
        acquired = iso_date(f"{g('aperio.Date')} {g('aperio.Time') or '00:00:00'}")
    acquired = (acquired or iso_date(g("philips.DICOM_ACQUISITION_DATETIME"))
                or iso_date(g("leica.creation-date")) or iso_date(g("tiff.DateTime")))
    scanner = None
    if g("aperio.ScanScope ID"):
        scanner = _join("Aperio ScanScope", g("aperio.ScanScope ID"))
    scanner = (scanner or _join(g("hamamatsu.Product"))
               or _join(g("leica.device-vendor"), g("leica.device-model"))
               or _join(g("philips.DICOM_MANUFACTURER"),
                        g("philips.DICOM_MANUFACTURERS_MODEL_NAME"))
               or _join(g("ventana.ScannerModel"))
               or _join(g("mirax.GENERAL.SLIDE_TYPE"))
               or _join(g("tiff.Make"), g("tiff.Model")))
    return acquired, scanner


def tiff_meta(tags: Mapping[int, Any]) -> tuple[str | None, str | None]:
    """(acquired, scanner) from TIFF tags DateTime (306), Make (271), Model (272)."""
    return iso_date(tags.get(306)), _join(tags.get(271), tags.get(272))


def exif_meta(exif: Mapping[int, Any]) -> tuple[str | None, str | None]:
    """EXIF: DateTimeOriginal (36867) else DateTime (306); Make/Model."""
    return iso_date(exif.get(36867) or exif.get(306)), _join(exif.get(271), exif.get(272))


def ome_meta(doc: Mapping[str, Any]) -> tuple[str | None, str | None, list[tuple[Any, Any]]]:
    """(acquired, microscope, [(excitation, emission) per channel]) from parsed OME-XML."""
    ome = doc.get("OME", {}) if isinstance(doc, Mapping) else {}
    images = ome.get("Image")
    image = images[0] if isinstance(images, list) else images or {}
    instruments = ome.get("Instrument")
    inst = instruments[0] if isinstance(instruments, list) else instruments or {}
    mic = inst.get("Microscope", {}) if isinstance(inst, Mapping) else {}
    scanner = _join(mic.get("Manufacturer"), mic.get("Model"), mic.get("SerialNumber")) \
        if isinstance(mic, Mapping) else None
    pixels = image.get("Pixels", {}) if isinstance(image, Mapping) else {}
    chans = pixels.get("Channel", []) if isinstance(pixels, Mapping) else []
    chans = chans if isinstance(chans, list) else [chans]
    waves = [(c.get("ExcitationWavelength"), c.get("EmissionWavelength"))
             for c in chans if isinstance(c, Mapping)]
    acquired = iso_date(image.get("AcquisitionDate")) if isinstance(image, Mapping) else None
    return acquired, scanner, waves


def dicom_meta(ds: Any) -> tuple[str | None, str | None]:
    """(acquired, scanner) from a pydicom dataset of a WSI instance."""
    when = ds.get("AcquisitionDateTime") or (
        f"{ds.get('ContentDate', '')}{ds.get('ContentTime', '')}" or None)
    if when:
        when = re.sub(r"[^0-9.]", "", str(when))
    return iso_date(when), _join(ds.get("Manufacturer"), ds.get("ManufacturerModelName"),
                                 ds.get("DeviceSerialNumber"))
