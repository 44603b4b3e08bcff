"""One request for pixels, whichever protocol asked for them (pure).

Deep Zoom tiles, IIIF images and thumbnails are all "this level-0 region of
the image, at this output size, rotated, in this quality and format, rendered
with these parameters".  Protocol handlers only turn their URL into a
`TileRequest` (tileserver/tilemath.py, iiif_params.py); the pipeline
(tileserver/pipeline.py) does everything else the same way for all of them.
"""

from __future__ import annotations

from typing import NamedTuple

from .renderparams import RGB, RenderParams

#: Qualities whose pixels are the rendered colours as they are.
COLOR_QUALITIES = ("default", "color")


class TileRequest(NamedTuple):
    """A validated request for pixels of one image, in canonical form.

    Everything that changes the pixels is here and nothing else, so `key` is
    the same for the same pixels whatever protocol or spelling asked for them
    (``jpeg``/``jpg``, ``color``/``default``, IIIF 2/3, a Deep Zoom tile and
    the IIIF region that is the same tile, a thumbnail and the IIIF size that
    is the same thumbnail).

    A NamedTuple rather than a frozen dataclass: one is built per request, and
    a frozen dataclass' constructor costs several times more.
    """

    #: Region in level-0 pixels, clipped to the image.
    x: int
    y: int
    w: int
    h: int
    #: Output size before rotation.
    out_w: int
    out_h: int
    #: Stored level the pixels are read from (the protocol's pure math chooses it).
    level: int
    #: "jpg", "png" or "webp".
    format: str
    #: "default", "color", "gray" or "bitonal" (IIIF names).
    quality: str = "default"
    #: Clockwise degrees in {0, 90, 180, 270}, after mirroring (IIIF order).
    rotation: int = 0
    mirror: bool = False
    #: Canonical rendering: `RGB` for RGB images whatever the query said.
    render: RenderParams = RGB

    def key(self) -> str:
        """Canonical text of the pixels asked for: the tile cache key and the ETag's input."""
        # Built on every request, cache hits included: unpacking beats attribute access.
        x, y, w, h, out_w, out_h, level, fmt, quality, rotation, mirror, render = self
        if quality == "color":
            quality = "default"
        rot = f"!{rotation}" if mirror else rotation
        return f"{x},{y},{w},{h}/{out_w},{out_h}/L{level}/{rot}/{quality}.{fmt}/{render.key()}"
