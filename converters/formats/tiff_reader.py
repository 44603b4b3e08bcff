"""TIFF through tifffile: OME-TIFF (5D, pyramidal with SubIFDs), PerkinElmer
QPTIFF, and every generic TIFF (tiled or striped, BigTIFF, 1-64 bit, float).

Pixels are read lazily through tifffile's zarr store, so a region read
decodes only the tiles/strips it touches.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from microtome.pyramid.errors import SourceError

from ..base import ChannelInfo, SourceInfo, SourceReader, clean_json, short_message
from . import orientation as orient

_UNIT_UM = {"m": 1e6, "mm": 1e3, "µm": 1.0, "um": 1.0, "nm": 1e-3, "cm": 1e4, "pm": 1e-6,
            "Å": 1e-4, "in": 25400.0, "inch": 25400.0}
_LOSSY = {"JPEG", "OJPEG", "JPEG2000", "APERIO_JP2000_YCBC", "APERIO_JP2000_RGB", "WEBP",
          "JPEGXL", "JPEGXR", "JPEG_2000_LOSSY", "JPEGXL_DNG"}


def _um(value: Any, unit: Any) -> float | None:
    try:
        v = float(value) * _UNIT_UM.get(str(unit or "µm"), 1.0)
    except (TypeError, ValueError):
        return None
    return v if v > 0 and np.isfinite(v) else None


def _ome_color(value: Any) -> str | None:
    try:
        rgba = int(value) & 0xFFFFFFFF
    except (TypeError, ValueError):
        return None
    return f"{(rgba >> 24) & 255:02X}{(rgba >> 16) & 255:02X}{(rgba >> 8) & 255:02X}"


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


class TiffReader(SourceReader):
    def __init__(self, path: Path, fmt: str = "tiff") -> None:
        import tifffile

        self._path = path
        self._fast: Any = None
        try:
            self._tif = tifffile.TiffFile(str(path))
            if not self._tif.pages or not self._tif.series:
                self._tif.close()
                raise ValueError("no image in the file (truncated or damaged?)")
            series = self._tif.series[0]
            page = series.pages[0] if series.pages else self._tif.pages[0]
        except Exception as e:
            raise SourceError(f"not a readable TIFF: {_short(e)}") from e
        try:
            self._setup(fmt, series, page)
        except SourceError:
            self._tif.close()
            raise
        except Exception as e:
            self._tif.close()
            raise SourceError(f"unsupported TIFF layout: {_short(e)}") from e

    # -- discovery ----------------------------------------------------------
    def _setup(self, fmt: str, series: Any, page: Any) -> None:
        import tifffile
        import zarr

        if page.tags.valueof(278) == 0 and not page.is_tiled:
            raise SourceError("damaged TIFF: RowsPerStrip is 0 (a strip must hold at least "
                              "one row)")
        comp = page.compression
        # Encodings tifffile cannot decode (old-style JPEG, subsampled YCbCr
        # without JPEG, LogLuv...) go through libtiff's RGBA interface.
        self._rgba: Any = _fallback(self._path, series, page)
        if self._rgba is None:
            if not isinstance(comp, tifffile.COMPRESSION):
                raise SourceError(f"unsupported TIFF compression {int(comp)}")
            if comp != tifffile.COMPRESSION.NONE and not _decoder_available(comp):
                raise SourceError(f"unsupported TIFF compression {comp.name}")
            comp_name = comp.name
        else:
            comp_name = getattr(comp, "name", str(comp))
        # OME-XML may describe planes this file does not hold (one file of a
        # multi-file set, or a damaged one): tifffile would zero them silently.
        missing = sum(1 for p in series.pages if p is None)
        if missing:
            raise SourceError(f"OME-TIFF: {missing} of {len(series.pages)} planes are not in "
                              "this file (one file of a multi-file set, or damaged)")
        # A header may claim more tiles/strips than it lists (lying sizes,
        # cut-off tables): refuse up front rather than fail deep in a read.
        needed = int(np.prod(page.chunked))
        listed = min(len(page.dataoffsets), len(page.databytecounts))
        if listed < needed:
            raise SourceError(f"damaged TIFF: {listed} data blocks listed where its "
                              f"size ({page.imagewidth} x {page.imagelength}) needs {needed}")
        axes = series.axes
        shape = series.shape
        dims = dict(zip(axes, shape, strict=True))
        if "Y" not in dims or "X" not in dims:
            raise SourceError(f"TIFF series has no 2D planes (axes {axes})")
        dtype = np.dtype(series.dtype)
        if dtype.kind not in "uifb" or dtype.itemsize > 8:
            raise SourceError(f"unsupported sample type {dtype}")
        self._axes = axes
        self._store = series.aszarr(level=0)
        self._arr: Any = zarr.open(self._store, mode="r")
        self._lock = threading.Lock()
        samples = dims.get("S", 1)
        photometric = getattr(page.photometric, "name", str(page.photometric))
        # Stored values that do not show as they are: palette indices (looked
        # up in the colour map) and CMYK inks.  (MinIsWhite grey levels are
        # kept as stored: tifffile writes every bool image that way.)
        self._lut: np.ndarray | None = None
        single = dims.get("C", 1) == 1
        if (photometric == "PALETTE" and samples == 1 and single and dtype.kind == "u"
                and dtype.itemsize <= 2 and page.colormap is not None):
            self._lut = _palette_lut(page.colormap, dtype)
            dtype = np.dtype(np.uint8)
        self._cmyk = (photometric == "SEPARATED" and samples == 4 and single
                      and dtype == np.uint8 and int(page.tags.valueof(332, 1)) == 1)
        # Three interleaved 8-bit colour samples: RGB brightfield.  A fourth
        # sample (alpha) is composited on white.
        self._rgb = ((dtype == np.uint8 and samples in (3, 4) and single
                      and photometric in ("RGB", "YCBCR"))
                     or self._lut is not None or self._cmyk)
        self._alpha = self._rgb and samples == 4 and not self._cmyk
        if self._rgba is not None:  # libtiff gives 8-bit RGBA whatever is stored
            self._lut, self._cmyk, self._rgb = None, False, True
            self._alpha = bool(page.extrasamples) and int(page.extrasamples[0]) in (1, 2)
            dtype = np.dtype(np.uint8)
        other = [a for a in axes if a not in "TCZYXS"]
        self._other = other
        # Unknown axes (tifffile's I, Q, ...): treated as extra planes along z
        # (or t when z exists) so no plane is dropped.
        if "Z" not in dims and other:
            self._z_axes, self._t_axes = other, [a for a in axes if a == "T"]
        else:
            self._z_axes = [a for a in axes if a == "Z"]
            self._t_axes = [a for a in axes if a == "T"] + other
        size_t = int(np.prod([dims[a] for a in self._t_axes])) if self._t_axes else 1
        size_z = int(np.prod([dims[a] for a in self._z_axes])) if self._z_axes else 1
        size_c = 3 if self._rgb else dims.get("C", 1) * samples
        self._dims = dims
        try:
            self._orientation = int(page.tags.valueof(274, 1))
        except (TypeError, ValueError):
            self._orientation = 1
        if self._orientation not in range(1, 9):
            self._orientation = 1
        sw, sh = dims["X"], dims["Y"]
        self._stored = (sw, sh)
        width, height = orient.oriented_size(self._orientation, sw, sh)
        self._out_dtype = np.dtype(np.uint8) if dtype == np.bool_ else dtype
        channels, px, zsp, vendor, fmt = self._metadata(fmt, size_c, page)
        tile = int(page.tilewidth or 0)
        self.info = SourceInfo(
            format=fmt, vendor=vendor, width=width, height=height,
            dtype=str(self._out_dtype), rgb=self._rgb, size_t=size_t, size_c=size_c,
            size_z=size_z, levels=[(lv.shape[lv.axes.index("X")], lv.shape[lv.axes.index("Y")])
                                   for lv in series.levels],
            pixel_size_um=px, z_spacing_um=zsp, channels=channels,
            lossy=comp_name in _LOSSY, whole_slide=bool(tile) and len(series.levels) > 1,
            tile_size=tile,
        )
        self._vendor_meta(page)
        bits = int(page.bitspersample)
        if bits < 8 and not self._rgb:
            # Low-bit samples are shown over their own range (0..1 for bilevel).
            for ch in channels:
                ch.window = ch.window or (0.0, float(2 ** bits - 1))
        if bits < 8 and dtype != np.bool_:
            self.info.notes.append(f"{bits}-bit samples stored as uint8 values")
        if dtype == np.bool_:
            self.info.notes.append("1-bit samples stored as uint8 0/1")
        if any(ch.inverted for ch in channels):
            self.info.notes.append("MinIsWhite: values kept, channels marked inverted")
        if self._alpha:
            self.info.notes.append("alpha composited on white")
        if self._lut is not None:
            self.info.notes.append("palette colours applied")
        if self._cmyk:
            self.info.notes.append("CMYK converted to RGB (no colour profile)")
        if self._orientation != 1:
            self.info.notes.append(f"TIFF orientation {self._orientation} applied")
        if self._rgba is not None:
            how = ("tile by tile from the IFD's JPEG tables"
                   if type(self._rgba).__name__ == "OjpegTiles" else "through libtiff")
            self.info.notes.append(f"{comp_name} / {photometric} decoded {how} (8-bit RGB)")
        self._bits = bits
        if (self._rgba is None and len(series.pages) == 1 and axes in ("YX", "YXS")
                and page.is_tiled and dtype != np.bool_ and not series.is_multifile):
            from .tiled import TiledPage
            try:
                page.decode  # noqa: B018 - build the decoder while the file is open
                self._fast = TiledPage(self._path, page)
            except Exception:
                self._fast = None

    def _vendor_meta(self, page: Any) -> None:
        """Acquisition date, scanner and wavelengths: OME-XML, else TIFF tags."""
        import tifffile

        from .vendor_meta import ome_meta, tiff_meta

        self.info.acquired, self.info.scanner = tiff_meta(
            {code: page.tags.valueof(code) for code in (306, 271, 272)})
        if not (self._tif.is_ome and self._tif.ome_metadata):
            return
        try:
            acquired, scanner, waves = ome_meta(tifffile.xml2dict(self._tif.ome_metadata))
        except Exception:
            return
        self.info.acquired = acquired or self.info.acquired
        self.info.scanner = scanner or self.info.scanner
        for ch, (ex, em) in zip(self.info.channels, waves, strict=False):
            ch.excitation_nm, ch.emission_nm = _positive(ex), _positive(em)

    def _metadata(self, fmt: str, size_c: int, page: Any
                  ) -> tuple[list[ChannelInfo], tuple[float, float] | None, float | None,
                             str | None, str]:
        tif = self._tif
        channels: list[ChannelInfo] = []
        px: tuple[float, float] | None = None
        zsp: float | None = None
        vendor: str | None = None
        if tif.is_ome and tif.ome_metadata:
            fmt, vendor = "ome-tiff", "ome"
            px, zsp, channels = _ome_meta(tif.ome_metadata, size_c)
        elif tif.is_qpi:
            fmt, vendor = "qptiff", "perkinelmer"
            for p in tif.series[0].pages[:size_c]:
                m = re.search(r"<Name>([^<]*)</Name>", getattr(p, "description", "") or "")
                channels.append(ChannelInfo(m.group(1) if m else f"C{len(channels)}"))
        if px is None:
            px = _resolution_um(page)
        photometric = getattr(page.photometric, "name", "")
        if not channels and not self._rgb and size_c == 3 and photometric == "RGB":
            # 16-bit / float colour: keep it lossless, display as red/green/blue
            channels = [ChannelInfo(n, c) for n, c in
                        (("Red", "FF0000"), ("Green", "00FF00"), ("Blue", "0000FF"))]
        if not channels and not self._rgb:
            channels = [ChannelInfo(f"C{i}") for i in range(size_c)]
        if photometric == "MINISWHITE" and not self._rgb:
            # Stored 0 is white: keep the values, mark the channels inverted so
            # viewers (ours included) show what the file means.
            for ch in channels:
                ch.inverted = True
        return channels, px, zsp, vendor, fmt

    # -- pixels -------------------------------------------------------------
    def read_region(self, x: int, y: int, w: int, h: int, t: int = 0, z: int = 0,
                    channels: list[int] | None = None) -> np.ndarray:
        sx, sy, sw, sh = orient.source_rect(self._orientation, *self._stored, x, y, w, h)
        pos = dict(zip(self._t_axes, _unravel(t, [self._dims[a] for a in self._t_axes]),
                       strict=True))
        pos.update(zip(self._z_axes, _unravel(z, [self._dims[a] for a in self._z_axes]),
                       strict=True))
        idx: list[Any] = []
        for a in self._axes:
            if a == "Y":
                idx.append(slice(sy, sy + sh))
            elif a == "X":
                idx.append(slice(sx, sx + sw))
            elif a in "CS":
                idx.append(slice(None))
            else:
                idx.append(pos[a])
        if self._rgba is not None:
            block = self._rgba.read(sx, sy, sw, sh)
            kept = ["Y", "X", "S"]
        elif self._fast is not None:
            block = self._fast.read(sx, sy, sw, sh)
            kept = ["Y", "X", "S"]
        else:
            try:
                block = np.asarray(self._arr[tuple(idx)])
            except Exception as e:
                raise SourceError(f"damaged image data near ({x},{y}): {_short(e)}") from e
            kept = [a for a in self._axes if a in "CYXS"]
        # -> (y, x, c*s)
        order = [kept.index("Y"), kept.index("X")] + [kept.index(a) for a in kept
                                                      if a in "CS"]
        block = block.transpose(order)
        block = block.reshape(block.shape[0], block.shape[1], -1)
        if block.dtype == np.bool_:
            block = block.view(np.uint8)
        if self._lut is not None:
            block = self._lut[block[..., 0]]
        elif self._cmyk:
            block = _cmyk_to_rgb(block)
        if self._rgb:
            block = _composite(block) if self._alpha else block[..., :3]
        block = orient.apply(self._orientation, block)
        if channels is not None and not self._rgb:
            block = block[..., channels]
        return np.ascontiguousarray(block.astype(self._out_dtype, copy=False))

    def raw_tile(self, x: int, y: int, size: int) -> bytes | None:
        if self._fast is None or self.info.rgb is False:
            return None
        return self._fast.raw_tile(x, y, size)  # type: ignore[no-any-return]

    def original_metadata(self) -> dict[str, Any]:
        tif = self._tif
        out: dict[str, Any] = {"axes": self._axes, "shape": list(self._arr.shape)}
        page: Any = tif.pages[0]
        tags = {}
        for tag in page.tags.values():
            if tag.code in (273, 279, 324, 325):  # offsets and byte counts
                continue
            tags[tag.name] = tag.value
        out["tags"] = clean_json(tags)
        if tif.is_ome and tif.ome_metadata:
            out["ome_xml"] = tif.ome_metadata
        return out

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        if getattr(self, "_rgba", None) is not None:
            self._rgba.close()
        try:
            self._store.close()
        except Exception:
            pass
        self._tif.close()


def _positive(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) and f > 0 else None


def _first_segment_decodes(page: Any) -> bool:
    """Can tifffile decode this page?  Tried on its first non-empty tile/strip."""
    fh = page.parent.filehandle
    for index, (offset, count) in enumerate(zip(page.dataoffsets, page.databytecounts,
                                                strict=False)):
        if count == 0:
            continue
        if count > 64 << 20:
            return True  # too big to try cheaply: let the real read tell
        try:
            with page.parent.filehandle.lock:
                fh.seek(offset)
                data = fh.read(count)
            page.decode(data, index, jpegtables=page.jpegtables)
            return True
        except Exception:
            return False
    return True


def _fallback(path: Path, series: Any, page: Any) -> Any:
    """libtiff's RGBA reader for a page tifffile cannot decode, else None.  Also
    None when libtiff cannot decode it either: the normal path then reports."""
    import tifffile

    comp = int(page.compression)
    photometric = int(page.photometric)
    subsampled = tuple(page.subsampling or (1, 1)) != (1, 1)
    try:
        decodable = comp == 1 or _decoder_available(tifffile.COMPRESSION(comp))
    except ValueError:  # a compression tifffile has never heard of
        decodable = False
    needed = (comp == 6  # old-style JPEG: libtiff is its reference reader
              or (photometric == 6 and subsampled and comp != 7)
              or not decodable or not _first_segment_decodes(page))
    if not needed:
        return None
    if len(series.pages) != 1 or page.tiledepth > 1:
        return None  # planes of a multi-page file: only the normal path reads those
    if comp == 6 and page.is_tiled:
        # libtiff's OJPEG decoder numbers tiled data by tile rows: with several
        # tiles across, every tile of a row after the first comes back as the
        # first one.  Tiles with their tables in the IFD are decoded here
        # instead, one JPEG stream per tile (formats/ojpeg.py).
        from .ojpeg import OjpegTiles, has_ifd_tables

        if has_ifd_tables(page):
            ojpeg = OjpegTiles(path, page)
            try:
                ojpeg.read(0, 0, 1, 1)
            except SourceError:
                ojpeg.close()
                raise
            return ojpeg
        if int(page.imagewidth) > int(page.tilewidth):
            # Wrong pixels would be worse than a refusal.
            raise SourceError("tiled old-style JPEG without JPEG tables in the IFD and with "
                              "several tiles across is not supported (convert it to a "
                              "modern TIFF first)")
    from .libtiff_rgba import RgbaPage

    try:
        rgba = RgbaPage(path, int(page.index))
    except SourceError:
        return None
    try:
        rgba.read(0, 0, 1, 1)
    except SourceError:
        rgba.close()
        return None
    return rgba


def _composite(rgba: np.ndarray) -> np.ndarray:
    a = rgba[..., 3:4].astype(np.uint16)
    out = (rgba[..., :3].astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _palette_lut(colormap: Any, dtype: np.dtype[Any]) -> np.ndarray:
    """(n, 3) uint8 lookup for every possible index (hostile files have short maps)."""
    cmap = np.asarray(colormap, dtype=np.uint32)
    if cmap.ndim != 2 or cmap.shape[0] != 3 or cmap.shape[1] == 0:
        raise SourceError("palette TIFF with a malformed colour map")
    # The TIFF spec stores 16-bit intensities; some writers store 8-bit ones.
    if cmap.max() > 255:
        cmap = cmap >> 8
    lut = np.zeros((2 ** (8 * dtype.itemsize), 3), np.uint8)
    n = min(cmap.shape[1], lut.shape[0])
    lut[:n] = cmap[:, :n].T
    return lut


def _cmyk_to_rgb(cmyk: np.ndarray) -> np.ndarray:
    """Naive ink model (what Pillow does): R = (255 - C) * (255 - K) / 255."""
    ink = 255 - cmyk.astype(np.uint16)
    out = (ink[..., :3] * ink[..., 3:4] + 127) // 255
    return out.astype(np.uint8)


def _decoder_available(comp: Any) -> bool:
    import tifffile

    try:
        tifffile.TIFF.DECOMPRESSORS[comp]
        return True
    except Exception:
        return False


def _resolution_um(page: Any) -> tuple[float, float] | None:
    """Pixel size from XResolution/YResolution when the unit is physical."""
    try:
        unit = page.resolutionunit.name
        if unit not in ("CENTIMETER", "INCH", "MILLIMETER", "MICROMETER"):
            return None
        xr, yr = page.get_resolution()
        per = {"CENTIMETER": 1e4, "INCH": 25400.0, "MILLIMETER": 1e3, "MICROMETER": 1.0}[unit]
        if xr <= 0 or yr <= 0:
            return None
        px, py = per / xr, per / yr
        # 72/96/300 dpi are screen/print defaults, not microscope calibrations.
        dpi = 25400.0 / px
        if round(dpi) in (72, 96, 100, 150, 200, 300, 400, 600, 1200, 2400):
            return None
        return (px, py) if 0 < px < 1e5 and 0 < py < 1e5 else None
    except Exception:
        return None


def _ome_meta(xml: str, size_c: int
              ) -> tuple[tuple[float, float] | None, float | None, list[ChannelInfo]]:
    import tifffile

    try:
        doc = tifffile.xml2dict(xml)
        image = _as_list(doc["OME"]["Image"])[0]
        pixels = image["Pixels"]
    except Exception:
        return None, None, []
    pxx = _um(pixels.get("PhysicalSizeX"), pixels.get("PhysicalSizeXUnit"))
    pxy = _um(pixels.get("PhysicalSizeY"), pixels.get("PhysicalSizeYUnit"))
    pz = _um(pixels.get("PhysicalSizeZ"), pixels.get("PhysicalSizeZUnit"))
    px = (pxx, pxy or pxx) if pxx else None
    channels = []
    for i, ch in enumerate(_as_list(pixels.get("Channel"))):
        if not isinstance(ch, dict):
            continue
        name = ch.get("Name") or ch.get("Fluor") or f"C{i}"
        channels.append(ChannelInfo(str(name), _ome_color(ch.get("Color"))))
    if len(channels) != size_c:
        channels = channels[:size_c] + [ChannelInfo(f"C{i}") for i in range(len(channels),
                                                                             size_c)]
    return px, pz, channels


def _unravel(i: int, sizes: list[int]) -> list[int]:
    if not sizes:
        return []
    return [int(v) for v in np.unravel_index(i, sizes)]


def _short(e: BaseException) -> str:
    return short_message(e)
