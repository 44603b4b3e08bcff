"""Turn a `TileRequest` into an encoded `Tile` (synchronous: runs in the executor).

`chunk_for` decides, without I/O, whether the answer is exactly one stored
JPEG chunk (pass-through: one pread, no decode/encode); the pipeline decides
it once per request and sends pass-through reads to the I/O pool, so they
never queue behind renders.
"""

from __future__ import annotations

from microtome.pyramid.reader import Pyramid

from .cache import Tile
from .encode import CONTENT_TYPES, apply_quality, encode, rotate
from .filterrender import render_request
from .renderparams import RGB
from .tilemath import is_full_chunk
from .tilerequest import COLOR_QUALITIES, TileRequest

#: (level, chunk row, chunk column) of a stored chunk.
ChunkRef = tuple[int, int, int]


def chunk_for(pyr: Pyramid, req: TileRequest) -> ChunkRef | None:
    """The stored chunk that is exactly this request's answer, if any (pure: no I/O)."""
    meta = pyr.meta
    if (req.format != "jpg" or req.quality not in COLOR_QUALITIES or req.mirror
            or req.rotation or req.render != RGB or meta.kind != "rgb" or not pyr.direct):
        return None
    d = meta.levels[req.level].downsample
    if req.x % d or req.y % d or (req.w, req.h) != (req.out_w * d, req.out_h * d):
        return None
    lx, ly = req.x // d, req.y // d
    if not is_full_chunk(meta, req.level, lx, ly, req.out_w, req.out_h):
        return None
    ts = meta.tile_size
    return req.level, ly // ts, lx // ts


def _stored(pyr: Pyramid, ref: ChunkRef) -> Tile | None:
    data = pyr.chunk_bytes(*ref)
    if data is None or data[:2] != b"\xff\xd8":
        return None  # never written (fill value) or not a JPEG: render instead
    return Tile(data, "image/jpeg", passthrough=True)


def tile(pyr: Pyramid, req: TileRequest, chunk: ChunkRef | None) -> Tile:
    """The stored ``chunk`` as it is when there is one, else the rendered request."""
    if chunk is not None:
        hit = _stored(pyr, chunk)
        if hit is not None:
            return hit
    pixels = render_request(pyr, req)
    if req.quality not in COLOR_QUALITIES or req.mirror or req.rotation:
        pixels = rotate(apply_quality(pixels, req.quality), req.mirror, req.rotation)
    return Tile(encode(pixels, req.format, pyr.jpeg_quality), CONTENT_TYPES[req.format])
