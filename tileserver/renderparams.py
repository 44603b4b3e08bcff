"""Rendering parameters: query text → validated, canonical `RenderParams` (pure).

Query parameters (accepted on every image URL: DZI tiles and .dzi, IIIF
images, thumbnails; a .dzi URL's query is repeated on its tile URLs by
OpenSeadragon; an IIIF info.json's query is carried in its ``id``, see
tileserver/routes_iiif.py). They apply to multi-channel ("nd") images.  They are
validated the same way on every image: RGB brightfield images check them
against their three channels, then ignore them (they do not change the pixels,
so they change neither the tile cache key nor the ETag) -- except `gamma`, which
on RGB images is a filter of the displayed colours (tileserver/filters.py).

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

Image filters (`stain`, `contrast`, `brightness`, `threshold`, `edge`, and
`gamma` on RGB images) are documented in tileserver/filters.py; they are
parsed here with the rest and travel in `RenderParams.filters`.

Bad values give 400 on every image.  How the parameters turn into pixels:
tileserver/render.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote

import numpy as np

from microtome.pyramid.errors import InvalidRequest, NotFound
from microtome.pyramid.layout import ImageMeta

from .filters import FILTER_KEYS, NO_FILTERS, Filters, parse_filters

RENDER_KEYS = ("t", "z", "channels", "windows", "colors", "gamma", *FILTER_KEYS)
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
    #: Server-side filters on the displayed RGB (tileserver/filters.py).
    filters: Filters = NO_FILTERS

    def key(self) -> str:
        """Canonical text, part of tile cache keys and ETags (empty for `RGB`)."""
        if not self.channels:
            return self.filters.key()
        inv = f"i{self.inverted}" if any(self.inverted) else ""
        return (f"t{self.t}z{self.z}c{self.channels}w{self.windows}"
                f"k{self.colors}g{self.gammas}{inv}{self.filters.key()}")


#: For RGB images: nothing to render (stored chunks can be passed through).
RGB = RenderParams(0, 0, (), (), (), ())


def _bad(name: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, {"parameter": name})


def _index(raw: str, name: str, size: int) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6 or int(raw) >= size:
        raise _bad(name, f"{name} must be an integer in 0..{size - 1}")
    return int(raw)


def _split(raw: str, name: str) -> list[str]:
    parts = raw.split(",")
    if len(parts) > _MAX_CHANNELS:
        raise _bad(name, f"too many values in {name}")
    return parts


def _color(hexstr: str) -> tuple[int, int, int]:
    if not _HEX.fullmatch(hexstr):
        raise _bad("colors", "colors must be RRGGBB hex values")
    v = int(hexstr, 16)
    return (v >> 16) & 255, (v >> 8) & 255, v & 255


def _number(raw: str, name: str) -> float:
    try:
        v = float(raw)
    except ValueError:
        raise _bad(name, f"{name} must be numbers") from None
    if not np.isfinite(v):
        raise _bad(name, f"{name} must be finite")
    return v


def parse_render(meta: ImageMeta, query: Mapping[str, str]) -> RenderParams:
    """Query parameters → `RenderParams`, defaults from the image's omero block.

    RGB images validate the parameters like any other image (a viewer must not
    learn that ``gamma=abc`` is fine on one slide and an error on the next) and
    then render as stored: `RGB`.
    """
    if meta.kind == "rgb" and (not query or not any(k in query for k in RENDER_KEYS)):
        return RGB  # the hot path: a plain tile of a brightfield slide
    params = _parse(meta, query)
    rgb = meta.kind == "rgb"
    filters = parse_filters(meta.kind, query, params.gammas if rgb and "gamma" in query else ())
    if filters == NO_FILTERS:
        return RGB if rgb else params
    return replace(RGB if rgb else params, filters=filters)


def render_segment(query: Mapping[str, str]) -> str:
    """The rendering parameters of ``query`` as one URL path segment (``channels=1&z=2``).

    In the order of `RENDER_KEYS`, values as given (validate them first);
    empty when there are none.
    """
    return "&".join(f"{k}={quote(query[k], safe=',:')}" for k in RENDER_KEYS if k in query)


def parse_segment(segment: str) -> dict[str, str]:
    """A raw `render_segment` back to parameters; NotFound when the segment is not one.

    Not a 400: a path segment that is not rendering parameters names no resource.
    """
    out: dict[str, str] = {}
    for part in segment.split("&"):
        k, sep, v = part.partition("=")
        if not sep or k not in RENDER_KEYS or k in out:
            raise NotFound("not found")
        out[k] = unquote(v)
    return out


def _parse(meta: ImageMeta, query: Mapping[str, str]) -> RenderParams:
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
            raise _bad("windows", "windows needs one start:end per channel")
        windows = []
        for p in parts:
            a, sep, b = p.partition(":")
            if not sep:
                raise _bad("windows", "windows must be start:end")
            windows.append((_number(a, "windows"), _number(b, "windows")))
    else:
        windows = [default_window(c) for c in chans]
    if any(end <= start for start, end in windows):
        raise _bad("windows", "window end must be greater than its start")
    if "colors" in query:
        parts = _split(query["colors"], "colors")
        if len(parts) != n:
            raise _bad("colors", "colors needs one colour per channel")
        colors = [_color(p) for p in parts]
    else:
        colors = [_color(chans_meta[c].color) if c < len(chans_meta)
                  and _HEX.fullmatch(chans_meta[c].color) else (255, 255, 255) for c in chans]
    if "gamma" in query:
        parts = _split(query["gamma"], "gamma")
        if len(parts) not in (1, n):
            raise _bad("gamma", "gamma needs one value or one per channel")
        gammas = [_number(p, "gamma") for p in parts] * (n if len(parts) == 1 else 1)
        if any(not 0.05 <= g <= 20 for g in gammas):
            raise _bad("gamma", "gamma must be between 0.05 and 20")
    else:
        gammas = [1.0] * n
    inverted = tuple(c < len(chans_meta) and chans_meta[c].inverted for c in chans)
    return RenderParams(t, z, chans, tuple(windows), tuple(colors), tuple(gammas), inverted)
