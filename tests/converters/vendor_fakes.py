"""Generated stand-ins for vendor formats we have no small real sample of.

Each writer follows what OpenSlide's own reader for that vendor requires (the
tags, XML documents and tile layouts it checks), with synthetic pixels.  They
test our detection, the OpenSlide reader path and conversion; they cannot
prove compatibility with every scanner's real output.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from microtome.converters.synthetic import Pattern, _tiles

PAT = Pattern()
T = 256


def _jpeg_tiles(tw: tifffile.TiffWriter, w: int, h: int, step: int, **kw: object) -> None:
    tw.write(_tiles(PAT, w, h, T, step), shape=(h, w, 3), dtype=np.uint8, tile=(T, T),
             photometric="rgb", compression="jpeg", metadata=None, **kw)  # type: ignore[arg-type]


def philips_tiff(path: Path, width: int = 2000, height: int = 1500) -> Path:
    """Philips TIFF export: Software 'Philips...', DPUfsImport XML, pixel spacing in mm."""
    reps = []
    w, h, d = width, height, 1
    levels = []
    while True:
        levels.append((w, h, d))
        reps.append(
            '<DataObject ObjectType="PixelDataRepresentation">'
            '<Attribute Name="PIIM_PIXEL_DATA_REPRESENTATION_NUMBER" Group="0x1001" '
            f'Element="0x8B02" PMSVR="IUInt16">{len(levels) - 1}</Attribute>'
            '<Attribute Name="PIIM_PIXEL_DATA_REPRESENTATION_COLUMNS" Group="0x2001" '
            f'Element="0x115E" PMSVR="IUInt32">{w}</Attribute>'
            '<Attribute Name="PIIM_PIXEL_DATA_REPRESENTATION_ROWS" Group="0x2001" '
            f'Element="0x115D" PMSVR="IUInt32">{h}</Attribute>'
            '<Attribute Name="DICOM_PIXEL_SPACING" Group="0x0028" Element="0x0030" '
            f'PMSVR="IDoubleArray">"{0.00025 * d:.6f}" "{0.00025 * d:.6f}"</Attribute>'
            '</DataObject>')
        if w <= T and h <= T:
            break
        w, h, d = (w + 1) // 2, (h + 1) // 2, d * 2
    xml = ('<?xml version="1.0" encoding="UTF-8" ?>\n<DataObject ObjectType="DPUfsImport">'
           '<Attribute Name="DICOM_MANUFACTURER" Group="0x0008" Element="0x0070" '
           'PMSVR="IString">Microtome test</Attribute>'
           '<Attribute Name="PIM_DP_SCANNED_IMAGES" Group="0x301D" Element="0x1003" '
           'PMSVR="IDataObjectArray"><Array><DataObject ObjectType="DPScannedImage">'
           '<Attribute Name="PIM_DP_IMAGE_TYPE" Group="0x301D" Element="0x1004" '
           'PMSVR="IString">WSI</Attribute>'
           '<Attribute Name="DICOM_PIXEL_SPACING" Group="0x0028" Element="0x0030" '
           'PMSVR="IDoubleArray">"0.000250" "0.000250"</Attribute>'
           '<Attribute Name="PIIM_PIXEL_DATA_REPRESENTATION_SEQUENCE" Group="0x1001" '
           'Element="0x8B01" PMSVR="IDataObjectArray"><Array>' + "".join(reps)
           + '</Array></Attribute></DataObject></Array></Attribute></DataObject>')
    with tifffile.TiffWriter(path) as tw:
        for i, (w, h, d) in enumerate(levels):
            # Philips pads every level to whole tiles
            _jpeg_tiles(tw, -(-w // T) * T, -(-h // T) * T, d,
                        description=xml if i == 0 else None,
                        software="Philips DP v1.0" if i == 0 else None,
                        subfiletype=0 if i == 0 else 1)
    return path


def leica_scn(path: Path, width: int = 2000, height: int = 1500) -> Path:
    """Leica SCN: BigTIFF whose first ImageDescription is the scn XML (sizes in nm)."""
    ns = "http://www.leica-microsystems.com/scn/2010/10/01"
    nm = 250
    dims = []
    w, h, r = width, height, 0
    while True:
        dims.append((w, h, r))
        if w <= T and h <= T:
            break
        w, h, r = (w + 1) // 2, (h + 1) // 2, r + 1
    mw, mh = 500, 375
    settings = ("<scanSettings><objectiveSettings><objective>{}</objective>"
                "</objectiveSettings><illuminationSettings><illuminationSource>brightfield"
                "</illuminationSource></illuminationSettings></scanSettings>")
    xml = (f'<?xml version="1.0" encoding="utf-8"?>\n<scn xmlns="{ns}">'
           f'<collection name="t" uuid="1" sizeX="{width * nm * 2}" sizeY="{height * nm * 2}">'
           '<image name="macro" uuid="2"><creationDate>2026-01-01T00:00:00Z</creationDate>'
           '<device model="Leica SCN400" version="1"/>'
           f'<pixels sizeX="{mw}" sizeY="{mh}"><dimension sizeX="{mw}" sizeY="{mh}" r="0" '
           f'ifd="{len(dims)}"/></pixels><view sizeX="{width * nm * 2}" '
           f'sizeY="{height * nm * 2}" offsetX="0" offsetY="0" spacingZ="0"/>'
           + settings.format(1) + '</image>'
           '<image name="main" uuid="3"><creationDate>2026-01-01T00:00:00Z</creationDate>'
           '<device model="Leica SCN400" version="1"/>'
           f'<pixels sizeX="{width}" sizeY="{height}">'
           + "".join(f'<dimension sizeX="{w}" sizeY="{h}" r="{r}" ifd="{i}"/>'
                     for i, (w, h, r) in enumerate(dims))
           + f'</pixels><view sizeX="{width * nm}" sizeY="{height * nm}" '
           f'offsetX="{width * nm // 2}" offsetY="{height * nm // 2}" spacingZ="0"/>'
           + settings.format(20) + '</image></collection></scn>')
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        for i, (w, h, r) in enumerate(dims):
            _jpeg_tiles(tw, w, h, 2**r, description=xml if i == 0 else None)
        tw.write(np.full((mh, mw, 3), 200, np.uint8), tile=(T, T), photometric="rgb",
                 compression="jpeg", metadata=None)
    return path


def ventana_bif(path: Path, width: int = 2000, height: int = 1500) -> Path:
    """Ventana BIF: iScan XMP, 'level=N mag=M' directories, EncodeInfo tile joints
    (serpentine numbering from the bottom row, zero overlap)."""
    cols, rows = -(-width // T), -(-height // T)
    joints = "".join(
        f'<TileJointInfo FlagJoined="1" Confidence="100" Direction="RIGHT" Tile1="{c + 1}" '
        f'Tile2="{c + 2}" OverlapX="0" OverlapY="0"/>' for c in range(cols - 1))
    joints += ('<TileJointInfo FlagJoined="1" Confidence="100" Direction="UP" Tile1="1" '
               f'Tile2="{2 * cols}" OverlapX="0" OverlapY="0"/>')
    enc = ('<?xml version="1.0" encoding="UTF-8"?><EncodeInfo Ver="2"><SlideStitchInfo>'
           f'<ImageInfo AOIScanned="1" AOIIndex="0" Pos-X="0" Pos-Y="0" Width="{T}" '
           f'Height="{T}" NumRows="{rows}" NumCols="{cols}">{joints}</ImageInfo>'
           '</SlideStitchInfo><AoiOrigin><AOI0 OriginX="0" OriginY="0"/></AoiOrigin>'
           '</EncodeInfo>')
    iscan = ('<?xml version="1.0" encoding="UTF-8"?><iScan Z-layers="1" Magnification="40" '
             'ScanRes="0.25" UnitNumber="MT1"/>')
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(np.full((300, 200, 3), 220, np.uint8), description="Label Image",
                 photometric="rgb", metadata=None,
                 extratags=[(700, 1, len(iscan), iscan.encode(), True)])
        w, h, d, lv = cols * T, rows * T, 1, 0
        while True:
            extra = [(700, 1, len(enc), enc.encode(), True)] if lv == 0 else []
            _jpeg_tiles(tw, w, h, d, description=f"level={lv} mag={40 / d:g} quality=90",
                        extratags=extra)
            if w <= T and h <= T:
                break
            w, h, d, lv = -(-w // 2), -(-h // 2), d * 2, lv + 1
    return path


def _jpeg_with_restarts(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    # NDPI levels are one JPEG each; restart markers make them randomly accessible.
    Image.fromarray(img).save(buf, format="JPEG", quality=90, restart_marker_blocks=8,
                              subsampling=0)
    return buf.getvalue()


def hamamatsu_ndpi(path: Path, width: int = 2048, height: int = 1536) -> Path:
    """Hamamatsu NDPI: one restart-marked JPEG strip per level, private tags 65420-65424
    (format flag, source lens, x/y offsets, focal plane); source lens -1 = macro."""
    def tags(lens: float) -> list[tuple[int, int, int, object, bool]]:
        return [(65420, 4, 1, 1, True), (65421, 11, 1, lens, True), (65422, 4, 1, 0, True),
                (65423, 4, 1, 0, True), (65424, 9, 1, 0, True)]

    with tifffile.TiffWriter(path) as tw:
        d = 1
        for lens in (20.0, 5.0, 1.25):
            w, h = width // d, height // d
            data = _jpeg_with_restarts(np.ascontiguousarray(PAT.block(0, 0, w, h, d)))
            tw.write(iter([data]), shape=(h, w, 3), dtype=np.uint8, photometric="ycbcr",
                     compression="jpeg", rowsperstrip=h, metadata=None, subsampling=(1, 1),
                     extratags=tags(lens), software="NDP.scan 3.2.0",
                     resolution=(40000 / d, 40000 / d), resolutionunit="CENTIMETER")
            d *= 4
        macro = _jpeg_with_restarts(np.ascontiguousarray(PAT.block(0, 0, 512, 384, 4)))
        tw.write(iter([macro]), shape=(384, 512, 3), dtype=np.uint8, photometric="ycbcr",
                 compression="jpeg", rowsperstrip=384, metadata=None, subsampling=(1, 1),
                 extratags=tags(-1.0))
    return path


def mirax_skeleton(folder: Path, name: str = "slide") -> Path:
    """An MRXS index file and its data folder with a Slidedat.ini, but no tile data:
    enough for OpenSlide to *detect* MIRAX, not to read pixels."""
    mrxs = folder / f"{name}.mrxs"
    mrxs.write_text("[GENERAL]\r\nSLIDE_VERSION = 01.02\r\n")
    data = folder / name
    data.mkdir()
    (data / "Slidedat.ini").write_text(
        "[GENERAL]\r\nSLIDE_VERSION = 01.02\r\nIMAGENUMBER_X = 1\r\nIMAGENUMBER_Y = 1\r\n"
        "[HIERARCHICAL]\r\nHIER_COUNT = 0\r\nNONHIER_COUNT = 0\r\nINDEXFILE = Index.dat\r\n"
        "[DATAFILE]\r\nFILE_COUNT = 0\r\n")
    return mrxs
