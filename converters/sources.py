"""Format registry: detection by content, in priority order, and `open_source`.

Each `Format` has a cheap ``probe`` looking at magic bytes / TIFF tags /
vendor descriptions (never the file extension) and an ``open`` returning a
`SourceReader`.  The first format whose probe accepts wins, so the more
specific formats (OME-TIFF, vendor TIFFs) come before generic TIFF.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from microtome.pyramid.errors import SourceError, UnsupportedFormat

from .base import SourceReader, check_dimensions, short_message

Src = Path | Sequence[Path]

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


@dataclass(frozen=True)
class Probe:
    """What the probes look at: the path(s) and the first bytes of a file."""

    paths: tuple[Path, ...]
    head: bytes

    @property
    def path(self) -> Path:
        return self.paths[0]

    @property
    def single_file(self) -> bool:
        return len(self.paths) == 1 and self.paths[0].is_file()

    @property
    def is_tiff(self) -> bool:
        return self.single_file and self.head[:4] in _TIFF_MAGIC


@dataclass(frozen=True)
class Format:
    name: str
    probe: Callable[[Probe], str | None]  # returns the specific format name or None
    open: Callable[[Probe, str], SourceReader]
    description: str


# -- probes -----------------------------------------------------------------
def _probe_dicom(p: Probe) -> str | None:
    from .formats.dicom_reader import dicom_files, is_dicom_file

    if all(q.is_file() for q in p.paths):
        return "dicom" if all(is_dicom_file(q) for q in p.paths) else None
    if len(p.paths) == 1 and p.path.is_dir():
        if dicom_files([p.path]):
            return "dicom"
    return None


def _probe_imzml(p: Probe) -> str | None:
    from .formats.imzml_reader import is_imzml, xml_half

    if p.single_file:
        return "imzml" if is_imzml(p.head) else None
    if len(p.paths) != 2 or not all(q.is_file() for q in p.paths):
        return None
    suffixes = sorted(q.suffix.lower() for q in p.paths)
    if suffixes == [".ibd", ".imzml"]:
        return "imzml"
    # Uploaded halves are stored without their names: told apart by content.
    return "imzml" if xml_half(p.paths) is not None else None


def _probe_zip(p: Probe) -> str | None:
    return "zip" if p.single_file and p.head[:4] == b"PK\x03\x04" else None


def _tiff_flags(p: Probe) -> set[str]:
    import tifffile

    try:
        with tifffile.TiffFile(str(p.path)) as tif:
            flags = set()
            if tif.is_ome:
                flags.add("ome")
            if tif.is_qpi:
                flags.add("qpi")
            return flags
    except Exception:
        return set()


def _probe_ome(p: Probe) -> str | None:
    return "ome-tiff" if p.is_tiff and "ome" in _tiff_flags(p) else None


def _probe_qptiff(p: Probe) -> str | None:
    return "qptiff" if p.is_tiff and "qpi" in _tiff_flags(p) else None


def _probe_openslide(p: Probe) -> str | None:
    from .formats.openslide_reader import VENDOR_FORMATS, openslide_vendor

    if not p.single_file:
        return None
    vendor = openslide_vendor(p.path)
    if vendor is None or vendor in ("generic-tiff", "dicom"):
        return None
    return VENDOR_FORMATS.get(vendor, vendor)


def _probe_tiff(p: Probe) -> str | None:
    return "tiff" if p.is_tiff else None


def _magic(name: str, test: Callable[[bytes], bool]) -> Callable[[Probe], str | None]:
    def probe(p: Probe) -> str | None:
        return name if p.single_file and test(p.head) else None
    return probe


# -- openers ----------------------------------------------------------------
def _open_dicom(p: Probe, fmt: str) -> SourceReader:
    from .formats.dicom_reader import DicomReader
    return DicomReader(list(p.paths))


def _open_imzml(p: Probe, fmt: str) -> SourceReader:
    from .formats.imzml_reader import ImzmlReader
    return ImzmlReader(list(p.paths))


def _open_czi(p: Probe, fmt: str) -> SourceReader:
    from .formats.czi_reader import CziReader
    return CziReader(p.path)


def _open_zip(p: Probe, fmt: str) -> SourceReader:
    from .formats.zip_reader import ZipSource
    return ZipSource(p.path)


def _open_openslide(p: Probe, fmt: str) -> SourceReader:
    from .formats.openslide_reader import OpenSlideReader, openslide_vendor
    return OpenSlideReader(p.path, openslide_vendor(p.path) or fmt)


def _open_tiff(p: Probe, fmt: str) -> SourceReader:
    from .formats.tiff_reader import TiffReader
    return TiffReader(p.path, fmt)


def _open_pil(p: Probe, fmt: str) -> SourceReader:
    from .formats.pil_reader import PilReader

    if fmt in ("jpeg", "png", "webp"):
        from .formats import vips_picture as vp

        size = vp.header_size(p.path)
        if size is not None:
            vp.check_bomb(size[0], size[1])
            if size[2] > vp.BANDED_ABOVE_BYTES or size[0] * size[1] > vp.BANDED_ABOVE_PIXELS:
                return vp.VipsPicture(p.path, fmt)
    return PilReader(p.path, fmt)


#: Every input format, most specific first.
FORMATS: tuple[Format, ...] = (
    Format("dicom", _probe_dicom, _open_dicom, "DICOM WSI series (folder or .dcm files)"),
    Format("imzml", _probe_imzml, _open_imzml,
           "imzML mass spectrometry image (.imzML + .ibd, continuous or processed)"),
    Format("czi", _magic("czi", lambda h: h[:10] == b"ZISRAWFILE"), _open_czi,
           "Zeiss CZI (scenes, mosaics, channels, z, t)"),
    Format("zip", _probe_zip, _open_zip, "zip holding one slide (MRXS + folder, DICOM, ...)"),
    Format("ome-tiff", _probe_ome, _open_tiff, "OME-TIFF (5D, pyramidal, SubIFDs)"),
    Format("qptiff", _probe_qptiff, _open_tiff, "PerkinElmer QPTIFF"),
    Format("openslide", _probe_openslide, _open_openslide,
           "Aperio SVS, Hamamatsu NDPI/VMS, MIRAX, Leica SCN, Philips, Ventana BIF, ..."),
    Format("tiff", _probe_tiff, _open_tiff, "generic TIFF / BigTIFF, tiled or striped"),
    Format("jpeg", _magic("jpeg", lambda h: h[:3] == b"\xff\xd8\xff"), _open_pil, "JPEG"),
    Format("png", _magic("png", lambda h: h[:8] == b"\x89PNG\r\n\x1a\n"), _open_pil, "PNG"),
    Format("gif", _magic("gif", lambda h: h[:6] in (b"GIF87a", b"GIF89a")), _open_pil, "GIF"),
    Format("bmp", _magic("bmp", lambda h: h[:2] == b"BM" and len(h) >= 26), _open_pil, "BMP"),
    Format("webp", _magic("webp", lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP"),
           _open_pil, "WebP"),
    Format("jpeg2000", _magic("jpeg2000", lambda h: h[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n"
                              or h[:4] == b"\xff\x4f\xff\x51"), _open_pil, "JPEG 2000"),
)


def _as_paths(src: Src | str) -> tuple[Path, ...]:
    if isinstance(src, str | os.PathLike):
        return (Path(src),)
    paths = tuple(Path(s) for s in src)
    if not paths:
        raise SourceError("no input given")
    return paths


def _probe_for(src: Src | str) -> Probe:
    paths = _as_paths(src)
    for p in paths:
        if not p.exists():
            raise SourceError("file not found")
    head = b""
    if len(paths) == 1 and paths[0].is_file():
        try:
            with open(paths[0], "rb") as fh:
                head = fh.read(512)
        except PermissionError as e:
            raise SourceError("permission denied") from e
        except OSError as e:
            raise SourceError(f"cannot read file: {e.strerror or e}") from e
        if not head:
            raise SourceError("file is empty")
    elif len(paths) == 1 and not paths[0].is_dir():
        raise SourceError("not a regular file")
    elif len(paths) == 1 and not os.access(paths[0], os.R_OK | os.X_OK):
        raise SourceError("permission denied")
    return Probe(paths, head)


def _detect(p: Probe) -> tuple[Format, str]:
    for fmt in FORMATS:
        try:
            name = fmt.probe(p)
        except Exception:
            name = None
        if name:
            return fmt, name
    if p.single_file:
        from .formats.imzml_reader import check_ibd_alone
        try:
            check_ibd_alone(p.path)
        except SourceError as e:
            raise UnsupportedFormat(str(e)) from None
        raise UnsupportedFormat("not a recognised image format")
    if len(p.paths) == 1:
        raise UnsupportedFormat("folder holds no recognised slide (expected DICOM WSI files)")
    raise UnsupportedFormat("several inputs are only accepted as one DICOM WSI series "
                            "or one .imzML + .ibd pair")


def detect(path: Src | str) -> str:
    """The format name of a source, by content.  Raises UnsupportedFormat."""
    return _detect(_probe_for(path))[1]


def open_source(path: Src | str) -> SourceReader:
    """Open any supported source.  Raises SourceError with a one-line reason."""
    p = _probe_for(path)
    fmt, name = _detect(p)
    try:
        reader = fmt.open(p, name)
    except SourceError:
        raise
    except MemoryError as e:
        raise SourceError("image too large to open") from e
    except Exception as e:  # a reader library failing in its own way
        raise SourceError(f"cannot open {name}: {short_message(e)}") from e
    try:
        check_dimensions(reader.info)
    except SourceError:
        reader.close()
        raise
    return reader
