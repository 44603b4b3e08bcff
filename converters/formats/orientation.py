"""EXIF/TIFF orientation as region arithmetic, so oriented reads stay streaming.

The displayed image D is the stored image S transposed (optionally), then
flipped vertically and/or horizontally.  A rectangle of D maps to one
rectangle of S; reading that and applying the same transform gives the
rectangle of D without ever holding the whole image.
"""

from __future__ import annotations

import numpy as np

#: orientation tag -> (transpose, flip_y, flip_x)
_OPS = {
    1: (False, False, False),
    2: (False, False, True),   # mirror horizontal
    3: (False, True, True),    # rotate 180
    4: (False, True, False),   # mirror vertical
    5: (True, False, False),   # transpose
    6: (True, False, True),    # rotate 90 clockwise
    7: (True, True, True),     # transverse
    8: (True, True, False),    # rotate 90 counter-clockwise
}


def oriented_size(orientation: int, width: int, height: int) -> tuple[int, int]:
    """(width, height) as displayed."""
    transpose = _OPS.get(orientation, _OPS[1])[0]
    return (height, width) if transpose else (width, height)


def source_rect(orientation: int, stored_w: int, stored_h: int,
                x: int, y: int, w: int, h: int) -> tuple[int, int, int, int]:
    """The stored rectangle (x, y, w, h) holding displayed rectangle (x, y, w, h)."""
    transpose, flip_y, flip_x = _OPS.get(orientation, _OPS[1])
    dw, dh = oriented_size(orientation, stored_w, stored_h)
    if flip_x:
        x = dw - x - w
    if flip_y:
        y = dh - y - h
    if transpose:
        return y, x, h, w
    return x, y, w, h


def apply(orientation: int, block: np.ndarray) -> np.ndarray:
    """Transform a stored (h, w, ...) block read by `source_rect` to display order."""
    transpose, flip_y, flip_x = _OPS.get(orientation, _OPS[1])
    if transpose:
        block = block.swapaxes(0, 1)
    if flip_y:
        block = block[::-1]
    if flip_x:
        block = block[:, ::-1]
    return np.ascontiguousarray(block)
