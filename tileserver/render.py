"""Turn stored pixels into 8-bit RGB: plane selection and channel rendering.

Query parameters (accepted on every image URL: DZI tiles and .dzi, IIIF
images, thumbnails; a .dzi URL's query is repeated on its tile URLs by
OpenSeadragon). They apply to multi-channel ("nd") images; RGB brightfield
images ignore them.

- `t` (`t=0`): time point; default 0.
- `z` (`z=3`): z plane; default the middle plane.
- `channels` (`channels=0,2`): channel indices to show, in order; default the
  channels marked active in the NGFF `omero` block, else all.
- `windows` (`windows=0:4000,100:2000`): one `start:end` per shown channel, in
  stored units: at/below start is black, at/above end full colour; default
  each channel's `omero` window.
- `colors` (`colors=FF0000,00FF00`): one `RRGGBB` per shown channel; default
  the `omero` colour.
- `gamma` (`gamma=0.8` or `gamma=1,0.5`): one value for all shown channels or
  one per channel, 0.05-20, default 1; output = normalised value ** (1/gamma).
- Channels marked `inverted` in the `omero` block (e.g. converted MinIsWhite
  TIFFs) show as 1 - output: at/below the window start in full colour.
- `v` (`v=<version>`, not rendering): the image version from
  `/images/{id}/metadata`; when it matches, responses are `immutable`.

Example: `/dzi/{id}.dzi?channels=0,1&windows=0:4000,100:2000&colors=0000FF,00FF00&z=3`
(OpenSeadragon repeats the .dzi query on every tile URL) or
`/iiif/3/{id}/full/max/0/default.png?channels=2&gamma=0.7`.

Channels are composed additively (each channel's normalised value times its
colour, summed and clipped), which is what fluorescence viewers do.  Any
dtype (uint8/16/32, float) renders through the windows.  Bad values give 400.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from pyramid.errors import InvalidRequest
from pyramid.layout import ImageMeta
from pyramid.reader import Pyramid

from .bands import resample_banded
from .encode import resample
from .tilemath import LevelBox, level_box, level_for

RENDER_KEYS = ("t", "z", "channels", "windows", "colors", "gamma")
_HEX = re.compile(r"[0-9A-Fa-f]{6}")
_MAX_CHANNELS = 32


@dataclass(frozen=True, slots=True)
class RenderParams:
    """Validated rendering settings for one image (all defaults resolved)."""

    t: int
    z: int
    channels: tuple[int, ...]
    windows: tuple[tuple[float, float], ...]
    colors: tuple[tuple[int, int, int], ...]
    gammas: tuple[float, ...]
    #: Per shown channel, from the omero block: low values in full colour.
    inverted: tuple[bool, ...] = ()

    def key(self) -> str:
        """Canonical text, part of tile cache keys and ETags."""
        inv = f"i{self.inverted}" if any(self.inverted) else ""
        return (f"t{self.t}z{self.z}c{self.channels}w{self.windows}"
                f"k{self.colors}g{self.gammas}{inv}")


#: For RGB images: nothing to render, and the key stays empty so pass-through applies.
RGB = RenderParams(0, 0, (), (), (), ())


def _index(raw: str, name: str, size: int) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6 or int(raw) >= size:
        raise InvalidRequest(f"{name} must be an integer in 0..{size - 1}")
    return int(raw)


def _split(raw: str, name: str) -> list[str]:
    parts = raw.split(",")
    if len(parts) > _MAX_CHANNELS:
        raise InvalidRequest(f"too many values in {name}")
    return parts


def _color(hexstr: str) -> tuple[int, int, int]:
    if not _HEX.fullmatch(hexstr):
        raise InvalidRequest("colors must be RRGGBB hex values")
    v = int(hexstr, 16)
    return (v >> 16) & 255, (v >> 8) & 255, v & 255


def _number(raw: str, name: str) -> float:
    try:
        v = float(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be numbers") from None
    if not np.isfinite(v):
        raise InvalidRequest(f"{name} must be finite")
    return v


def parse_render(meta: ImageMeta, query: Mapping[str, str]) -> RenderParams:
    """Query parameters → `RenderParams`, defaults from the image's omero block."""
    if meta.kind == "rgb":
        return RGB
    t = _index(query["t"], "t", meta.size_t) if "t" in query else 0
    z = _index(query["z"], "z", meta.size_z) if "z" in query else meta.size_z // 2
    chans_meta = meta.channels
    if "channels" in query:
        chans = tuple(_index(c, "channels", meta.size_c)
                      for c in _split(query["channels"], "channels"))
    else:
        active = tuple(i for i, ch in enumerate(chans_meta[:meta.size_c]) if ch.active)
        chans = active or tuple(range(min(meta.size_c, _MAX_CHANNELS)))
    n = len(chans)

    def default_window(i: int) -> tuple[float, float]:
        if i < len(chans_meta):
            return chans_meta[i].window_start, chans_meta[i].window_end
        info = np.iinfo(meta.dtype) if np.dtype(meta.dtype).kind in "iu" else None
        return (0.0, float(info.max)) if info else (0.0, 1.0)

    if "windows" in query:
        parts = _split(query["windows"], "windows")
        if len(parts) != n:
            raise InvalidRequest("windows needs one start:end per channel")
        windows = []
        for p in parts:
            a, sep, b = p.partition(":")
            if not sep:
                raise InvalidRequest("windows must be start:end")
            windows.append((_number(a, "windows"), _number(b, "windows")))
    else:
        windows = [default_window(c) for c in chans]
    if any(end <= start for start, end in windows):
        raise InvalidRequest("window end must be greater than its start")
    if "colors" in query:
        parts = _split(query["colors"], "colors")
        if len(parts) != n:
            raise InvalidRequest("colors needs one colour per channel")
        colors = [_color(p) for p in parts]
    else:
        colors = [_color(chans_meta[c].color) if c < len(chans_meta)
                  and _HEX.fullmatch(chans_meta[c].color) else (255, 255, 255) for c in chans]
    if "gamma" in query:
        parts = _split(query["gamma"], "gamma")
        if len(parts) not in (1, n):
            raise InvalidRequest("gamma needs one value or one per channel")
        gammas = [_number(p, "gamma") for p in parts] * (n if len(parts) == 1 else 1)
        if any(not 0.05 <= g <= 20 for g in gammas):
            raise InvalidRequest("gamma must be between 0.05 and 20")
    else:
        gammas = [1.0] * n
    inverted = tuple(c < len(chans_meta) and chans_meta[c].inverted for c in chans)
    return RenderParams(t, z, chans, tuple(windows), tuple(colors), tuple(gammas), inverted)


def compose(planes: np.ndarray, params: RenderParams) -> np.ndarray:
    """(h, w, n) stored values → (h, w, 3) uint8, additive over channels."""
    h, w = planes.shape[:2]
    acc = np.zeros((h, w, 3), np.float32)
    for i in range(planes.shape[2]):
        start, end = params.windows[i]
        v = (planes[..., i].astype(np.float32) - np.float32(start)) / np.float32(end - start)
        np.clip(v, 0.0, 1.0, out=v)
        if params.gammas[i] != 1.0:
            np.power(v, np.float32(1.0 / params.gammas[i]), out=v)
        if i < len(params.inverted) and params.inverted[i]:
            # After the gamma, as OMERO's reverse-intensity map.
            np.subtract(np.float32(1.0), v, out=v)
        color = np.asarray(params.colors[i], np.float32)
        acc += v[..., None] * color
    np.clip(acc, 0.0, 255.0, out=acc)
    return (acc + 0.5).astype(np.uint8)


#: Largest level window (pixels) read and composed in one piece.  Bigger windows
#: (IIIF ``full/max`` or large regions of big images) are rendered in bands of
#: output rows, so peak memory follows the output size and this constant, not
#: the source region: composing nd channels costs ~40 bytes per source pixel.
BAND_PIXELS = 1 << 20


def _window_rows(pyr: Pyramid, box: LevelBox, r0: int, r1: int, width: int,
                 params: RenderParams) -> np.ndarray:
    """Rows [r0, r1) of the level window as (r1 - r0, width, 3) uint8.

    Rows and columns past the level's edge repeat its last row/column, as the
    stored pyramid's own ceil-sized levels do (see `level_box`).
    """
    a = min(r0, box.h - 1)
    b = max(a + 1, min(r1, box.h))
    if pyr.meta.kind == "rgb":
        pixels = pyr.read_region(box.level, box.x, box.y + a, box.w, b - a)
    else:
        raw = pyr.read_region(box.level, box.x, box.y + a, box.w, b - a, t=params.t,
                              z=params.z, channels=list(params.channels))
        pixels = compose(raw, params)
        del raw
    skip = r0 - a  # > 0 only when the band lies wholly in the bottom padding
    pad = ((0, max(0, r1 - r0 + skip - pixels.shape[0])), (0, max(0, width - box.w)), (0, 0))
    if any(p[1] for p in pad):
        pixels = np.pad(pixels, pad, mode="edge")
    return pixels[skip:skip + r1 - r0]


def render_region(pyr: Pyramid, x: int, y: int, w: int, h: int, out_w: int, out_h: int,
                  params: RenderParams, level: int | None = None) -> np.ndarray:
    """A level-0 rectangle as (out_h, out_w, 3) uint8 RGB, read from the best level."""
    meta = pyr.meta
    if level is None:
        level = level_for(meta, x, y, w, h, out_w, out_h)
    box = level_box(meta, level, x, y, w, h)
    need_w, need_h = math.ceil(box.fx + box.fw), math.ceil(box.fy + box.fh)
    width, height = max(box.w, need_w), max(box.h, need_h)
    if width * height <= BAND_PIXELS:
        pixels = _window_rows(pyr, box, 0, height, width, params)
        return resample(pixels, out_w, out_h, (box.fx, box.fy, box.fw, box.fh))
    return resample_banded(lambda r0, r1: _window_rows(pyr, box, r0, r1, width, params),
                           width, height, out_w, out_h, (box.fx, box.fy, box.fw, box.fh),
                           BAND_PIXELS)
