"""Hand-built TIFFs in the older encodings no modern writer produces, laid out
byte by byte after the TIFF 6.0 specification (sections 21-22): YCbCr with
chroma subsampling under any compression, and old-style JPEG (compression 6)
whose tables live in the IFD and whose tiles hold only entropy-coded data.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import imagecodecs
import numpy as np

SHORT, LONG, RATIONAL, ASCII, UNDEFINED = 3, 4, 5, 2, 7
_SIZE = {SHORT: 2, LONG: 4, RATIONAL: 8, ASCII: 1, UNDEFINED: 1}
_FMT = {SHORT: "H", LONG: "I", RATIONAL: "I", ASCII: "B", UNDEFINED: "B"}

Entry = tuple[int, list[int] | bytes]


class TiffBuilder:
    """A little-endian classic TIFF with one IFD: blobs first, the IFD last."""

    def __init__(self) -> None:
        self.data = bytearray(b"II*\x00\x00\x00\x00\x00")

    def add(self, blob: bytes) -> int:
        if len(self.data) % 2:
            self.data += b"\x00"
        offset = len(self.data)
        self.data += blob
        return offset

    def finish(self, entries: dict[int, Entry]) -> bytes:
        if len(self.data) % 2:
            self.data += b"\x00"
        ifd = len(self.data)
        struct.pack_into("<I", self.data, 4, ifd)
        n = len(entries)
        extra_at = ifd + 2 + 12 * n + 4
        body = bytearray(struct.pack("<H", n))
        extra = bytearray()
        for tag in sorted(entries):
            typ, values = entries[tag]
            raw = (bytes(values) if isinstance(values, bytes)
                   else struct.pack("<" + _FMT[typ] * len(values), *values))
            count = len(raw) // _SIZE[typ]
            if len(raw) <= 4:
                field = raw.ljust(4, b"\x00")
            else:
                field = struct.pack("<I", extra_at + len(extra))
                extra += raw + (b"\x00" if len(raw) % 2 else b"")
            body += struct.pack("<HHI", tag, typ, count) + field
        body += b"\x00\x00\x00\x00"
        return bytes(self.data + body + extra)


def _ycbcr(rgb: np.ndarray) -> np.ndarray:
    """Full-range ITU-R BT.601 (JPEG) YCbCr, as libtiff undoes it."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    return np.clip(np.round(np.stack([y, cb, cr], -1)), 0, 255).astype(np.uint8)


def blocky_rgb(h: int, w: int, bh: int, bw: int, seed: int = 0) -> np.ndarray:
    """RGB constant over bh x bw blocks: chroma subsampling loses nothing on it."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(-(-h // bh), -(-w // bw), 3), dtype=np.uint8)
    return np.repeat(np.repeat(small, bh, 0), bw, 1)[:h, :w].copy()


def _pack_subsampled(ycc: np.ndarray, sh: int, sv: int) -> bytes:
    """TIFF data units: per block of sv rows x sh columns, its Y values then Cb, Cr."""
    h, w = ycc.shape[:2]
    ph, pw = -(-h // sv) * sv, -(-w // sh) * sh
    pad = np.pad(ycc, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    blocks = pad.reshape(ph // sv, sv, pw // sh, sh, 3).transpose(0, 2, 1, 3, 4)
    y = blocks[..., 0].reshape(ph // sv, pw // sh, sv * sh)
    cb = blocks[..., 0, 0, 1][..., None]
    cr = blocks[..., 0, 0, 2][..., None]
    return np.concatenate([y, cb, cr], axis=-1).tobytes()


_COMPRESS: dict[int, Callable[[bytes], bytes]] = {
    1: lambda b: b,
    5: lambda b: bytes(imagecodecs.lzw_encode(b)),
    8: lambda b: zlib.compress(b),
}


def write_ycbcr_subsampled(path: Path, rgb: np.ndarray, sub: tuple[int, int],
                           compression: int, tile: int | None = None,
                           rows_per_strip: int = 16) -> None:
    """YCbCr TIFF with YCbCrSubSampling ``sub`` (horizontal, vertical)."""
    sh, sv = sub
    h, w = rgb.shape[:2]
    ycc = _ycbcr(rgb)
    tb = TiffBuilder()
    offsets, counts = [], []
    if tile:
        pad = np.pad(ycc, ((0, -h % tile), (0, -w % tile), (0, 0)), mode="edge")
        segments = [pad[y:y + tile, x:x + tile] for y in range(0, h, tile)
                    for x in range(0, w, tile)]
    else:
        segments = [ycc[y:y + rows_per_strip] for y in range(0, h, rows_per_strip)]
    for seg in segments:
        data = _COMPRESS[compression](_pack_subsampled(seg, sh, sv))
        offsets.append(tb.add(data))
        counts.append(len(data))
    entries: dict[int, Entry] = {
        256: (LONG, [w]), 257: (LONG, [h]), 258: (SHORT, [8, 8, 8]),
        259: (SHORT, [compression]), 262: (SHORT, [6]), 277: (SHORT, [3]),
        284: (SHORT, [1]), 530: (SHORT, [sh, sv]), 531: (SHORT, [1]),
        532: (RATIONAL, [0, 1, 255, 1, 128, 1, 255, 1, 128, 1, 255, 1]),
    }
    if tile:
        entries.update({322: (LONG, [tile]), 323: (LONG, [tile]),
                        324: (LONG, offsets), 325: (LONG, counts)})
    else:
        entries.update({278: (LONG, [rows_per_strip]), 273: (LONG, offsets),
                        279: (LONG, counts)})
    path.write_bytes(tb.finish(entries))


def _jpeg_parts(stream: bytes) -> tuple[dict[int, bytes], dict[tuple[int, int], bytes], bytes]:
    """Quantisation tables {id: 64 bytes}, Huffman tables {(class, id): counts +
    values} and the entropy-coded scan of a baseline JPEG."""
    qt: dict[int, bytes] = {}
    ht: dict[tuple[int, int], bytes] = {}
    i = 2
    while i < len(stream):
        marker = stream[i + 1]
        length = struct.unpack(">H", stream[i + 2:i + 4])[0]
        seg = stream[i + 4:i + 2 + length]
        if marker == 0xDB:
            j = 0
            while j < len(seg):
                qt[seg[j] & 15] = seg[j + 1:j + 65]
                j += 65
        elif marker == 0xC4:
            j = 0
            while j < len(seg):
                n = sum(seg[j + 1:j + 17])
                ht[(seg[j] >> 4, seg[j] & 15)] = seg[j + 1:j + 17 + n]
                j += 17 + n
        elif marker == 0xDA:
            scan = stream[i + 2 + length:]
            return qt, ht, scan[:-2] if scan.endswith(b"\xff\xd9") else scan
        i += 2 + length
    raise ValueError("no scan in JPEG stream")


def _pillow_jpeg_with_restarts(block: np.ndarray, quality: int) -> bytes:
    """Baseline 4:2:0 JPEG with a restart marker after every MCU row (libjpeg
    through Pillow; the same standard tables for every block)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(block).save(buf, "JPEG", quality=quality, subsampling=2,
                                restart_marker_rows=1)
    return buf.getvalue()


def _shift_restarts(scan: bytes, by: int) -> bytes:
    """Renumber the scan's RSTn markers to continue a longer stream's count."""
    out = bytearray(scan)
    for i in range(len(out) - 1):
        if out[i] == 0xFF and 0xD0 <= out[i + 1] <= 0xD7:
            out[i + 1] = 0xD0 + (out[i + 1] - 0xD0 + by) % 8
    return bytes(out)


def write_ojpeg_tiled(path: Path, rgb: np.ndarray, tile: int = 64, quality: int = 95,
                      tables_in_ifd: bool = True, restarts: bool = False) -> None:
    """Old-style JPEG (compression 6), tiled, 2x2 subsampled YCbCr, tables in the
    IFD (JPEGQTables/DCTables/ACTables), tiles holding only scan data: the
    layout of old scanners' archives that modern decoders call 'Not a JPEG'.
    ``tables_in_ifd=False``: the tables only in a JPEGInterchangeFormat
    stream (SOI, DQT, DHT, EOI) instead."""
    h, w = rgb.shape[:2]
    pad = np.pad(rgb, ((0, -h % tile), (0, -w % tile), (0, 0)), mode="edge")
    tb = TiffBuilder()
    offsets, counts, tables = [], [], None
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            block = np.ascontiguousarray(pad[y:y + tile, x:x + tile])
            if restarts:
                stream = _pillow_jpeg_with_restarts(block, quality)
            else:
                stream = bytes(imagecodecs.jpeg8_encode(block, level=quality,
                                                        subsampling=(2, 2), optimize=False))
            qt, ht, scan = _jpeg_parts(stream)
            if restarts:  # as if cut from one long stream: numbering goes on
                scan = _shift_restarts(scan, len(offsets) * (tile // 16 - 1))
            # libjpeg's standard tables are the same for every tile
            tables = tables or (qt, ht)
            offsets.append(tb.add(scan))
            counts.append(len(scan))
    assert tables is not None
    qt, ht = tables
    q = [tb.add(qt[0]), tb.add(qt[1])]
    dc = [tb.add(ht[(0, 0)]), tb.add(ht[(0, 1)])]
    ac = [tb.add(ht[(1, 0)]), tb.add(ht[(1, 1)])]
    entries: dict[int, Entry] = {
        256: (LONG, [w]), 257: (LONG, [h]), 258: (SHORT, [8, 8, 8]),
        259: (SHORT, [6]), 262: (SHORT, [6]), 277: (SHORT, [3]), 284: (SHORT, [1]),
        322: (LONG, [tile]), 323: (LONG, [tile]), 324: (LONG, offsets),
        325: (LONG, counts), 512: (SHORT, [1]),
        # restart interval: MCUs per tile, or per MCU row with restarts
        515: (SHORT, [tile // 16 if restarts else (tile // 16) ** 2]),
        519: (LONG, [q[0], q[1], q[1]]), 520: (LONG, [dc[0], dc[1], dc[1]]),
        521: (LONG, [ac[0], ac[1], ac[1]]), 530: (SHORT, [2, 2]),
    }
    if not tables_in_ifd:
        def seg(code: int, body: bytes) -> bytes:
            return bytes([0xFF, code]) + struct.pack(">H", len(body) + 2) + body
        jif = (b"\xff\xd8" + seg(0xDB, b"\x00" + qt[0] + b"\x01" + qt[1])
               + seg(0xC4, b"\x00" + ht[(0, 0)] + b"\x01" + ht[(0, 1)]
                     + b"\x10" + ht[(1, 0)] + b"\x11" + ht[(1, 1)]) + b"\xff\xd9")
        for code in (519, 520, 521):
            del entries[code]
        entries.update({513: (LONG, [tb.add(jif)]), 514: (LONG, [len(jif)])})
    path.write_bytes(tb.finish(entries))


def write_logluv(path: Path, rgb: np.ndarray) -> None:
    """A LogLuv (SGILOG, photometric 32845) TIFF written by libtiff itself from
    float CIE XYZ (``rgb`` holds X, Y, Z): the high-dynamic-range encoding no
    Python writer produces."""
    import ctypes

    from microtome.converters.formats.libtiff_rgba import libtiff

    lib = libtiff()
    lib.TIFFSetField.restype = ctypes.c_int
    lib.TIFFWriteScanline.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32,
                                      ctypes.c_uint16]
    h, w = rgb.shape[:2]
    tif = lib.TIFFOpen(str(path).encode(), b"w")
    assert tif
    fields = [(256, ctypes.c_uint32(w)), (257, ctypes.c_uint32(h)), (277, ctypes.c_int(3)),
              (258, ctypes.c_int(32)), (339, ctypes.c_int(3)), (259, ctypes.c_int(34676)),
              (262, ctypes.c_int(32845)), (284, ctypes.c_int(1)),
              (65560, ctypes.c_int(0)),  # SGILOGDATAFMT_FLOAT: we hand it floats
              (278, ctypes.c_uint32(8))]
    try:
        for tag, value in fields:
            assert lib.TIFFSetField(ctypes.c_void_p(tif), ctypes.c_uint32(tag), value) == 1
        data = np.ascontiguousarray(rgb, dtype=np.float32)
        for y in range(h):
            row = np.ascontiguousarray(data[y])
            assert lib.TIFFWriteScanline(tif, row.ctypes.data_as(ctypes.c_void_p), y, 0) == 1
    finally:
        lib.TIFFClose(tif)
